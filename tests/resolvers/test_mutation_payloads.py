"""A mutation's payload reads what it selects and nothing more: the budget only when `budget` is selected,
a line's erpSynced (its modifications and export entries) only when `erpSynced` is; what it selects is
what a fresh query answers."""

from __future__ import annotations

from persistence.tables import budgets, export_entries, modifications
from resolvers.context import Services
from tests.erp.workflow import add_line
from tests.resolvers.test_nested_reads import counted
from tests.support import make_tenant

LEAN = """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) {
  lineItem { id originalAmount } userErrors { code } } }"""
FULL = """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) {
  lineItem { id originalAmount erpSynced } budget { id version } userErrors { code } } }"""
FRESH = "query($b: ID!) { budget(id: $b) { version lineItems { edges { node { id erpSynced } } } } }"


def reads_of(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]


async def test_a_lean_payload_reads_neither_the_budget_nor_the_lines_export_state(services: Services) -> None:
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    with counted(services.db) as statements:
        data = await tenant.ok("admin", LEAN, i={"id": line_id, "originalAmount": "120.00"})
    assert data["updateBudgetLineItem"]["lineItem"] == {"id": line_id, "originalAmount": "120.00"}
    event_written = next(i for i, s in enumerate(statements) if s.lstrip().startswith("INSERT INTO events"))
    after_commit = statements[event_written + 1:]  # the payload's reads
    assert reads_of(after_commit, "budget_line_items"), "the payload's line was not read: nothing was checked"
    assert reads_of(after_commit, budgets.name) == []
    assert reads_of(after_commit, modifications.name) == reads_of(after_commit, export_entries.name) == []


async def test_a_full_payload_answers_what_a_fresh_query_does(services: Services) -> None:
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    data = await tenant.ok("admin", FULL, i={"id": line_id, "originalAmount": "130.00"})
    payload = data["updateBudgetLineItem"]
    fresh = (await tenant.ok("reader", FRESH, b=tenant.budget_id))["budget"]
    (node,) = [edge["node"] for edge in fresh["lineItems"]["edges"] if edge["node"]["id"] == line_id]
    assert payload["lineItem"] == {"id": line_id, "originalAmount": "130.00", "erpSynced": node["erpSynced"]}
    assert payload["budget"] == {"id": tenant.budget_id, "version": fresh["version"]}
