"""A nested read costs a fixed number of SQL statements, whatever the number of rows (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from persistence.database import Database
from resolvers.context import Services
from tests.resolvers.spa_support import Session, case_in, new_world
from tests.support import Tenant, make_tenant

NESTED = """
{ projects { edges { node { id name budget { id version exportStatus originalBudgetTotal lineItemCount
    lineItems(first: 500) { totalCount edges { node { id originalAmount revisedAmount erpSynced subJob
      costCode { code } costType { code } } } } } } } } }
"""

IMPORT = """
mutation($i: ImportBudgetLineItemsInput!) {
  importBudgetLineItems(input: $i) { budget { id } userErrors { code message } } }
"""


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def add_lines(tenant: Tenant, count: int, *, budget_id: str | None = None) -> None:
    codes, types = list(tenant.cost_codes.values()), list(tenant.cost_types.values())
    items = [
        {
            "costCodeId": codes[i % len(codes)],
            "costTypeId": types[i % len(types)],
            "subJob": f"SJ-{i}",
            "originalAmount": f"{1000 + i}.25",
        }
        for i in range(count)
    ]
    await tenant.ok("admin", IMPORT, i={"budgetId": budget_id or tenant.budget_id, "items": items})


async def second_project(tenant: Tenant, suffix: str = "") -> str:
    data = await tenant.ok(
        "admin",
        'mutation($n: String!) { createProject(input: {name: "Second", number: $n}) '
        "{ project { budget { id } } userErrors { code } } }",
        n=f"S-2{suffix}",
    )
    return str(data["createProject"]["project"]["budget"]["id"])


async def statements_for_nested_query(services: Services, lines_per_budget: int) -> tuple[int, dict[str, Any]]:
    tenant = await make_tenant(services)
    await add_lines(tenant, lines_per_budget)
    await add_lines(tenant, lines_per_budget, budget_id=await second_project(tenant))
    ctx = await tenant.context("admin")
    from schema.build import schema

    with counted(services.db) as statements:
        result = await schema.execute(NESTED, context_value=ctx)
    assert result.errors is None, result.errors
    return len(statements), result.data or {}


async def test_nested_projects_budget_lines_query_runs_a_fixed_number_of_statements(services: Services) -> None:
    few, _ = await statements_for_nested_query(services, 3)
    many, many_data = await statements_for_nested_query(services, 120)
    edges = many_data["projects"]["edges"]
    assert len(edges) == 2
    assert all(len(e["node"]["budget"]["lineItems"]["edges"]) == 120 for e in edges)
    assert {e["node"]["budget"]["lineItems"]["edges"][0]["node"]["costCode"]["code"] for e in edges} == {"03-300"}
    assert few == many
    assert many <= 12


async def test_line_page_amounts_are_exact_strings(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_lines(tenant, 2)
    data = await tenant.ok("reader", NESTED)
    lines = data["projects"]["edges"][0]["node"]["budget"]["lineItems"]["edges"]
    assert [edge["node"]["originalAmount"] for edge in lines] == ["1000.25", "1001.25"]
    assert data["projects"]["edges"][0]["node"]["budget"]["originalBudgetTotal"] == "2001.50"


async def test_two_pages_of_one_budget_in_one_query_each_get_their_own_rows(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_lines(tenant, 8)
    first = await tenant.ok(
        "admin",
        "query($b: ID!) { budget(id: $b) { lineItems(first: 3) { pageInfo { endCursor } } } }",
        b=tenant.budget_id,
    )
    cursor = first["budget"]["lineItems"]["pageInfo"]["endCursor"]
    data = await tenant.ok(
        "admin",
        """query($b: ID!, $c: String) { budget(id: $b) {
        a: lineItems(first: 3) { edges { node { subJob } } }
        b: lineItems(first: 3, after: $c) { edges { node { subJob } } pageInfo { hasNextPage } }
        c: lineItems(first: 6) { edges { node { subJob } } } } }""",
        b=tenant.budget_id,
        c=cursor,
    )
    page = data["budget"]

    def subjobs(key: str) -> list[str]:
        return [e["node"]["subJob"] for e in page[key]["edges"]]

    assert subjobs("a") == ["SJ-0", "SJ-1", "SJ-2"]
    assert subjobs("b") == ["SJ-3", "SJ-4", "SJ-5"]
    assert page["b"]["pageInfo"]["hasNextPage"] is True
    assert subjobs("c") == ["SJ-0", "SJ-1", "SJ-2", "SJ-3", "SJ-4", "SJ-5"]


BLOCKERS = """
{ projects(first: 4) { edges { node { budget { sendBlockers { code } unlockBlockers { code }
    pendingExport { costCode originalBudget } } } } } }
