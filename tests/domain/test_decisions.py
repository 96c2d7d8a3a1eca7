"""The domain's decisions: each returns the budget's next state and the event that records it, or refuses
with the same reasons the blockers list (and then there is nothing to write)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain import budget as wf
from domain import events as ev
from domain.budget import BudgetState, ImportRow, SendConditions
from domain.errors import DomainError, DomainErrors, ErrorCode
from domain.permissions import Grant, PermissionLevel, ProjectAccess
from domain.requests import RequestState, decide
from domain.status import ExportStatus, RequestAction

S, A = ExportStatus, RequestAction
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ADMIN = ProjectAccess(PermissionLevel.ADMIN, frozenset(Grant))
READ_ONLY = ProjectAccess(PermissionLevel.READ_ONLY)
READY = SendConditions(
    erp_connected=True,
    exports_budget=True,
    exports_modifications=True,
    supports_sub_jobs=True,
    project_synced=True,
    unsynced_cost_codes=(),
    unsynced_cost_types=(),
    sub_job_lines=(),
    has_pending_modifications=False,
    has_pending_original=True,
    nothing_to_send=False,
)


def budget(*, locked: bool = False, status: ExportStatus = S.NOT_SENT, last: str | None = None) -> BudgetState:
    return BudgetState(
        id="b1", project_id="p1", locked=locked, version=7, export_status=status, last_request_id=last, request_count=2
    )


def refused(call: object) -> list[str]:
    """The codes a decision refuses with (it raises DomainErrors or a single DomainError)."""
    assert callable(call)
    try:
        call()
    except DomainErrors as exc:
        return sorted(e.code for e in exc.errors)
    except DomainError as exc:
        return [exc.code]
    raise AssertionError("the decision did not refuse")


def test_locking_returns_the_locked_budget_one_version_on_and_a_budget_locked_event() -> None:
    change = wf.lock(budget(), ADMIN, "u1", NOW)
    assert change.budget == BudgetState(
        id="b1",
        project_id="p1",
        locked=True,
        version=8,
        export_status=S.NOT_SENT,
        request_count=2,
        locked_at=NOW,
        locked_by_id="u1",
    )
    assert change.event == ev.BudgetLocked(
        project_id="p1", budget_id="b1", status=S.NOT_SENT, previous_status=S.NOT_SENT, actor_id="u1"
    )
    assert change.event.type == "BudgetLocked" and not change.event.is_status_change


def test_locking_refuses_with_every_blocker_at_once() -> None:
    assert refused(lambda: wf.lock(budget(locked=True), READ_ONLY, "u1", NOW)) == ["BUDGET_LOCKED", "FORBIDDEN"]


def test_unlocking_clears_the_lock_and_is_refused_while_awaiting_posting() -> None:
    locked = wf.lock(budget(), ADMIN, "u1", NOW).budget
    change = wf.unlock(locked, ADMIN, "u2")
    assert (change.budget.locked, change.budget.locked_at, change.budget.locked_by_id) == (False, None, None)
    assert change.budget.version == locked.version + 1
    assert isinstance(change.event, ev.BudgetUnlocked)
    awaiting = BudgetState("b1", "p1", True, 3, S.AWAITING_POSTING)
    assert refused(lambda: wf.unlock(awaiting, ADMIN, "u2")) == ["AWAITING_POSTING"]


def test_a_new_line_event_names_the_line_and_a_duplicate_key_is_refused() -> None:
    change = wf.add_line(budget(), ADMIN, "u1", line_id="li1", amount=Decimal("5.00"), duplicate=False)
    assert change.event == ev.LineItemCreated(
        project_id="p1",
        budget_id="b1",
        status=S.NOT_SENT,
        previous_status=S.NOT_SENT,
        actor_id="u1",
        line_item_id="li1",
    )
    assert change.event.data == {"lineItemId": "li1"}
    assert refused(lambda: wf.add_line(budget(), ADMIN, "u1", line_id="li2", amount=Decimal(0), duplicate=True)) == [
        "DUPLICATE_LINE_ITEM"
    ]


def test_a_locked_budget_takes_new_lines_of_amount_zero_only() -> None:
    locked = budget(locked=True)
    assert wf.add_line(locked, ADMIN, "u1", line_id="li1", amount=Decimal("0.00"), duplicate=False).budget.version == 8
    assert refused(lambda: wf.add_line(locked, ADMIN, "u1", line_id="li1", amount=Decimal(1), duplicate=False)) == [
        "BUDGET_LOCKED"
    ]


def test_deleting_an_exported_line_or_one_with_modifications_is_refused() -> None:
    def delete(**flags: bool) -> object:
        return wf.delete_line(budget(), ADMIN, "u1", line_id="li1", **flags)

    assert isinstance(delete(was_exported=False, has_modifications=False).event, ev.LineItemDeleted)  # type: ignore[attr-defined]
    assert refused(lambda: delete(was_exported=True, has_modifications=False)) == ["VALIDATION_FAILED"]
    assert refused(lambda: delete(was_exported=False, has_modifications=True)) == ["VALIDATION_FAILED"]


def row(index: int, code: str, amount: str) -> ImportRow:
    return ImportRow(("input", "items", str(index)), (code, "ct1", ""), Decimal(amount))


def test_an_import_plan_splits_new_lines_from_updates_and_counts_them_in_its_event() -> None:
    plan = wf.plan_import(
        budget(), ADMIN, "u1", [row(0, "cc1", "10.00"), row(1, "cc2", "20.00")], {("cc2", "ct1", ""): "li2"}
    )
    assert [r.key[0] for r in plan.new_rows] == ["cc1"]
    assert [(r.key[0], line_id) for r, line_id in plan.updates] == [("cc2", "li2")]
    assert plan.change.event.data == {"created": "1", "updated": "1"}
    assert plan.change.budget.version == 8


def test_an_import_reports_every_bad_row_and_plans_nothing() -> None:
    input_error = DomainError(ErrorCode.NOT_FOUND, "cost code not found", ("input", "items", "3", "costCodeId"))
    rows = [row(0, "cc1", "1.00"), row(1, "cc1", "2.00"), row(2, "cc2", "5.00")]
    with pytest.raises(DomainErrors) as caught:
        wf.plan_import(budget(locked=True), ADMIN, "u1", rows, {("cc2", "ct1", ""): "li2"}, [input_error])
    assert [(e.code, e.field) for e in caught.value.errors] == [
        ("NOT_FOUND", ("input", "items", "3", "costCodeId")),
        ("BUDGET_LOCKED", ("input", "items", "0", "originalAmount")),  # a locked budget: new lines of 0 only
        ("DUPLICATE_LINE_ITEM", ("input", "items", "1")),
        ("BUDGET_LOCKED", ("input", "items", "2")),  # existing lines are read-only when locked
    ]


def test_an_empty_import_is_refused() -> None:
    assert refused(lambda: wf.plan_import(budget(), ADMIN, "u1", [], {})) == ["VALIDATION_FAILED"]


def test_a_modification_needs_a_locked_budget_and_two_different_lines() -> None:
    def add(b: BudgetState, from_id: str | None, to_id: str | None, amount: str = "250.00") -> wf.BudgetChange:
        return wf.add_modification(
            b,
            ADMIN,
            "u1",
            modification_id="m1",
            number=4,
            amount=Decimal(amount),
            from_line_id=from_id,
            to_line_id=to_id,
        )

    change = add(budget(locked=True), "li1", "li2")
    assert change.event.data == {"modificationId": "m1", "number": "4"}
    assert refused(lambda: add(budget(), "li1", "li2")) == ["BUDGET_NOT_LOCKED"]
    assert refused(lambda: add(budget(locked=True), None, None)) == ["VALIDATION_FAILED"]
    assert refused(lambda: add(budget(locked=True), "li1", "li1")) == ["VALIDATION_FAILED"]
    assert refused(lambda: add(budget(locked=True), "li1", "li2", "0.00")) == ["VALIDATION_FAILED"]
    assert refused(lambda: add(budget(), "li1", "li2", "0.00")) == ["BUDGET_NOT_LOCKED"]  # blockers come first
    assert refused(lambda: add(budget(locked=True), "li1", "li2", "0.00")) == ["VALIDATION_FAILED"]
    assert refused(lambda: add(budget(), "li1", "li2", "0.00")) == ["BUDGET_NOT_LOCKED"]  # blockers come first


def test_sending_makes_the_new_request_the_latest_and_records_the_status_change() -> None:
    change = wf.send(budget(locked=True, status=S.REJECTED), ADMIN, READY, "u1", request_id="r3")
    assert (change.budget.export_status, change.budget.last_request_id, change.budget.request_count) == (
        S.PENDING_ACCEPTANCE,
        "r3",
        3,
    )
    assert change.event == ev.BudgetSentToErp(
        project_id="p1",
        budget_id="b1",
        erp_request_id="r3",
        previous_status=S.REJECTED,
        status=S.PENDING_ACCEPTANCE,
        actor_id="u1",
    )
    assert change.event.is_status_change
    assert refused(lambda: wf.send(budget(), ADMIN, READY, "u1", request_id="r3")) == ["BUDGET_NOT_LOCKED"]


def test_a_request_decision_moves_the_latest_requests_budget_status_with_it() -> None:
    pending = budget(locked=True, status=S.PENDING_ACCEPTANCE, last="r1")
    request = RequestState("r1", "b1", "p1", S.PENDING_ACCEPTANCE)
    change = decide(pending, request, A.REJECT, actor_id="a1", reason="split by building")
    assert change.request.status is S.REJECTED
    assert (change.budget.export_status, change.budget.version) == (S.REJECTED, 8)
    assert change.event == ev.ExportRejected(
        project_id="p1",
        budget_id="b1",
        erp_request_id="r1",
        previous_status=S.PENDING_ACCEPTANCE,
        status=S.REJECTED,
        actor_id="a1",
        reason="split by building",
    )


def test_a_decision_on_an_older_request_leaves_the_budget_status_alone() -> None:
    newer = budget(locked=True, status=S.PENDING_ACCEPTANCE, last="r2")
    older = RequestState("r1", "b1", "p1", S.AWAITING_POSTING)
    change = decide(newer, older, A.CONFIRM_POSTING, actor_id=None)
    assert change.request.status is S.SYNCED
    assert change.budget.export_status is S.PENDING_ACCEPTANCE
    assert isinstance(change.event, ev.JobCostPosted) and change.event.actor_id is None


def test_a_decision_the_transition_table_forbids_is_refused_with_its_code() -> None:
    request = RequestState("r1", "b1", "p1", S.SYNCED)
    with pytest.raises(DomainError) as caught:
        decide(budget(last="r1"), request, A.ACCEPT, actor_id="a1")
    assert caught.value.code is ErrorCode.ALREADY_DECIDED


def test_event_data_keys_are_camel_case_strings_as_the_log_stores_them() -> None:
    event = ev.ProjectSyncedToErp(
        project_id="p1", budget_id="b1", status=S.NOT_SENT, previous_status=S.NOT_SENT, erp_job_id="J-7"
    )
    assert event.type == "ProjectSyncedToErp"
    assert event.data == {"erpJobId": "J-7"}
