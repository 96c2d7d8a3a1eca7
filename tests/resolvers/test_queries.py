"""The read side through the schema: node(id:) answers with the right type for every kind of object the
viewer may see, and the viewer and the cost lists come from records."""

from __future__ import annotations

from tests.erp.workflow import LOCK, MODIFY, SEND, SYNC, add_line
from tests.support import Tenant

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Budget { currency project { id } }
  ... on BudgetLineItem { costCode { code } }
  ... on BudgetModification { fromLineItem { id } createdBy { id } }
  ... on ErpRequest { status budget { id } }
  ... on User { erpIntegrationsPermission company { id } }
  ... on Company { currency } } }"""


async def test_node_answers_every_kind_of_visible_object_with_its_type(tenant: Tenant) -> None:
    first = await add_line(tenant, "05-120", "M", "10.00")
    second = await add_line(tenant, "09-900", "S", "20.00")
    await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    moved = await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": first,
                                                "toLineItemId": second, "amount": "5.00"})
    modification = moved["createBudgetModification"]["modification"]["id"]
    sent = await tenant.ok("admin", SEND, b=tenant.budget_id)
    request = sent["sendToERP"]["erpRequest"]["id"]
    expected = {
        tenant.project_id: "Project",
        tenant.budget_id: "Budget",
        first: "BudgetLineItem",
        modification: "BudgetModification",
        request: "ErpRequest",
        tenant.users["approver"]: "User",
        tenant.cost_codes["03-300"]: "CostCode",
        tenant.cost_types["L"]: "CostType",
        tenant.company_id: "Company",
    }
    answers = {}
    for object_id, typename in expected.items():
        node = (await tenant.ok("admin", NODE, id=object_id))["node"]
        assert (node["__typename"], node["id"]) == (typename, object_id)
        answers[typename] = node
    assert answers["Budget"]["project"] == {"id": tenant.project_id}
    assert answers["BudgetLineItem"]["costCode"] == {"code": "05-120"}
    assert answers["BudgetModification"]["fromLineItem"] == {"id": first}
    assert answers["BudgetModification"]["createdBy"] == {"id": tenant.users["admin"]}
    assert answers["ErpRequest"] == {**answers["ErpRequest"], "status": "PENDING_ACCEPTANCE",
                                     "budget": {"id": tenant.budget_id}}
    assert answers["User"]["erpIntegrationsPermission"] == "STANDARD"
    assert answers["User"]["company"] == {"id": tenant.company_id}
    assert answers["Company"]["currency"] == "USD"
    assert (await tenant.ok("admin", NODE, id="xyz_unknown"))["node"] is None


async def test_a_reader_without_access_gets_nothing_for_the_projects_objects(tenant: Tenant) -> None:
    for object_id in (tenant.project_id, tenant.budget_id):
        assert (await tenant.ok("outsider", NODE, id=object_id))["node"] is None
    assert (await tenant.ok("outsider", NODE, id=tenant.company_id))["node"]["__typename"] == "Company"


async def test_viewer_and_cost_lists(tenant: Tenant) -> None:
    data = await tenant.ok(
        "integrator",
        "{ viewer { id name email isAccountingApprover erpIntegrationsPermission } "
        "costCodes { code erpSynced } costTypes { code name } }",
    )
    assert data["viewer"] == {
        "id": tenant.users["integrator"],
        "name": "Integrator",
        "email": "integrator@example.com",
        "isAccountingApprover": False,
        "erpIntegrationsPermission": "ADMIN",
    }
    assert [c["code"] for c in data["costCodes"]] == ["03-300", "05-120", "09-900"]
    assert data["costTypes"][0] == {"code": "L", "name": "Type L"}