"""


async def test_send_blockers_of_many_budgets_cost_the_same_as_of_one(services: Services) -> None:
    async def statements_for(projects: int) -> int:
        tenant = await make_tenant(services)
        await add_lines(tenant, 2)
        for index in range(projects - 1):
            await add_lines(tenant, 2, budget_id=await second_project(tenant, suffix=str(index)))
        ctx = await tenant.context("admin")
        from schema.build import schema

        with counted(services.db) as statements:
            result = await schema.execute(BLOCKERS, context_value=ctx)
        assert result.errors is None and result.data is not None, result.errors
        budgets = [e["node"]["budget"] for e in result.data["projects"]["edges"]]
        assert len(budgets) == projects
        assert all([b["code"] for b in budget["sendBlockers"]][:1] == ["BUDGET_NOT_LOCKED"] for budget in budgets)
        assert all(len(budget["pendingExport"]) == 2 for budget in budgets)
        return len(statements)

    assert await statements_for(1) == await statements_for(4)


async def test_a_query_asking_for_too_many_objects_is_refused_with_a_clear_error(services: Services) -> None:
    from schema.build import schema

    tenant = await make_tenant(services)
    ctx = await tenant.context("admin")  # one context for both, as on a WebSocket connection
    aliases = " ".join(f"a{i}: lineItems(first: 1000) {{ totalCount }}" for i in range(60))
    too_many = f"query($b: ID!) {{ budget(id: $b) {{ {aliases} }} }}"
    result = await schema.execute(too_many, variable_values={"b": tenant.budget_id}, context_value=ctx)
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}
    assert "too many objects" in result.errors[0].message
    fits = "query($b: ID!) { budget(id: $b) { lineItems(first: 1000) { totalCount } } }"
    again = await schema.execute(fits, variable_values={"b": tenant.budget_id}, context_value=ctx)
    assert again.errors is None  # the allowance is per operation


# Two documents: each list is charged at its maximum by the cost analysis (reconciliation lines and a request's
# entries up to 10,000 each), so one document asking for both on four budgets would pass the 50,000 allowance.
RECONCILED = """
{ projects(first: 4) { edges { node { budget {
    sendBlockers { code field lineItem { id costCode { code } } }
    reconciliation { balanced lines { costCode lineItem { id revisedAmount } exported posted pending unsent difference }
      totals { exported } } } } } } }
"""
ENTRIES = """
{ projects(first: 4) { edges { node { budget {
    lastErpRequest { entryCount entriesTotal
      entries { entryId amount lineItem { id } modification { number } } } } } } } }
