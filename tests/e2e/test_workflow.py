"""The budget's whole trip to the ERP over HTTP, against the running app and its export worker."""

from __future__ import annotations

from typing import Any

import httpx

from persistence.database import Database
from resolvers.context import Services
from tests.e2e.conftest import (
    BUDGET,
    CONFIRM_POSTING,
    CREATE_COST_CODE,
    CREATE_LINE,
    CREATE_MODIFICATION,
    DECIDE,
    ERP_REQUEST,
    LOCK,
    RETRIEVE,
    SEND,
    SYNC_PROJECT,
    UNLOCK,
    UPDATE_LINE,
    RunningApp,
    add_line,
    budget_of,
    codes,
    gql,
    line_fields,
    ok,
    ready_to_send,
    refused,
    wait_for_commit,
)
from tests.support import Tenant, make_tenant, snapshot

HISTORY = """query($id: ID!) { budget(id: $id) { history(first: 100) { totalCount edges { node {
  sequence type actor { id } previousStatus status reason erpRequest { id }
} } } } }"""
REQUEST_QUEUE = """query($p: ID) { erpRequests(projectId: $p) { totalCount edges { node { id status } } } }"""


async def request_status(client: httpx.AsyncClient, tenant: Tenant, request_id: str) -> dict[str, Any]:
    data = await ok(client, tenant.token("approver"), ERP_REQUEST, id=request_id)
    request: dict[str, Any] = data["erpRequest"]
    return request


def by_line(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["lineItem"]["id"]: line for line in request["lines"]}


def line_amounts(budget: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        edge["node"]["id"]: (edge["node"]["originalAmount"], edge["node"]["modificationsAmount"],
                             edge["node"]["revisedAmount"])
        for edge in budget["lineItems"]["edges"]
    }


