"""The read side's seam on both engines: every ReadStore answer is records (or domain values), scoped to the
company it is asked for, and batched (one answer for many keys)."""

from __future__ import annotations

from decimal import Decimal

from domain.permissions import NO_ACCESS, Grant, PermissionLevel
from persistence.database import Database
from persistence.keyset import RequestOrder, RequestQueueFilter
from persistence.reads import BudgetContents, EventRelations, ReadStore, SyncInputs
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    ErpRequestRecord,
    EventRecord,
    LineItemRecord,
    ProjectRecord,
    UserRecord,
)
from tests.erp.workflow import LOCK, MODIFY, SEND, add_line, locked_with_one_line
from tests.support import Tenant, make_services, make_tenant


async def two_tenants(db: Database) -> tuple[Tenant, Tenant]:
    services = make_services(db)
    try:
        return await make_tenant(services), await make_tenant(services)
    finally:
        await services.connectors.aclose()


async def test_the_viewer_access_and_visible_projects(engine_db: Database) -> None:
    tenant, _ = await two_tenants(engine_db)
    reads = ReadStore(engine_db)
    found = await reads.user_with_company(tenant.users["locker"])
    assert found is not None
    user, company = found
    assert isinstance(user, UserRecord) and isinstance(company, CompanyRecord)
    assert (user.email, user.company_id, company.id, company.currency) == (
        "locker@example.com",
        tenant.company_id,
        tenant.company_id,
        "USD",
    )
    assert company.erp_connector == "embedded" and isinstance(company.erp_settings, dict)
    assert await reads.user_with_company("usr_missing") is None

    access = await reads.access(tenant.users["locker"], [tenant.project_id, "prj_other"])
    assert access[tenant.project_id].budget_permission is PermissionLevel.STANDARD
    assert access[tenant.project_id].grants == frozenset({Grant.LOCK_BUDGET})
    assert "prj_other" not in access  # no grant: the caller reads NO_ACCESS
    assert access.get("prj_other", NO_ACCESS) is NO_ACCESS

    reader = await reads.all_access(tenant.users["reader"])  # every project the user holds a row for
    assert list(reader) == [tenant.project_id]
    assert reader[tenant.project_id].budget_permission is not PermissionLevel.NONE
    outsider = await reads.all_access(tenant.users["outsider"])  # a NONE grant: a row that opens nothing
    assert outsider and all(a.budget_permission is PermissionLevel.NONE for a in outsider.values())


async def test_lookups_by_id_are_batched_and_scoped_to_the_company(engine_db: Database) -> None:
    tenant, other = await two_tenants(engine_db)
    reads = ReadStore(engine_db)
    users = await reads.users([tenant.users["admin"], tenant.users["reader"], other.users["admin"]], tenant.company_id)
    assert {u.id for u in users} == {tenant.users["admin"], tenant.users["reader"]}
    assert [p.id for p in await reads.projects([tenant.project_id, other.project_id], tenant.company_id)] == [
        tenant.project_id
    ]
    budgets = await reads.budgets([tenant.budget_id, other.budget_id], None)  # None: the system, every company
    assert {b.id for b in budgets} == {tenant.budget_id, other.budget_id}
    assert all(isinstance(b, BudgetRecord) for b in budgets)
    codes = await reads.cost_codes(list(tenant.cost_codes.values()) + list(other.cost_codes.values()), other.company_id)
    assert {c.id for c in codes} == set(other.cost_codes.values())
    types = await reads.cost_types(list(tenant.cost_types.values()), other.company_id)
    assert types == []
    assert [c.id for c in await reads.companies([tenant.company_id])] == [tenant.company_id]
    assert await reads.requests([], tenant.company_id) == []
    listed = await reads.company_cost_codes(tenant.company_id)
    assert [c.code for c in listed] == sorted(tenant.cost_codes)
    assert all(isinstance(c, CostCodeRecord) for c in listed)
    assert [t.code for t in await reads.company_cost_types(tenant.company_id)] == sorted(tenant.cost_types)


