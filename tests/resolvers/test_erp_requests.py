"""The ERP request lifecycle on the fake unit of work: send, retrieve, decide, retry, confirm posting; every
refusal with its code and proof that nothing changed, idempotency, version conflicts, the job queued with an
ACCEPT or a retry and the export kick after its commit."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from domain.errors import ErrorCode
from domain.export import Capabilities
from domain.status import ExportStatus, RequestAction
from resolvers.budget_lines import create_modification
from resolvers.erp_requests import confirm_posting, decide_export, retrieve_budget, retry_export, send_to_erp
from resolvers.locking import unlock_budget
from resolvers.service import Changed
from tests.resolvers.service_support import (
    T0,
    Shop,
    accepted,
    concurrent_version_bump,
    make_shop,
    new_events,
    refused,
    two_shops,
)

E, S = ErrorCode, ExportStatus
MISSING_REQUEST = "req_00000000000000000000000000000000"


async def ready_to_send(shop: Shop) -> tuple[str, str]:
    """Two lines (one with a sub job), locked."""
    a = await shop.add_line(amount="100", description="Concrete")
    b = await shop.add_line("05-120", "M", amount="50", sub_job="A")
    await shop.lock()
    return a, b


# --- sendToERP --------------------------------------------------------------------------------------------


async def test_send() -> None:
    shop = make_shop()
    a, b = await ready_to_send(shop)
    before = shop.mark()
    changed = accepted(await send_to_erp(shop.ctx("sender"), shop.budget_id, 4, None))
    request_id = changed.erp_request_id
    assert request_id is not None and changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    request = shop.request(request_id)
    sender = shop.users["sender"].id
    assert (request.company_id, request.budget_id, request.project_id) == (
        shop.company.id,
        shop.budget_id,
        shop.project.id,
    )
    assert (request.sequence, request.kind, request.status, request.sent_at, request.sent_by_id) == (
        1,
        "CREATE_BUDGET",
        "PENDING_ACCEPTANCE",
        T0,
        sender,
    )
    assert request.export_id == f"bb-{request_id.removeprefix('req_')}" and request.export_attempts == 0
    lines = sorted(
        (v for k, v in shop.store.state.request_lines.items() if k[0] == request_id), key=lambda r: r.position
    )
    assert [(r.position, r.line_item_id, r.cost_code, r.cost_type, r.sub_job, r.is_new_line) for r in lines] == [
        (1, a, "03-300", "L", None, True),
        (2, b, "05-120", "M", "A", True),
    ]
    assert [(r.original_budget, r.budget_changes, r.revised_estimate) for r in lines] == [
        (Decimal("100"), Decimal("0"), Decimal("100")),
        (Decimal("50"), Decimal("0"), Decimal("50")),
    ]
    entries = shop.store.entries_of(shop.budget_id)
    assert sorted((e.line_item_id, e.kind, e.amount, e.request_status) for e in entries) == sorted(
        [
            (a, "ORIGINAL_BUDGET", Decimal("100"), "PENDING_ACCEPTANCE"),
            (b, "ORIGINAL_BUDGET", Decimal("50"), "PENDING_ACCEPTANCE"),
        ]
    )
    budget = shop.budget
    assert (budget.export_status, budget.last_request_id, budget.request_count, budget.version) == (
        "PENDING_ACCEPTANCE",
        request_id,
        1,
        5,
    )
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.erp_request_id, event.previous_status, event.status) == (
        "BudgetSentToErp",
        sender,
        request_id,
        "NOT_SENT",
        "PENDING_ACCEPTANCE",
    )
    assert shop.woken[len(before.woken) :] == [shop.company.id]
    assert shop.kicks == [] and shop.store.state.jobs == {}  # nothing is exported before an approver accepts


async def test_a_second_send_carries_only_what_changed() -> None:
    shop = make_shop()
    a, _b = await ready_to_send(shop)
    first = await shop.send()
    await shop.move(first, RequestAction.ACCEPT)
    await shop.move(first, RequestAction.EXPORT_POSTED)
    accepted(await unlock_budget(shop.ctx(), shop.budget_id, None, None))
    c = await shop.add_line("09-900", "S", amount="7")
    await shop.lock()
    second = await shop.send()
    request = shop.request(second)
    assert (request.sequence, request.kind) == (2, "UPDATE_BUDGET")
    lines = [v for k, v in shop.store.state.request_lines.items() if k[0] == second]
    assert [r.line_item_id for r in lines] == [c]
    assert a not in {e.line_item_id for e in shop.store.entries_of(shop.budget_id) if e.request_id == second}


@pytest.mark.parametrize("role", ["standard", "locker", "reader", "approver", "integrator"])
async def test_send_needs_admin_or_the_send_grant(role: str) -> None:
    shop = make_shop()
    await ready_to_send(shop)
    await refused(shop, lambda: send_to_erp(shop.ctx(role), shop.budget_id, None, None), E.FORBIDDEN)


async def test_send_of_an_unlocked_budget() -> None:
    shop = make_shop()
    await shop.add_line()
    await refused(shop, lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None), E.BUDGET_NOT_LOCKED)


async def test_send_without_an_erp() -> None:
    shop = make_shop(connector=None, synced=False)
    await ready_to_send(shop)
    await refused(shop, lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None), E.ERP_NOT_CONNECTED)


async def test_send_before_the_project_and_its_codes_are_synced() -> None:
    shop = make_shop(synced=False)
    await ready_to_send(shop)
    outcome = await refused(
        shop,
        lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None),
        E.PROJECT_NOT_SYNCED,
        E.COST_CODE_NOT_SYNCED,
        E.COST_CODE_NOT_SYNCED,
        E.COST_TYPE_NOT_SYNCED,
        E.COST_TYPE_NOT_SYNCED,
    )
    assert "03-300" in outcome.errors[1].message and "05-120" in outcome.errors[2].message


async def test_send_to_an_erp_that_cannot_take_what_is_pending() -> None:
    shop = make_shop(
        capabilities=Capabilities(exports_budget=False, exports_modifications=False, supports_sub_jobs=False)
    )
    a, b = await ready_to_send(shop)
    accepted(await create_modification(shop.ctx(), shop.budget_id, a, b, Decimal("5"), None, None))
    await refused(
        shop,
        lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None),
        E.SUB_JOB_NOT_SUPPORTED,
        E.MODIFICATIONS_NOT_SUPPORTED,
        E.VALIDATION_FAILED,
    )


async def test_send_of_nothing() -> None:
    shop = make_shop()
    await shop.lock()
    await refused(shop, lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None), E.NOTHING_TO_SEND)


@pytest.mark.parametrize(
    "status,codes",
    [
        (S.PENDING_ACCEPTANCE, [E.EXPORT_IN_PROGRESS, E.NOTHING_TO_SEND]),
        (S.EXPORTING, [E.EXPORT_IN_PROGRESS, E.NOTHING_TO_SEND]),
        (S.EXPORT_FAILED, [E.EXPORT_IN_PROGRESS, E.NOTHING_TO_SEND]),
        (S.AWAITING_POSTING, [E.AWAITING_POSTING, E.NOTHING_TO_SEND]),
        (S.SYNCED, [E.NOTHING_TO_SEND]),
    ],
)
async def test_send_while_a_request_is_under_way_or_done(status: ExportStatus, codes: list[ErrorCode]) -> None:
    shop = make_shop()
    await shop.request_in(status)
    await refused(shop, lambda: send_to_erp(shop.ctx(), shop.budget_id, None, None), *codes)


@pytest.mark.parametrize("status", [S.RETRIEVED, S.REJECTED])
async def test_send_again_after_a_retrieve_or_a_rejection(status: ExportStatus) -> None:
    shop = make_shop()
    first = await shop.request_in(status)
    changed = accepted(await send_to_erp(shop.ctx(), shop.budget_id, None, None))
    assert changed.erp_request_id is not None
    request = shop.request(changed.erp_request_id)
    assert (request.sequence, request.kind) == (2, "CREATE_BUDGET")  # the first was never exported
    assert shop.budget.last_request_id == request.id != first


async def test_send_of_another_companys_budget_and_with_a_stale_version() -> None:
    mine, theirs = two_shops()
    await ready_to_send(mine)
    await ready_to_send(theirs)
    await refused(
        mine, lambda: send_to_erp(mine.ctx(), theirs.budget_id, None, None), E.NOT_FOUND, field=["input", "budgetId"]
    )
    await refused(
        mine,
        lambda: send_to_erp(mine.ctx(), mine.budget_id, 3, None),
        E.VERSION_CONFLICT,
        field=["input", "expectedVersion"],
    )


async def test_a_send_that_loses_a_race_writes_nothing() -> None:
    shop = make_shop()
    await ready_to_send(shop)
    shop.store.before("budgets.save", concurrent_version_bump(shop))
    outcome = await send_to_erp(shop.ctx(), shop.budget_id, None, "s-1")
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    state = shop.store.state
    assert (state.requests, state.request_lines, state.entries, state.idempotency) == ({}, {}, {}, {})
    assert shop.budget.export_status == "NOT_SENT"


async def test_send_idempotency() -> None:
    shop = make_shop()
    await ready_to_send(shop)
    first = accepted(await send_to_erp(shop.ctx(), shop.budget_id, 4, "s-1"))
    before = shop.mark()
    assert accepted(await send_to_erp(shop.ctx(), shop.budget_id, 4, "s-1")) == first
    assert shop.mark().state == before.state and len(shop.store.state.requests) == 1
    await refused(
        shop,
        lambda: send_to_erp(shop.ctx(), shop.budget_id, None, "s-1"),
        E.VALIDATION_FAILED,
        field=["input", "idempotencyKey"],
    )


# --- retrieveBudget ---------------------------------------------------------------------------------------


async def test_retrieve() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    before = shop.mark()
    changed = accepted(await retrieve_budget(shop.ctx("sender"), shop.budget_id, 4, None))
    assert changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    request = shop.request(request_id)
    sender = shop.users["sender"].id
    assert (request.status, request.retrieved_at, request.retrieved_by_id) == ("RETRIEVED", T0, sender)
    assert (shop.budget.export_status, shop.budget.version) == ("RETRIEVED", 5)
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.erp_request_id, event.previous_status, event.status) == (
        "BudgetRetrieved",
        sender,
        request_id,
        "PENDING_ACCEPTANCE",
        "RETRIEVED",
    )
    assert shop.kicks == []


@pytest.mark.parametrize("status", [S.EXPORTING, S.REJECTED, S.RETRIEVED, S.SYNCED])
async def test_retrieve_of_a_request_that_is_not_pending(status: ExportStatus) -> None:
    shop = make_shop()
    await shop.request_in(status)
    await refused(shop, lambda: retrieve_budget(shop.ctx(), shop.budget_id, None, None), E.NOT_PENDING)


async def test_retrieve_of_a_budget_never_sent() -> None:
    shop = make_shop()
    await refused(shop, lambda: retrieve_budget(shop.ctx(), shop.budget_id, None, None), E.NOT_PENDING)


@pytest.mark.parametrize("role", ["standard", "locker", "reader", "approver"])
async def test_retrieve_needs_admin_or_the_send_grant(role: str) -> None:
    shop = make_shop()
    await shop.request_in(S.PENDING_ACCEPTANCE)
    await refused(shop, lambda: retrieve_budget(shop.ctx(role), shop.budget_id, None, None), E.FORBIDDEN)


async def test_retrieve_of_another_companys_budget_stale_version_and_a_race() -> None:
    mine, theirs = two_shops()
    await mine.request_in(S.PENDING_ACCEPTANCE)
    await theirs.request_in(S.PENDING_ACCEPTANCE)
    await refused(mine, lambda: retrieve_budget(mine.ctx(), theirs.budget_id, None, None), E.NOT_FOUND)
    await refused(
        mine,
        lambda: retrieve_budget(mine.ctx(), mine.budget_id, 1, None),
        E.VERSION_CONFLICT,
        field=["input", "expectedVersion"],
    )
    mine.store.before("budgets.save", concurrent_version_bump(mine))
    outcome = await retrieve_budget(mine.ctx(), mine.budget_id, None, None)
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    assert mine.budget.export_status == "PENDING_ACCEPTANCE"
    assert mine.request(mine.budget.last_request_id or "").status == "PENDING_ACCEPTANCE"


async def test_retrieve_idempotency() -> None:
    shop = make_shop()
    await shop.request_in(S.PENDING_ACCEPTANCE)
    first = accepted(await retrieve_budget(shop.ctx(), shop.budget_id, None, "r-1"))
    before = shop.mark()
    assert accepted(await retrieve_budget(shop.ctx(), shop.budget_id, None, "r-1")) == first
    assert shop.mark().state == before.state
    await refused(shop, lambda: retrieve_budget(shop.ctx(), shop.budget_id, 6, "r-1"), E.VALIDATION_FAILED)


# --- decideExport -----------------------------------------------------------------------------------------


async def test_accept_queues_the_export_and_kicks_the_worker_after_commit() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    before = shop.mark()
    kicked_at_commit: list[int] = []
    shop.services.kick_exports = lambda: kicked_at_commit.append(shop.store.commits)
    changed = accepted(await decide_export(shop.ctx("approver"), request_id, "ACCEPT", None, None))
    assert changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    approver = shop.users["approver"].id
    request = shop.request(request_id)
    assert (request.status, request.decided_at, request.decided_by_id, request.rejection_reason) == (
        "EXPORTING",
        T0,
        approver,
        None,
    )
    assert shop.budget.export_status == "EXPORTING"
    [job] = shop.store.state.jobs.values()
    assert (job.company_id, job.request_id, job.status, job.attempts, job.next_attempt_at) == (
        shop.company.id,
        request_id,
        "QUEUED",
        0,
        T0,
    )
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.previous_status, event.status, event.reason) == (
        "ExportAccepted",
        approver,
        "PENDING_ACCEPTANCE",
        "EXPORTING",
        None,
    )
    assert kicked_at_commit == [before.commits + 1]  # once, after the commit that queued the job
    assert shop.woken[len(before.woken) :] == [shop.company.id]


async def test_reject_with_a_reason() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    before = shop.mark()
    accepted(await decide_export(shop.ctx("approver"), request_id, "REJECT", "  wrong job  ", None))
    request = shop.request(request_id)
    assert (request.status, request.rejection_reason, request.decided_by_id) == (
        "REJECTED",
        "wrong job",
        shop.users["approver"].id,
    )
    assert shop.budget.export_status == "REJECTED"
    [event] = new_events(shop, before)
    assert (event.type, event.reason, event.status) == ("ExportRejected", "wrong job", "REJECTED")
    assert shop.store.state.jobs == {} and shop.kicks == []


@pytest.mark.parametrize("reason", [None, "", "   "])
async def test_reject_needs_a_reason(reason: str | None) -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    await refused(
        shop,
        lambda: decide_export(shop.ctx("approver"), request_id, "REJECT", reason, None),
        E.REASON_REQUIRED,
        field=["input", "reason"],
    )


@pytest.mark.parametrize("role", ["admin", "erp_reader", "integrator", "sender"])
@pytest.mark.parametrize("decision", ["ACCEPT", "REJECT"])
async def test_deciding_needs_an_approver_with_erp_standard(role: str, decision: str) -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    await refused(shop, lambda: decide_export(shop.ctx(role), request_id, decision, "why", None), E.FORBIDDEN)


@pytest.mark.parametrize(
    "status,code",
    [
        (S.EXPORTING, E.ALREADY_DECIDED),
        (S.REJECTED, E.ALREADY_DECIDED),
        (S.EXPORT_FAILED, E.ALREADY_DECIDED),
        (S.SYNCED, E.ALREADY_DECIDED),
        (S.RETRIEVED, E.NOT_PENDING),
    ],
)
@pytest.mark.parametrize("decision", ["ACCEPT", "REJECT"])
async def test_deciding_a_request_that_is_not_pending(status: ExportStatus, code: ErrorCode, decision: str) -> None:
    shop = make_shop()
    request_id = await shop.request_in(status)
    await refused(shop, lambda: decide_export(shop.ctx("approver"), request_id, decision, "why", None), code)


async def test_every_reason_a_decision_is_refused_at_once() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.EXPORTING)
    await refused(
        shop,
        lambda: decide_export(shop.ctx("sender"), request_id, "REJECT", None, None),
        E.FORBIDDEN,
        E.ALREADY_DECIDED,
        E.REASON_REQUIRED,
    )


async def test_deciding_another_companys_or_an_unknown_request() -> None:
    mine, theirs = two_shops()
    their_request = await theirs.request_in(S.PENDING_ACCEPTANCE)
    for request_id in (their_request, MISSING_REQUEST):
        await refused(
            mine,
            partial(decide_export, mine.ctx("approver"), request_id, "ACCEPT", None, None),
            E.NOT_FOUND,
            field=["input", "erpRequestId"],
        )


async def test_a_decision_that_loses_a_race_writes_nothing_and_kicks_nothing() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    shop.store.before("budgets.save", concurrent_version_bump(shop))
    outcome = await decide_export(shop.ctx("approver"), request_id, "ACCEPT", None, "d-1")
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    assert shop.request(request_id).status == "PENDING_ACCEPTANCE"
    assert shop.store.state.jobs == {} and shop.kicks == [] and shop.store.state.idempotency == {}


async def test_decide_idempotency() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.PENDING_ACCEPTANCE)
    first = accepted(await decide_export(shop.ctx("approver"), request_id, "ACCEPT", None, "d-1"))
    before = shop.mark()
    assert accepted(await decide_export(shop.ctx("approver"), request_id, "ACCEPT", None, "d-1")) == first
    assert shop.mark().state == before.state
    assert len(shop.store.state.jobs) == 1 and shop.kicks == [1]  # no second job, no second kick
    await refused(
        shop,
        lambda: decide_export(shop.ctx("approver"), request_id, "REJECT", "no", "d-1"),
        E.VALIDATION_FAILED,
        field=["input", "idempotencyKey"],
    )


# --- retryExport ------------------------------------------------------------------------------------------


async def test_retry_a_failed_export() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.EXPORT_FAILED)
    shop.set_request(request_id, failure_message="the ERP was down")
    before = shop.mark()
    changed = accepted(await retry_export(shop.ctx("approver"), request_id, None))
    assert changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    request = shop.request(request_id)
    assert (request.status, request.failure_message) == ("EXPORTING", None)
    assert shop.budget.export_status == "EXPORTING"
    jobs = [j for j in shop.store.state.jobs.values() if j.id not in before.state.jobs]
    assert [(j.request_id, j.status, j.next_attempt_at) for j in jobs] == [(request_id, "QUEUED", T0)]
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.previous_status, event.status) == (
        "ExportRetried",
        shop.users["approver"].id,
        "EXPORT_FAILED",
        "EXPORTING",
    )
    assert shop.kicks[len(before.kicks) :] == [len(before.kicks) + 1]


@pytest.mark.parametrize("status", [S.PENDING_ACCEPTANCE, S.EXPORTING, S.AWAITING_POSTING, S.SYNCED, S.REJECTED])
async def test_retry_of_an_export_that_did_not_fail(status: ExportStatus) -> None:
    shop = make_shop()
    request_id = await shop.request_in(status)
    await refused(shop, lambda: retry_export(shop.ctx("approver"), request_id, None), E.NOT_FAILED)


@pytest.mark.parametrize("role", ["admin", "erp_reader", "sender"])
async def test_retry_needs_an_approver(role: str) -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.EXPORT_FAILED)
    await refused(shop, lambda: retry_export(shop.ctx(role), request_id, None), E.FORBIDDEN)


async def test_retry_of_another_companys_request() -> None:
    mine, theirs = two_shops()
    their_request = await theirs.request_in(S.EXPORT_FAILED)
    await refused(
        mine,
        lambda: retry_export(mine.ctx("approver"), their_request, None),
        E.NOT_FOUND,
        field=["input", "erpRequestId"],
    )


async def test_retry_idempotency() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.EXPORT_FAILED)
    first = accepted(await retry_export(shop.ctx("approver"), request_id, "t-1"))
    before = shop.mark()
    assert accepted(await retry_export(shop.ctx("approver"), request_id, "t-1")) == first
    assert shop.mark().state == before.state and shop.kicks == before.kicks
    await refused(shop, lambda: retry_export(shop.ctx("approver"), MISSING_REQUEST, "t-1"), E.VALIDATION_FAILED)


# --- confirmJobCostPosting ----------------------------------------------------------------------------------


async def test_confirm_posting() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    before = shop.mark()
    changed = accepted(await confirm_posting(shop.ctx("integrator"), request_id, "  JC-981 ", None))
    assert changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    request = shop.request(request_id)
    assert (request.status, request.posted_at, request.erp_reference) == ("SYNCED", T0, "JC-981")
    assert shop.connector.marked_posted == [request.export_id]  # recorded in the ERP first
    assert shop.budget.export_status == "SYNCED"
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.previous_status, event.status) == (
        "JobCostPosted",
        shop.users["integrator"].id,
        "AWAITING_POSTING",
        "SYNCED",
    )
    assert shop.kicks == []


async def test_a_confirmation_the_worker_recorded_first_is_the_same_success() -> None:
    """The ERP is marked posted before our transaction; the worker's posting detection can see that posting
    and record it in between. The caller asked for exactly that outcome: success, and one event only."""
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    before = shop.mark()

    async def worker_sees_the_posting(export_id: str) -> None:
        shop.connector.marked_posted.append(export_id)
        await shop.move(request_id, RequestAction.CONFIRM_POSTING, posted_at=T0)

    shop.connector.mark_posted = worker_sees_the_posting  # type: ignore[method-assign]
    changed = accepted(await confirm_posting(shop.ctx("integrator"), request_id, "JC-2026-0042", None))
    assert changed == Changed(erp_request_id=request_id, budget_id=shop.budget_id)
    assert (shop.request(request_id).status, shop.request(request_id).erp_reference) == ("SYNCED", "JC-2026-0042")
    assert [(e.type, e.actor_id) for e in new_events(shop, before)] == [("JobCostPosted", None)]


async def test_confirm_posting_without_a_reference_keeps_none() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    accepted(await confirm_posting(shop.ctx("integrator"), request_id, "   ", None))
    assert shop.request(request_id).erp_reference is None


@pytest.mark.parametrize("role", ["admin", "approver", "erp_reader", "sender"])
async def test_confirm_posting_needs_erp_admin(role: str) -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    await refused(shop, lambda: confirm_posting(shop.ctx(role), request_id, None, None), E.FORBIDDEN)
    assert shop.connector.marked_posted == []


@pytest.mark.parametrize("status", [S.PENDING_ACCEPTANCE, S.EXPORTING, S.SYNCED, S.EXPORT_FAILED])
async def test_confirm_posting_of_a_request_not_awaiting_it(status: ExportStatus) -> None:
    shop = make_shop()
    request_id = await shop.request_in(status)
    await refused(shop, lambda: confirm_posting(shop.ctx("integrator"), request_id, None, None), E.NOT_PENDING)
    assert shop.connector.marked_posted == []


async def test_confirm_posting_of_another_companys_request() -> None:
    mine, theirs = two_shops()
    their_request = await theirs.request_in(S.AWAITING_POSTING)
    await refused(
        mine,
        lambda: confirm_posting(mine.ctx("integrator"), their_request, None, None),
        E.NOT_FOUND,
        field=["input", "erpRequestId"],
    )
    assert mine.connector.marked_posted == []


async def test_confirm_posting_with_a_reference_too_long() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    await refused(
        shop,
        lambda: confirm_posting(shop.ctx("integrator"), request_id, "r" * 201, None),
        E.VALIDATION_FAILED,
        field=["input", "erpReference"],
    )


async def test_a_refused_confirmation_does_not_mark_the_erp_posted() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    await refused(
        shop, lambda: confirm_posting(shop.ctx("integrator"), request_id, "r" * 201, None), E.VALIDATION_FAILED
    )
    assert shop.connector.marked_posted == []


async def test_confirm_posting_idempotency() -> None:
    shop = make_shop()
    request_id = await shop.request_in(S.AWAITING_POSTING)
    first = accepted(await confirm_posting(shop.ctx("integrator"), request_id, "JC-1", "c-1"))
    before = shop.mark()
    assert accepted(await confirm_posting(shop.ctx("integrator"), request_id, "JC-1", "c-1")) == first
    assert shop.mark().state == before.state
    await refused(shop, lambda: confirm_posting(shop.ctx("integrator"), request_id, "JC-2", "c-1"), E.VALIDATION_FAILED)