async def test_budget_goes_to_the_erp_and_back_through_every_state(
    client: httpx.AsyncClient, running_app: RunningApp, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    admin, approver, integrator = tenant.token("admin"), tenant.token("approver"), tenant.token("integrator")
    budget_id = tenant.budget_id

    # The company admin adds a cost code of its own; the budget admin builds the budget on it.
    created = await ok(client, admin, CREATE_COST_CODE, i={"code": "16-100", "description": "Electrical"})
    electrical = created["createCostCode"]["costCode"]
    assert electrical["code"] == "16-100" and electrical["erpSynced"] is False
    tenant.cost_codes["16-100"] = electrical["id"]

    concrete = await add_line(client, tenant, "03-300", "L", "1000.00")
    steel = await add_line(client, tenant, "05-120", "M", "2500.50")
    data = await ok(client, admin, CREATE_LINE,
                    i={"budgetId": budget_id, "item": line_fields(tenant, "09-900", "S", "750", sub_job="PHASE-2")})
    finishes = data["createBudgetLineItem"]["lineItem"]
    assert finishes["subJob"] == "PHASE-2" and finishes["originalAmount"] == "750.00"
    finishes = finishes["id"]
    wiring = await add_line(client, tenant, "16-100", "L", "300.00")

    budget = await budget_of(client, tenant)
    assert budget["lineItemCount"] == 4 and budget["lineItems"]["totalCount"] == 4
    assert budget["originalBudgetTotal"] == "4550.50"
    assert "PROJECT_NOT_SYNCED" in codes(budget["sendBlockers"])
    assert "COST_CODE_NOT_SYNCED" in codes(budget["sendBlockers"])

    synced = await ok(client, admin, SYNC_PROJECT, p=tenant.project_id)
    assert synced["syncProjectToERP"]["project"]["erpSynced"] is True
    assert synced["syncProjectToERP"]["project"]["erpJobId"]
    budget = await budget_of(client, tenant)
    assert codes(budget["sendBlockers"]) == ["BUDGET_NOT_LOCKED"]

    locked = (await ok(client, admin, LOCK, i={"budgetId": budget_id}))["lockBudget"]["budget"]
    assert locked["locked"] is True and locked["sendBlockers"] == []

    # First send: everything goes, as new lines.
    sent = (await ok(client, admin, SEND, i={"budgetId": budget_id}))["sendToERP"]
    first = sent["erpRequest"]
    assert first["status"] == "PENDING_ACCEPTANCE" and first["kind"] == "CREATE_BUDGET" and first["sequence"] == 1
    assert first["sentBy"]["id"] == tenant.users["admin"]
    assert first["totalOriginalBudget"] == "4550.50" and first["totalBudgetChanges"] == "0.00"
    lines = by_line(first)
    assert set(lines) == {concrete, steel, finishes, wiring}
    assert lines[finishes] == {
        "lineItem": {"id": finishes}, "costCode": "09-900", "costType": "S", "subJob": "PHASE-2",
        "originalBudget": "750.00", "budgetChanges": "0.00", "revisedEstimate": "750.00", "isNewLine": True,
    }
    assert lines[steel]["originalBudget"] == "2500.50" and lines[steel]["subJob"] is None
    assert sent["budget"]["exportStatus"] == "PENDING_ACCEPTANCE"
    assert first["budget"]["exportStatus"] == "PENDING_ACCEPTANCE"

    # Sent by mistake: retrieved before the approver looked at it.
    retrieved = (await ok(client, admin, RETRIEVE, i={"budgetId": budget_id}))["retrieveBudget"]
    assert retrieved["erpRequest"]["id"] == first["id"]
    assert retrieved["erpRequest"]["status"] == "RETRIEVED"
    assert retrieved["erpRequest"]["retrievedBy"]["id"] == tenant.users["admin"]
    assert retrieved["budget"]["exportStatus"] == "RETRIEVED" and retrieved["budget"]["locked"] is True

    second = (await ok(client, admin, SEND, i={"budgetId": budget_id}))["sendToERP"]["erpRequest"]
    assert second["id"] != first["id"] and second["sequence"] == 2
    assert second["status"] == "PENDING_ACCEPTANCE" and second["kind"] == "CREATE_BUDGET"
    assert second["totalOriginalBudget"] == "4550.50"

    # The approver rejects: without a reason nothing happens.
    before = await snapshot(db, tenant.company_id)
    errors = await refused(client, approver, DECIDE, i={"erpRequestId": second["id"], "decision": "REJECT"})
    assert codes(errors) == ["REASON_REQUIRED"]
    assert errors[0]["field"] == ["input", "reason"]
    assert await snapshot(db, tenant.company_id) == before

    reason = "09-900 belongs to phase 3, not phase 2"
    rejected = (await ok(client, approver, DECIDE,
                         i={"erpRequestId": second["id"], "decision": "REJECT", "reason": reason}))["decideExport"]
    assert rejected["erpRequest"]["status"] == "REJECTED"
    assert rejected["erpRequest"]["rejectionReason"] == reason
    assert rejected["erpRequest"]["decidedBy"]["id"] == tenant.users["approver"]
    assert rejected["budget"]["exportStatus"] == "REJECTED"
    assert (await budget_of(client, tenant))["unlockBlockers"] == []

    # After a rejection the budget admin unlocks, fixes the lines, locks and adds a modification.
    unlocked = (await ok(client, admin, UNLOCK, i={"budgetId": budget_id}))["unlockBudget"]["budget"]
    assert unlocked["locked"] is False
    updated = await ok(client, admin, UPDATE_LINE, i={"id": concrete, "originalAmount": "1200.00"})
    assert updated["updateBudgetLineItem"]["lineItem"]["originalAmount"] == "1200.00"
    await ok(client, admin, LOCK, i={"budgetId": budget_id})

    moved = (await ok(client, admin, CREATE_MODIFICATION, i={
        "budgetId": budget_id, "fromLineItemId": steel, "toLineItemId": concrete, "amount": "500.00",
        "notes": "pour moved ahead of steel",
    }))["createBudgetModification"]
    modification = moved["modification"]
    assert modification["number"] == 1 and modification["amount"] == "500.00"
    assert modification["fromLineItem"]["id"] == steel and modification["toLineItem"]["id"] == concrete
    assert modification["createdBy"]["id"] == tenant.users["admin"]
    budget = await budget_of(client, tenant)
    amounts = line_amounts(budget)
    assert amounts[concrete] == ("1200.00", "500.00", "1700.00")
    assert amounts[steel] == ("2500.50", "-500.00", "2000.50")
    assert budget["originalBudgetTotal"] == "4750.50" and budget["revisedBudgetTotal"] == "4750.50"

    third = (await ok(client, admin, SEND, i={"budgetId": budget_id}))["sendToERP"]["erpRequest"]
    assert third["sequence"] == 3 and third["kind"] == "CREATE_BUDGET"
    assert third["totalOriginalBudget"] == "4750.50" and third["totalBudgetChanges"] == "0.00"
    lines = by_line(third)
    assert (lines[concrete]["originalBudget"], lines[concrete]["budgetChanges"],
            lines[concrete]["revisedEstimate"]) == ("1200.00", "500.00", "1700.00")
    assert (lines[steel]["budgetChanges"], lines[steel]["revisedEstimate"]) == ("-500.00", "2000.50")

    # The approver accepts; the worker exports in the background.
    accepted = (await ok(client, approver, DECIDE, i={"erpRequestId": third["id"], "decision": "ACCEPT"}))
    accepted_request = accepted["decideExport"]["erpRequest"]
    assert accepted_request["decidedBy"]["id"] == tenant.users["approver"]
    # The worker may already have run by the time the payload is read.
    assert accepted_request["status"] in ("EXPORTING", "AWAITING_POSTING")
    exported = await wait_for_commit(running_app.runtime, tenant.company_id,
                                     lambda: request_status(client, tenant, third["id"]),
                                     lambda r: r["status"] == "AWAITING_POSTING")
    assert exported["erpReference"] and exported["exportedAt"] and exported["postedAt"] is None
    assert exported["budget"]["exportStatus"] == "AWAITING_POSTING"

    # Unlocking waits for posting in Job Cost, and says so before anyone tries.
    budget = await budget_of(client, tenant)
    assert codes(budget["unlockBlockers"]) == ["AWAITING_POSTING"]
    assert "AWAITING_POSTING" in codes(budget["sendBlockers"])
    before = await snapshot(db, tenant.company_id)
    assert codes(await refused(client, admin, UNLOCK, i={"budgetId": budget_id})) == ["AWAITING_POSTING"]
    assert await snapshot(db, tenant.company_id) == before

    posted = (await ok(client, integrator, CONFIRM_POSTING, i={"erpRequestId": third["id"]}))
    posted_request = posted["confirmJobCostPosting"]["erpRequest"]
    assert posted_request["status"] == "SYNCED" and posted_request["postedAt"]
    assert posted_request["erpReference"] == exported["erpReference"]
    budget = await budget_of(client, tenant)
    assert budget["exportStatus"] == "SYNCED" and budget["unlockBlockers"] == []
    assert codes(budget["sendBlockers"]) == ["NOTHING_TO_SEND"]
    assert all(edge["node"]["erpSynced"] for edge in budget["lineItems"]["edges"])

    # A change after the sync: a re-send carries only the deltas.
    await ok(client, admin, UNLOCK, i={"budgetId": budget_id})
    await ok(client, admin, UPDATE_LINE, i={"id": finishes, "originalAmount": "900.00"})
    await ok(client, admin, LOCK, i={"budgetId": budget_id})
    added = await ok(client, admin, CREATE_MODIFICATION,
                     i={"budgetId": budget_id, "toLineItemId": wiring, "amount": "125.25", "notes": "extra circuits"})
    assert added["createBudgetModification"]["modification"]["number"] == 2
    assert added["createBudgetModification"]["budget"]["modificationsTotal"] == "125.25"

    fourth = (await ok(client, admin, SEND, i={"budgetId": budget_id}))["sendToERP"]["erpRequest"]
    assert fourth["sequence"] == 4 and fourth["kind"] == "UPDATE_BUDGET"
    lines = by_line(fourth)
    assert set(lines) == {finishes, wiring}
    assert lines[finishes] == {
        "lineItem": {"id": finishes}, "costCode": "09-900", "costType": "S", "subJob": "PHASE-2",
        "originalBudget": "150.00", "budgetChanges": "0.00", "revisedEstimate": "900.00", "isNewLine": False,
    }
    assert (lines[wiring]["originalBudget"], lines[wiring]["budgetChanges"], lines[wiring]["revisedEstimate"],
            lines[wiring]["isNewLine"]) == ("0.00", "125.25", "425.25", False)
    assert fourth["totalOriginalBudget"] == "150.00" and fourth["totalBudgetChanges"] == "125.25"

    budget = await budget_of(client, tenant)
    assert [r["id"] for r in budget["erpRequests"]] == [fourth["id"], third["id"], second["id"], first["id"]]
    queue = (await ok(client, approver, REQUEST_QUEUE, p=tenant.project_id))["erpRequests"]
    assert queue["totalCount"] == 4

    # The audit trail, newest first, names who did what and why.
    events = [e["node"] for e in (await ok(client, admin, HISTORY, id=budget_id))["budget"]["history"]["edges"]]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == len(sequences)
    status_events = [(e["type"], e["status"], (e["actor"] or {}).get("id")) for e in events
                     if e["erpRequest"] is not None]
    users = tenant.users
    assert status_events == [
        ("BudgetSentToErp", "PENDING_ACCEPTANCE", users["admin"]),
        ("JobCostPosted", "SYNCED", users["integrator"]),
        ("ExportWritten", "AWAITING_POSTING", None),
        ("ExportAccepted", "EXPORTING", users["approver"]),
        ("BudgetSentToErp", "PENDING_ACCEPTANCE", users["admin"]),
        ("ExportRejected", "REJECTED", users["approver"]),
        ("BudgetSentToErp", "PENDING_ACCEPTANCE", users["admin"]),
        ("BudgetRetrieved", "RETRIEVED", users["admin"]),
        ("BudgetSentToErp", "PENDING_ACCEPTANCE", users["admin"]),
    ]
    rejection = next(e for e in events if e["type"] == "ExportRejected")
    assert rejection["reason"] == reason and rejection["previousStatus"] == "PENDING_ACCEPTANCE"
    assert rejection["erpRequest"]["id"] == second["id"]
    types = [e["type"] for e in events]
    assert types[-1] == "LineItemCreated"
    for expected in ("BudgetLocked", "BudgetUnlocked", "LineItemUpdated", "BudgetModificationCreated",
                     "ProjectSyncedToErp"):
        assert expected in types
    assert types.count("BudgetLocked") == 3 and types.count("BudgetUnlocked") == 2


async def test_send_blockers_before_lock_name_the_missing_lock(client: httpx.AsyncClient, services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(client, tenant, "03-300", "L", "10.00")
    await ok(client, tenant.token("admin"), SYNC_PROJECT, p=tenant.project_id)
    budget = await budget_of(client, tenant)
    assert budget["locked"] is False
    assert codes(budget["sendBlockers"]) == ["BUDGET_NOT_LOCKED"]
    assert all(b["message"] for b in budget["sendBlockers"])
    assert codes(budget["unlockBlockers"]) == ["BUDGET_NOT_LOCKED"]


async def test_send_with_an_idempotency_key_creates_one_request(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    await ready_to_send(client, tenant)
    admin = tenant.token("admin")
    action = {"budgetId": tenant.budget_id, "idempotencyKey": "send-7f3a"}

    first = (await ok(client, admin, SEND, i=action))["sendToERP"]
    after_first = await snapshot(db, tenant.company_id)
    again = (await ok(client, admin, SEND, i=action))["sendToERP"]
    assert again["erpRequest"]["id"] == first["erpRequest"]["id"]
    assert await snapshot(db, tenant.company_id) == after_first
    budget = await budget_of(client, tenant)
    assert [r["id"] for r in budget["erpRequests"]] == [first["erpRequest"]["id"]]

    errors = await refused(client, admin, SEND, i={**action, "expectedVersion": budget["version"]})
    assert codes(errors) == ["VALIDATION_FAILED"]
    assert errors[0]["field"] == ["input", "idempotencyKey"]
    assert await snapshot(db, tenant.company_id) == after_first


async def test_stale_expected_version_is_a_conflict_that_changes_nothing(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    line = await add_line(client, tenant, "03-300", "L", "10.00")
    admin = tenant.token("admin")
    version = (await budget_of(client, tenant))["version"]
    await ok(client, admin, UPDATE_LINE, i={"id": line, "originalAmount": "20.00", "expectedVersion": version})

    before = await snapshot(db, tenant.company_id)
    errors = await refused(client, admin, UPDATE_LINE,
                           i={"id": line, "originalAmount": "30.00", "expectedVersion": version})
    assert codes(errors) == ["VERSION_CONFLICT"]
    errors = await refused(client, admin, LOCK, i={"budgetId": tenant.budget_id, "expectedVersion": version})
    assert codes(errors) == ["VERSION_CONFLICT"]
    errors = await refused(client, admin, CREATE_LINE, i={
        "budgetId": tenant.budget_id, "item": line_fields(tenant, "05-120", "M", "1.00"), "expectedVersion": version,
    })
    assert codes(errors) == ["VERSION_CONFLICT"]
    assert await snapshot(db, tenant.company_id) == before

    locked = (await ok(client, admin, LOCK, i={"budgetId": tenant.budget_id, "expectedVersion": version + 1}))
    assert locked["lockBudget"]["budget"]["version"] == version + 2


async def test_company_without_an_erp_connection_cannot_sync_or_send(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services, connector=None)
    admin = tenant.token("admin")
    await add_line(client, tenant, "03-300", "L", "10.00")
    await ok(client, admin, LOCK, i={"budgetId": tenant.budget_id})

    body = await gql(client, admin, "{ erpConnection { connector } }")
    assert body == {"data": {"erpConnection": None}}
    budget = await budget_of(client, tenant)
    assert "ERP_NOT_CONNECTED" in codes(budget["sendBlockers"])

    before = await snapshot(db, tenant.company_id)
    assert codes(await refused(client, admin, SYNC_PROJECT, p=tenant.project_id)) == ["ERP_NOT_CONNECTED"]
    assert codes(await refused(client, admin, SEND, i={"budgetId": tenant.budget_id})) == ["ERP_NOT_CONNECTED"]
    assert await snapshot(db, tenant.company_id) == before


async def test_each_role_is_refused_what_it_may_not_do_and_nothing_changes(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    line = await add_line(client, tenant, "03-300", "L", "10.00")
    await ok(client, tenant.token("admin"), SYNC_PROJECT, p=tenant.project_id)
    action = {"budgetId": tenant.budget_id}

    async def assert_forbidden(role: str, query: str, **variables: Any) -> None:
        before = await snapshot(db, tenant.company_id)
        errors = await refused(client, tenant.token(role), query, **variables)
        assert codes(errors) == ["FORBIDDEN"], (role, errors)
        assert errors[0]["message"]
        assert await snapshot(db, tenant.company_id) == before

    await assert_forbidden("reader", LOCK, i=action)
    await assert_forbidden("approver", UPDATE_LINE, i={"id": line, "originalAmount": "99.00"})
    await assert_forbidden("approver", CREATE_LINE,
                           i={"budgetId": tenant.budget_id, "item": line_fields(tenant, "05-120", "M", "1.00")})
    await ok(client, tenant.token("locker"), LOCK, i=action)
    await assert_forbidden("standard", SEND, i=action)
    await assert_forbidden("reader", SEND, i=action)
    for role in ("standard", "locker", "sender", "reader", "approver"):
        await assert_forbidden(role, UNLOCK, i=action)
    budget = (await ok(client, tenant.token("admin"), UNLOCK, i=action))["unlockBudget"]["budget"]
    assert budget["locked"] is False

    # The same checks feed the blockers each viewer sees.
    await ok(client, tenant.token("admin"), LOCK, i=action)
    data = await ok(client, tenant.token("standard"), BUDGET, id=tenant.budget_id)
    assert "FORBIDDEN" in codes(data["budget"]["sendBlockers"])
    assert "FORBIDDEN" in codes(data["budget"]["unlockBlockers"])
    sent = (await ok(client, tenant.token("sender"), SEND, i=action))["sendToERP"]["erpRequest"]
    assert sent["sentBy"]["id"] == tenant.users["sender"]
    await assert_forbidden("erp_reader", DECIDE, i={"erpRequestId": sent["id"], "decision": "ACCEPT"})
    await assert_forbidden("admin", DECIDE, i={"erpRequestId": sent["id"], "decision": "ACCEPT"})