async def test_projects_budgets_lines_and_totals(engine_db: Database) -> None:
    tenant, other = await two_tenants(engine_db)
    reads = ReadStore(engine_db)
    first = await add_line(tenant, "03-300", "L", "1200.00")
    second = await add_line(tenant, "05-120", "M", "800.50", sub_job="PHASE-2")

    page, total = await reads.project_page(tenant.company_id, tenant.users["admin"], True, after=None, limit=10)
    assert ([p.id for p in page], total) == ([tenant.project_id], 1)
    assert all(isinstance(p, ProjectRecord) for p in page)
    hidden, none = await reads.project_page(tenant.company_id, tenant.users["outsider"], False, after=None, limit=10)
    assert (hidden, none) == ([], 0)

    budgets = await reads.budgets_by_project(tenant.company_id, [tenant.project_id, other.project_id])
    assert [b.id for b in budgets] == [tenant.budget_id]

    totals = {t.budget_id: t for t in await reads.budget_totals([tenant.budget_id, other.budget_id])}
    assert set(totals) == {tenant.budget_id}  # a budget without lines has no totals record
    assert (totals[tenant.budget_id].line_count, totals[tenant.budget_id].original_total) == (2, Decimal("2000.50"))

    lines = await reads.line_item_pages([tenant.budget_id, other.budget_id], after=None, limit=1)
    assert [line.id for line in lines] == [first]
    after = await reads.line_item_pages([tenant.budget_id], after=(lines[0].position, lines[0].id), limit=5)
    assert [(line.id, line.sub_job, line.cost_code, line.cost_type) for line in after] == [
        (second, "PHASE-2", "05-120", "M")
    ]
    by_id = await reads.line_items([first, second], other.company_id)
    assert by_id == []  # another company's lines are not found
    found = await reads.line_items([second], tenant.company_id)
    assert isinstance(found[0], LineItemRecord) and found[0].original_amount == Decimal("800.50")

    assert await reads.sync_inputs_of_lines([]) == SyncInputs()
    await tenant.ok("admin", LOCK, b=tenant.budget_id)  # modifications are made on a locked budget
    moved = await tenant.ok(
        "admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": first, "toLineItemId": second,
                            "amount": "100.00"}
    )
    modification_id = moved["createBudgetModification"]["modification"]["id"]
    touching = await reads.sync_inputs_of_lines([first])
    assert [m.id for m in touching.modifications] == [modification_id] and touching.entries == []
    of_budgets = await reads.modifications_of_budgets([tenant.budget_id, other.budget_id])
    assert [m.id for m in of_budgets.modifications] == [modification_id]
    assert await reads.modifications_of_budgets([other.budget_id]) == SyncInputs()
    assert (await reads.modifications([modification_id], other.company_id)).modifications == []

    contents = await reads.contents_of_budgets([tenant.budget_id, other.budget_id])
    assert contents[other.budget_id] == BudgetContents()
    mine = contents[tenant.budget_id]
    assert [line.id for line in mine.lines] == [first, second]
    assert [m.id for m in mine.modifications] == [modification_id]
    assert mine.entries == []