"""


async def test_reconciliations_and_exported_entries_of_many_budgets_cost_the_same_as_of_one(
    services: Services,
) -> None:
    from app.export_worker import ExportWorker
    from schema.build import schema
    from tests.erp.workflow import ACCEPT, LOCK, MODIFY, SEND, SYNC

    async def exported_project(tenant: Tenant, project_id: str, budget_id: str) -> None:
        await add_lines(tenant, 3, budget_id=budget_id)
        await tenant.ok("admin", SYNC, p=project_id)
        await tenant.ok("admin", LOCK, b=budget_id)
        lines = await tenant.ok("admin", "query($b: ID!) { budget(id: $b) { lineItems { edges { node { id } } } } }",
                                b=budget_id)
        first, second = [e["node"]["id"] for e in lines["budget"]["lineItems"]["edges"][:2]]
        await tenant.ok("admin", MODIFY, i={"budgetId": budget_id, "fromLineItemId": first, "toLineItemId": second,
                                            "amount": "10.00"})
        request_id = (await tenant.ok("admin", SEND, b=budget_id))["sendToERP"]["erpRequest"]["id"]
        await tenant.ok("approver", ACCEPT, r=request_id)

    async def statements_for(projects: int) -> int:
        tenant = await make_tenant(services)
        await exported_project(tenant, tenant.project_id, tenant.budget_id)
        for index in range(projects - 1):
            data = await tenant.ok("admin", """mutation($n: String!) { createProject(input: {name: "More", number: $n})
                { project { id budget { id } } } }""", n=f"M-{index}")
            project = data["createProject"]["project"]
            await exported_project(tenant, project["id"], project["budget"]["id"])
        await ExportWorker(services, timeout_seconds=5, company_id=tenant.company_id).run_once()
        ctx = await tenant.context("admin")
        with counted(services.db) as statements:
            result = await schema.execute(RECONCILED, context_value=ctx)
            entries = await schema.execute(ENTRIES, context_value=ctx)
        assert result.errors is None and result.data is not None, result.errors
        assert entries.errors is None and entries.data is not None, entries.errors
        budgets = [e["node"]["budget"] for e in result.data["projects"]["edges"]]
        assert len(budgets) == projects
        for budget in budgets:
            assert budget["reconciliation"]["balanced"] is True
            assert len(budget["reconciliation"]["lines"]) == 3
        for edge in entries.data["projects"]["edges"]:
            request = edge["node"]["budget"]["lastErpRequest"]
            assert request["entryCount"] == len(request["entries"]) == 5  # 3 originals, both sides of the move
            assert sum(1 for e in request["entries"] if e["modification"]) == 2
        return len(statements)

    assert await statements_for(1) == await statements_for(4)


async def test_unpaged_lists_are_cut_at_their_maximum_and_their_counts_still_count_everything(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.export_worker import ExportWorker
    from resolvers import pagination
    from schema.build import schema
    from tests.erp.workflow import ACCEPT, LOCK, SEND, SYNC

    tenant = await make_tenant(services)
    await add_lines(tenant, 3)
    await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    await ExportWorker(services, timeout_seconds=5, company_id=tenant.company_id).run_once()
    query = """query($b: ID!, $r: ID!) {
      budget(id: $b) { lineItemCount reconciliation { lines { costCode } totals { revisedAmount } } }
      erpRequest(id: $r) { entryCount entries { amount } lines { costCode } } }"""

    async def read() -> dict[str, Any]:
        result = await schema.execute(
            query, variable_values={"b": tenant.budget_id, "r": request_id}, context_value=await tenant.context("admin")
        )
        assert result.errors is None and result.data is not None, result.errors
        return result.data

    whole = await read()
    assert len(whole["budget"]["reconciliation"]["lines"]) == len(whole["erpRequest"]["entries"]) == 3
    for field in ("Reconciliation.lines", "ErpRequest.entries", "ErpRequest.lines"):
        monkeypatch.setitem(pagination.UNPAGED_MAXIMA, field, 2)
    cut = await read()
    assert [len(cut["budget"]["reconciliation"]["lines"]), len(cut["erpRequest"]["entries"]),
            len(cut["erpRequest"]["lines"])] == [2, 2, 2]
    assert cut["erpRequest"]["entryCount"] == 3  # the counts and totals still count every item
    assert cut["budget"]["reconciliation"]["totals"] == whole["budget"]["reconciliation"]["totals"]
    assert cut["budget"]["reconciliation"]["lines"] == whole["budget"]["reconciliation"]["lines"][:2]


async def test_what_a_page_computes_only_when_selected_is_found_through_every_kind_of_fragment(
    services: Services,
) -> None:
    """erpSynced, totalCount and cursors are computed only when selected (schema.common.selects): selected
    through a named fragment, an inline fragment or a fragment inside a fragment, they must still be there."""
    world = await new_world(services)
    case = await case_in(world, "synced")  # synced lines: a missed erpSynced would read false, not true
    direct = "lineItems { totalCount edges { cursor node { erpSynced } } }"
    variants = {
        "direct": f"query($b: ID!) {{ budget(id: $b) {{ {direct} }} }}",
        "named": "query($b: ID!) { budget(id: $b) { ...Page } } fragment Page on Budget { " + direct + " }",
        "inline": "query($b: ID!) { budget(id: $b) { lineItems { ... on BudgetLineItemConnection { totalCount "
                  "edges { ... on BudgetLineItemEdge { cursor node { ... on BudgetLineItem { erpSynced } } } } } } } }",
        "nested": "query($b: ID!) { budget(id: $b) { lineItems { ...Count edges { ...Edge } } } } "
                  "fragment Count on BudgetLineItemConnection { totalCount } "
                  "fragment Edge on BudgetLineItemEdge { ...Cursor node { ...Synced } } "
                  "fragment Cursor on BudgetLineItemEdge { cursor } fragment Synced on BudgetLineItem { erpSynced }",
    }
    session = Session(world.tenant)
    answers = {name: await session.execute("admin", document, b=case.budget_id) for name, document in variants.items()}
    page = answers["direct"]["budget"]["lineItems"]
    assert page["totalCount"] == 2 and all(edge["node"]["erpSynced"] is True for edge in page["edges"])
    assert all(edge["cursor"] for edge in page["edges"])
    assert all(answer == answers["direct"] for answer in answers.values()), answers
