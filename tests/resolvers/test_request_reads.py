"""What one GraphQL execution costs the database: its reads share one pooled connection (a query's loaders
run concurrently; a mutation's unit of work takes its own), and what the query does not select (a line's
erpSynced, a list's totalCount) is neither read nor computed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from graphql import ExecutionResult

from resolvers.context import Services
from schema.build import schema
from tests.database_use import Use, database_use
from tests.erp.workflow import SEND, add_line, locked_with_one_line
from tests.support import Tenant, make_tenant

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


class Held:
    """Wake-ups whose wait says when the stream waits, and rings only when told."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.ring = asyncio.Event()

    @contextlib.asynccontextmanager
    async def listen(self, company_id: str) -> AsyncIterator[Held]:
        yield self

    async def wait(self, timeout: float) -> bool:
        self.waiting.set()
        await self.ring.wait()
        self.ring.clear()
        return True


LIVE = """subscription($after: String) { exportStatusChanged(after: $after) { status
  budget { lineItemCount lineItems(first: 5) { edges { node { id erpSynced } } } project { name } } } }"""


async def test_a_live_subscription_holds_no_connection_while_it_waits(services: Services) -> None:
    wakeups = Held()
    services.live = wakeups
    services.shared_executions = None  # this subscriber executes its events itself
    tenant = await make_tenant(services)
    after = str(await locked_with_one_line(tenant))
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    context = await tenant.context("approver")
    with database_use(services.db) as use:
        stream = await schema.subscribe(LIVE, variable_values={"after": after}, context_value=context)
        assert not isinstance(stream, ExecutionResult)
        first = await anext(stream)
        assert first.errors is None and first.data is not None
        assert first.data["exportStatusChanged"]["budget"]["lineItemCount"] == 1
        waits = asyncio.create_task(anext(stream))
        await wakeups.waiting.wait()
        assert use.checkouts == use.checkins  # nothing held while waiting for the next event
        executions = use.checkouts
        waits.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waits
        await stream.aclose()
    # The access re-read, the log read and the event's execution (every nested field of it): a connection each.
    assert executions == 3