async def test_requests_and_the_event_log(engine_db: Database) -> None:
    tenant, other = await two_tenants(engine_db)
    reads = ReadStore(engine_db)
    newest = await locked_with_one_line(tenant)
    assert await reads.latest_sequence(tenant.company_id) == newest
    assert await reads.latest_sequence("cmp_without_events") == 0
    sent = await tenant.ok("admin", SEND, b=tenant.budget_id)
    request_id = sent["sendToERP"]["erpRequest"]["id"]

    requests = await reads.requests_of_budgets([tenant.budget_id, other.budget_id])
    assert [r.id for r in requests] == [request_id]
    assert isinstance(requests[0], ErpRequestRecord) and requests[0].status == "PENDING_ACCEPTANCE"
    lines = await reads.request_lines([request_id])
    assert [(line.cost_code, line.original_budget, line.is_new_line) for line in lines] == [
        ("03-300", Decimal("1.00"), True)
    ]
    newest_first = RequestOrder()
    queue, total = await reads.request_queue(
        tenant.company_id,
        where=RequestQueueFilter(statuses=("PENDING_ACCEPTANCE",)),
        order=newest_first,
        after=None,
        limit=10,
    )
    assert ([r.id for r in queue], total) == ([request_id], 1)
    assert queue[0].total_original_budget == Decimal("1.00")
    synced = RequestQueueFilter(statuses=("SYNCED",))
    assert await reads.request_queue(tenant.company_id, where=synced, order=newest_first, after=None, limit=10) == (
        [],
        0,
    )
    everything = RequestQueueFilter()
    assert (await reads.request_queue(other.company_id, where=everything, order=newest_first, after=None, limit=10))[
        1
    ] == 0

    events = await reads.company_events_after(tenant.company_id, newest, limit=10)
    assert [(e.sequence, e.status, e.erp_request_id) for e in events] == [
        (newest + 1, "PENDING_ACCEPTANCE", request_id)
    ]
    assert all(isinstance(e, EventRecord) for e in events)
    assert await reads.backlog(tenant.company_id, newest - 1) == 2
    history, count = await reads.budget_history(tenant.budget_id, limit=1, before=None)
    assert ([e.sequence for e in history], count) == ([newest + 1], newest + 1)
    older, _ = await reads.budget_history(tenant.budget_id, limit=10, before=newest + 1)
    assert [e.sequence for e in older] == list(range(newest, 0, -1))

    related = await reads.relations_of_events(events)
    assert set(related.users) == {tenant.users["admin"]}
    assert set(related.projects) == {tenant.project_id}
    assert set(related.budgets) == {tenant.budget_id}
    assert set(related.requests) == {request_id}
    assert await reads.relations_of_events([]) == EventRelations()


async def test_the_entries_of_requests_with_their_lines_codes_and_a_companys_projects(engine_db: Database) -> None:
    tenant, other = await two_tenants(engine_db)
    reads = ReadStore(engine_db)
    concrete = await add_line(tenant, "03-300", "L", "1500.00", subJob="BLDG-A", quantity="12.5")
    steel = await add_line(tenant, "05-120", "M", "2500.00")
    await locked_with_one_line(other)
    await tenant.ok("admin", "mutation($p: ID!) { syncProjectToERP(projectId: $p) { userErrors { code } } }",
                    p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                        "toLineItemId": concrete, "amount": "300.00"})
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    other_request = (await other.ok("admin", SEND, b=other.budget_id))["sendToERP"]["erpRequest"]["id"]

    entries = await reads.request_entries([request_id, other_request])
    mine = [e for e in entries if e.request_id == request_id]
    # By line, the original-budget entry first, then modifications by number; each with its line's codes.
    assert [(e.line_item_id, e.kind, e.amount, e.cost_code, e.cost_type, e.sub_job, e.quantity) for e in mine] == [
        (concrete, "ORIGINAL_BUDGET", Decimal("1500.00"), "03-300", "L", "BLDG-A", Decimal("12.5")),
        (concrete, "BUDGET_MODIFICATION", Decimal("300.00"), "03-300", "L", "BLDG-A", Decimal("12.5")),
        (steel, "ORIGINAL_BUDGET", Decimal("2500.00"), "05-120", "M", "", None),
        (steel, "BUDGET_MODIFICATION", Decimal("-300.00"), "05-120", "M", "", None),
    ]
    assert {e.request_id for e in entries} == {request_id, other_request}
    assert await reads.request_entries([]) == []

    await tenant.ok("admin", """mutation { createProject(input: {name: "Annex", number: "A-1"}) { project { id } } }""")
    projects = await reads.company_projects(tenant.company_id)
    assert [p.number for p in projects] == sorted(["A-1", f"P-{tenant.company_id[-6:]}"])
    assert all(isinstance(p, ProjectRecord) and p.company_id == tenant.company_id for p in projects)
