"""What one GraphQL execution costs the database: its reads share one pooled connection (a query's loaders
run concurrently; a mutation's unit of work takes its own), and what the query does not select (a line's
erpSynced, a list's totalCount) is neither read nor computed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from persistence.database import Database
from schema.build import schema
from tests.erp.workflow import add_line
from tests.support import Tenant

FULL = """query { projects { totalCount edges { node { budget {
  lineItemCount
  lineItems(first: 2) { totalCount edges { node { id erpSynced costCode { code erpSynced } } } }
} } } } }"""

LEAN = """query { projects { edges { node { budget {
  lineItems(first: 2) { edges { node { id costCode { code erpSynced } } } }
} } } } }"""

BY_FRAGMENT = """query { projects { edges { node { budget { lineItems(first: 2) { ...Lines } } } } } }
fragment Lines on BudgetLineItemConnection { count: totalCount edges { node { ... on BudgetLineItem {
  id synced: erpSynced } } } }"""


@dataclass
class Use:
    checkouts: int = 0
    statements: int = 0


@contextmanager
def database_use(db: Database) -> Iterator[Use]:
    use = Use()

    def checked_out(*_: Any) -> None:
        use.checkouts += 1

    def statement(*_: Any) -> None:
        use.statements += 1

    engine = db.engine.sync_engine
    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield use
    finally:
        event.remove(engine, "checkout", checked_out)
        event.remove(engine, "before_cursor_execute", statement)


async def run(tenant: Tenant, query: str) -> tuple[dict[str, Any], Use]:
    context = await tenant.context("admin")
    with database_use(tenant.services.db) as use:
        result = await schema.execute(query, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, use


async def lines_of(tenant: Tenant) -> None:
    for sub_job in ("A", "B", "C"):
        await add_line(tenant, "03-300", "L", "10.00", sub_job)


async def test_a_querys_reads_share_one_connection(tenant: Tenant) -> None:
    await lines_of(tenant)
    data, use = await run(tenant, FULL)
    budget = data["projects"]["edges"][0]["node"]["budget"]
    assert budget["lineItemCount"] == 3 and budget["lineItems"]["totalCount"] == 3
    assert use.checkouts == 1 and use.statements >= 5


async def test_a_mutation_reads_and_writes_on_connections_of_its_own(tenant: Tenant) -> None:
    context = await tenant.context("admin")
    with database_use(tenant.services.db) as use:
        result = await schema.execute(
            "mutation($i: CreateCostCodeInput!) { createCostCode(input: $i) { costCode { id } userErrors { code } } }",
            variable_values={"i": {"code": "77-700", "description": "New"}},
            context_value=context,
        )
    assert result.errors is None and result.data is not None
    assert result.data["createCostCode"]["userErrors"] == []
    assert use.checkouts >= 1  # its unit of work: not held by a read session while it runs


async def test_what_is_not_selected_is_not_read(tenant: Tenant) -> None:
    await lines_of(tenant)
    full, full_use = await run(tenant, FULL)
    lean, lean_use = await run(tenant, LEAN)
    # Not read: the projects' count, the lines' count (budget totals), the lines' sync inputs (modifications
    # touching them, their export entries).
    assert full_use.statements - lean_use.statements == 4
    full_lines = full["projects"]["edges"][0]["node"]["budget"]["lineItems"]["edges"]
    lean_lines = lean["projects"]["edges"][0]["node"]["budget"]["lineItems"]["edges"]
    assert [e["node"]["id"] for e in full_lines] == [e["node"]["id"] for e in lean_lines]
    assert all(e["node"]["erpSynced"] is False for e in full_lines)  # new lines: not exported yet


async def test_fields_selected_through_fragments_and_aliases_are_computed(tenant: Tenant) -> None:
    await lines_of(tenant)
    data, _ = await run(tenant, BY_FRAGMENT)
    lines = data["projects"]["edges"][0]["node"]["budget"]["lineItems"]
    assert lines["count"] == 3
    assert [e["node"]["synced"] for e in lines["edges"]] == [False, False]
