"""A mutation's payload reads what it selects and nothing more: the budget only when `budget` is selected,
a line's erpSynced (its modifications and export entries) only when `erpSynced` is; what it selects is
what a fresh query answers."""

from __future__ import annotations

from persistence.tables import export_entries, modifications
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


async def test_a_lean_payload_reads_nothing_after_the_commit(services: Services) -> None:
    """The line and its budget as the unit of work committed them (under the budget's lock) are the payload's:
    neither is read again, nor the line's export state."""
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    with counted(services.db) as statements:
        data = await tenant.ok("admin", LEAN, i={"id": line_id, "originalAmount": "120.00"})
    assert data["updateBudgetLineItem"]["lineItem"] == {"id": line_id, "originalAmount": "120.00"}
    event_written = next(i for i, s in enumerate(statements) if "INSERT INTO events" in s)
    assert statements[event_written + 1:] == []
    assert reads_of(statements, modifications.name) == reads_of(statements, export_entries.name) == []


LINE_FIELDS = """id subJob description originalAmount modificationsAmount revisedAmount quantity unitOfMeasure unitCost
  costCode { id code } costType { id code }"""
EVERY_FIELD = f"""mutation($i: UpdateBudgetLineItemInput!) {{ updateBudgetLineItem(input: $i) {{
  lineItem {{ {LINE_FIELDS} }} budget {{ id locked lockedAt version exportStatus }} userErrors {{ code }} }} }}"""
FRESH_LINES = f"""query($b: ID!) {{ budget(id: $b) {{ id locked lockedAt version exportStatus
  lineItems {{ edges {{ node {{ {LINE_FIELDS} }} }} }} }} }}"""


async def test_every_field_of_a_line_updates_payload_is_what_a_fresh_query_answers(services: Services) -> None:
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    changes = {"originalAmount": "7", "quantity": "2.5", "unitCost": "0.125", "unitOfMeasure": " h ",
               "description": "  framing  "}
    payload = (await tenant.ok("admin", EVERY_FIELD, i={"id": line_id, **changes}))["updateBudgetLineItem"]
    fresh = (await tenant.ok("admin", FRESH_LINES, b=tenant.budget_id))["budget"]
    (node,) = [edge["node"] for edge in fresh.pop("lineItems")["edges"] if edge["node"]["id"] == line_id]
    assert payload["lineItem"] == node and node["quantity"] == "2.5000" and node["description"] == "framing"
    assert payload["budget"] == fresh


BUDGET_FIELDS = "id locked lockedAt version exportStatus"
LOCKING = {
    name: f"""mutation($b: ID!) {{ {name}(input: {{budgetId: $b}}) {{
  budget {{ {BUDGET_FIELDS} }} userErrors {{ code }} }} }}"""
    for name in ("lockBudget", "unlockBudget")
}


async def test_a_lock_and_an_unlocks_payload_is_what_a_fresh_query_answers(services: Services) -> None:
    tenant = await make_tenant(services)
    for name in ("lockBudget", "unlockBudget"):
        payload = (await tenant.ok("admin", LOCKING[name], b=tenant.budget_id))[name]
        fresh = (await tenant.ok("reader", f"query($b: ID!) {{ budget(id: $b) {{ {BUDGET_FIELDS} }} }}",
                                 b=tenant.budget_id))["budget"]
        assert payload["budget"] == fresh and fresh["locked"] is (name == "lockBudget")


async def test_a_full_payload_answers_what_a_fresh_query_does(services: Services) -> None:
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    data = await tenant.ok("admin", FULL, i={"id": line_id, "originalAmount": "130.00"})
    payload = data["updateBudgetLineItem"]
    fresh = (await tenant.ok("reader", FRESH, b=tenant.budget_id))["budget"]
    (node,) = [edge["node"] for edge in fresh["lineItems"]["edges"] if edge["node"]["id"] == line_id]
    assert payload["lineItem"] == {"id": line_id, "originalAmount": "130.00", "erpSynced": node["erpSynced"]}
    assert payload["budget"] == {"id": tenant.budget_id, "version": fresh["version"]}


BUDGET_AFTER = f"budget {{ {BUDGET_FIELDS} }} userErrors {{ code }}"
LINE_MUTATIONS = {
    "createBudgetLineItem": f"""mutation($i: CreateBudgetLineItemInput!) {{ createBudgetLineItem(input: $i) {{
      {BUDGET_AFTER} }} }}""",
    "importBudgetLineItems": f"""mutation($i: ImportBudgetLineItemsInput!) {{ importBudgetLineItems(input: $i) {{
      {BUDGET_AFTER} }} }}""",
    "createBudgetModification": f"""mutation($i: CreateBudgetModificationInput!) {{
      createBudgetModification(input: $i) {{ {BUDGET_AFTER} }} }}""",
    "deleteBudgetLineItem": f"""mutation($id: ID!) {{ deleteBudgetLineItem(id: $id) {{ {BUDGET_AFTER} }} }}""",
}


async def test_the_budget_after_every_change_of_its_lines_is_what_a_fresh_query_answers(services: Services) -> None:
    """Each payload's budget is the one the unit of work committed (not read again)."""
    tenant = await make_tenant(services)
    line_id, kept = await add_line(tenant, "03-300", "L", "100.00"), await add_line(tenant, "03-300", "L", "1", "K")
    item = {"costCodeId": tenant.cost_codes["03-300"], "costTypeId": tenant.cost_types["M"], "originalAmount": "5"}
    steps: list[tuple[str, dict[str, object]]] = [
        ("createBudgetLineItem", {"i": {"budgetId": tenant.budget_id, "item": {**item, "subJob": "A"}}}),
        ("importBudgetLineItems", {"i": {"budgetId": tenant.budget_id, "items": [{**item, "subJob": "B"}]}}),
        ("deleteBudgetLineItem", {"id": line_id}),
        ("lockBudget", {"b": tenant.budget_id}),
        ("createBudgetModification", {"i": {"budgetId": tenant.budget_id, "toLineItemId": kept, "amount": "2.50"}}),
    ]
    for name, variables in steps:
        document = LINE_MUTATIONS.get(name) or LOCKING[name]
        payload = (await tenant.ok("admin", document, **variables))[name]
        fresh = (await tenant.ok("reader", f"query($b: ID!) {{ budget(id: $b) {{ {BUDGET_FIELDS} }} }}",
                                 b=tenant.budget_id))["budget"]
        assert payload["budget"] == fresh, name
    assert fresh["version"] == 8 and fresh["locked"] is True
