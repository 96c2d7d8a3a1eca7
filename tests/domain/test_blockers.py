"""The reasons a mutation is refused, as `sendBlockers` / `unlockBlockers` list them before the click."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from domain.budget import (
    BudgetState,
    FormatProblem,
    SendConditions,
    decide_blockers,
    line_edit_blockers,
    lock_blockers,
    modification_blockers,
    require_none,
    retrieve_blockers,
    send_blockers,
    unlock_blockers,
)
from domain.errors import DomainError, DomainErrors, ErpFormatInvalidError, ErrorCode
from domain.export import Entry, EntryKind, ExportLine, Line
from domain.permissions import Actor, Grant, PermissionLevel, ProjectAccess
from domain.status import ExportStatus, RequestAction

S, A, L = ExportStatus, RequestAction, PermissionLevel

ADMIN = ProjectAccess(L.ADMIN)
STANDARD = ProjectAccess(L.STANDARD)
READ_ONLY = ProjectAccess(L.READ_ONLY)
STANDARD_WITH_LOCK = ProjectAccess(L.STANDARD, frozenset({Grant.LOCK_BUDGET}))
READ_ONLY_WITH_SEND = ProjectAccess(L.READ_ONLY, frozenset({Grant.SEND_AND_RETRIEVE}))
STANDARD_WITH_EVERY_GRANT = ProjectAccess(L.STANDARD, frozenset(Grant))

APPROVER = Actor("approver", "c1", is_accounting_approver=True, erp_permission=L.STANDARD)
NOT_AN_APPROVER = Actor("integrator", "c1", erp_permission=L.ADMIN)

FROZEN: set[ExportStatus] = {S.PENDING_ACCEPTANCE, S.EXPORTING}
ALL_STATUSES = list(ExportStatus)
STATUS_IDS = [s.value for s in ALL_STATUSES]


def budget(*, locked: bool, status: ExportStatus = S.NOT_SENT) -> BudgetState:
    return BudgetState(id="b1", project_id="p1", locked=locked, version=3, export_status=status)


def codes(errors: list[DomainError]) -> list[str]:
    assert all(isinstance(e, DomainError) and e.message for e in errors)
    return sorted(e.code for e in errors)


# ---------------------------------------------------------------- line items


def test_an_unlocked_budget_lets_a_standard_user_edit_lines() -> None:
    assert line_edit_blockers(budget(locked=False), STANDARD) == []
    assert line_edit_blockers(budget(locked=False), STANDARD, new_line_amount=Decimal("1250.00")) == []


@pytest.mark.parametrize("status", ALL_STATUSES, ids=STATUS_IDS)
def test_lines_are_frozen_only_while_a_request_is_pending_acceptance_or_exporting(status: ExportStatus) -> None:
    expected = ["EXPORT_IN_PROGRESS"] if status in FROZEN else []
    assert codes(line_edit_blockers(budget(locked=False, status=status), ADMIN)) == expected


def test_a_locked_budget_refuses_changing_or_deleting_an_existing_line() -> None:
    assert codes(line_edit_blockers(budget(locked=True), ADMIN)) == ["BUDGET_LOCKED"]


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("0.00"), Decimal("-0.00")])
def test_a_locked_budget_still_accepts_a_new_line_with_amount_zero(amount: Decimal) -> None:
    assert line_edit_blockers(budget(locked=True), STANDARD, new_line_amount=amount) == []


@pytest.mark.parametrize("amount", [Decimal("0.01"), Decimal("1250.00"), Decimal("-5.50")])
def test_a_locked_budget_refuses_a_new_line_with_a_non_zero_amount(amount: Decimal) -> None:
    blockers = line_edit_blockers(budget(locked=True), STANDARD, new_line_amount=amount)
    assert codes(blockers) == ["BUDGET_LOCKED"]


FROZEN_IN_ORDER = sorted(FROZEN, key=lambda s: s.value)


@pytest.mark.parametrize("status", FROZEN_IN_ORDER, ids=[s.value for s in FROZEN_IN_ORDER])
def test_a_zero_amount_line_cannot_be_added_while_the_budget_is_with_the_approver(status: ExportStatus) -> None:
    blockers = line_edit_blockers(budget(locked=True, status=status), ADMIN, new_line_amount=Decimal("0"))
    assert codes(blockers) == ["EXPORT_IN_PROGRESS"]


@pytest.mark.parametrize("access", [ProjectAccess(), READ_ONLY, ProjectAccess(L.READ_ONLY, frozenset(Grant))])
def test_lines_need_standard_or_admin_on_the_budget_tool(access: ProjectAccess) -> None:
    assert codes(line_edit_blockers(budget(locked=False), access)) == ["FORBIDDEN"]


def test_line_edit_blockers_list_every_reason_at_once() -> None:
    blockers = line_edit_blockers(budget(locked=True, status=S.PENDING_ACCEPTANCE), READ_ONLY)
    assert codes(blockers) == ["BUDGET_LOCKED", "EXPORT_IN_PROGRESS", "FORBIDDEN"]


# ---------------------------------------------------------------- modifications


def test_a_locked_budget_accepts_modifications_from_a_standard_user() -> None:
    assert modification_blockers(budget(locked=True), STANDARD) == []


def test_modifications_need_a_locked_budget() -> None:
    assert codes(modification_blockers(budget(locked=False), ADMIN)) == ["BUDGET_NOT_LOCKED"]


@pytest.mark.parametrize("status", ALL_STATUSES, ids=STATUS_IDS)
def test_modifications_are_frozen_only_while_pending_acceptance_or_exporting(status: ExportStatus) -> None:
    expected = ["EXPORT_IN_PROGRESS"] if status in FROZEN else []
    assert codes(modification_blockers(budget(locked=True, status=status), STANDARD)) == expected


def test_a_retrieved_budget_stays_editable_by_modifications() -> None:
    assert modification_blockers(budget(locked=True, status=S.RETRIEVED), STANDARD) == []


def test_a_read_only_user_cannot_create_modifications() -> None:
    assert codes(modification_blockers(budget(locked=True), READ_ONLY)) == ["FORBIDDEN"]


def test_modification_blockers_list_every_reason_at_once() -> None:
    blockers = modification_blockers(budget(locked=False, status=S.EXPORTING), READ_ONLY)
    assert codes(blockers) == ["BUDGET_NOT_LOCKED", "EXPORT_IN_PROGRESS", "FORBIDDEN"]


# ---------------------------------------------------------------- lock


READ_ONLY_WITH_LOCK = ProjectAccess(L.READ_ONLY, frozenset({Grant.LOCK_BUDGET}))
STANDARD_WITH_SEND = ProjectAccess(L.STANDARD, frozenset({Grant.SEND_AND_RETRIEVE}))


@pytest.mark.parametrize("access", [ADMIN, STANDARD_WITH_LOCK, READ_ONLY_WITH_LOCK])
def test_an_unlocked_budget_can_be_locked_by_an_admin_or_the_lock_grant(access: ProjectAccess) -> None:
    assert lock_blockers(budget(locked=False), access) == []


@pytest.mark.parametrize("access", [STANDARD, READ_ONLY, STANDARD_WITH_SEND])
def test_locking_is_forbidden_without_admin_or_the_lock_grant(access: ProjectAccess) -> None:
    assert codes(lock_blockers(budget(locked=False), access)) == ["FORBIDDEN"]


def test_a_locked_budget_cannot_be_locked_again() -> None:
    assert codes(lock_blockers(budget(locked=True), ADMIN)) == ["BUDGET_LOCKED"]


# ---------------------------------------------------------------- unlock

UNLOCK_EXPECTED: dict[ExportStatus, list[str]] = {
    S.NOT_SENT: [],
    S.PENDING_ACCEPTANCE: ["EXPORT_IN_PROGRESS"],
    S.RETRIEVED: [],
    S.REJECTED: [],
    S.EXPORTING: ["EXPORT_IN_PROGRESS"],
    S.EXPORT_FAILED: ["EXPORT_IN_PROGRESS"],
    S.AWAITING_POSTING: ["AWAITING_POSTING"],
    S.SYNCED: [],
}


@pytest.mark.parametrize("status", ALL_STATUSES, ids=STATUS_IDS)
def test_unlock_is_allowed_only_when_nothing_is_sent_withdrawn_or_synced(status: ExportStatus) -> None:
    assert codes(unlock_blockers(budget(locked=True, status=status), ADMIN)) == UNLOCK_EXPECTED[status]


def test_sent_budget_cannot_be_unlocked_until_posted() -> None:
    before = unlock_blockers(budget(locked=True, status=S.AWAITING_POSTING), ADMIN)
    assert codes(before) == ["AWAITING_POSTING"]
    assert "post" in before[0].message
    assert unlock_blockers(budget(locked=True, status=S.SYNCED), ADMIN) == []


def test_an_unlocked_budget_cannot_be_unlocked() -> None:
    assert codes(unlock_blockers(budget(locked=False), ADMIN)) == ["BUDGET_NOT_LOCKED"]


@pytest.mark.parametrize("access", [STANDARD_WITH_EVERY_GRANT, STANDARD, READ_ONLY, ProjectAccess()])
def test_only_a_budget_admin_can_unlock(access: ProjectAccess) -> None:
    assert codes(unlock_blockers(budget(locked=True), access)) == ["FORBIDDEN"]


def test_unlock_blockers_list_every_reason_at_once() -> None:
    blockers = unlock_blockers(budget(locked=True, status=S.AWAITING_POSTING), STANDARD)
    assert codes(blockers) == ["AWAITING_POSTING", "FORBIDDEN"]


# ---------------------------------------------------------------- send

READY = SendConditions(
    erp_connected=True,
    exports_budget=True,
    exports_modifications=True,
    supports_sub_jobs=True,
    project_synced=True,
    unsynced_cost_codes=(),
    unsynced_cost_types=(),
    sub_job_lines=(),
    has_pending_modifications=True,
    has_pending_original=True,
    nothing_to_send=False,
)
LOCKED = budget(locked=True)



def pending_line(line_id: str, original: str, changes: str = "0.00", revised: str | None = None) -> ExportLine:
    """What a send would carry for one line: an original-budget entry (a delta) and one modification entry."""
    line = Line(line_id, "03-300", line_id, None, None, Decimal(original))
    entries = [Entry(line_id, EntryKind.ORIGINAL_BUDGET, line_id, Decimal(original))]
    if Decimal(changes):
        entries.append(Entry(line_id, EntryKind.BUDGET_MODIFICATION, f"m-{line_id}", Decimal(changes)))
    total = Decimal(revised) if revised is not None else Decimal(original) + Decimal(changes)
    return ExportLine(line, Decimal(original), Decimal(changes), total, True, tuple(entries))


# One case per SendConditions field (and field combination that matters): changed fields -> codes.
SEND_CASES: dict[str, tuple[dict[str, object], list[str]]] = {
    "erp_not_connected": ({"erp_connected": False}, ["ERP_NOT_CONNECTED"]),
    "project_not_synced": ({"project_synced": False}, ["PROJECT_NOT_SYNCED"]),
    "one_cost_code_not_synced": ({"unsynced_cost_codes": ("03-300",)}, ["COST_CODE_NOT_SYNCED"]),
    "each_cost_code_not_synced": (
        {"unsynced_cost_codes": ("03-300", "05-100", "09-900")},
        ["COST_CODE_NOT_SYNCED"] * 3,
    ),
    "cost_types_not_synced": ({"unsynced_cost_types": ("L", "X")}, ["COST_TYPE_NOT_SYNCED"] * 2),
    "sub_jobs_on_an_erp_without_sub_jobs": (
        {"supports_sub_jobs": False, "sub_job_lines": ("03-300/L/A", "05-100/M/B")},
        ["SUB_JOB_NOT_SUPPORTED"] * 2,
    ),
    "sub_jobs_on_an_erp_with_sub_jobs": ({"sub_job_lines": ("03-300/L/A",)}, []),
    "no_sub_job_lines_on_an_erp_without_sub_jobs": ({"supports_sub_jobs": False}, []),
    "modifications_on_an_erp_without_modifications": (
        {"exports_modifications": False},
        ["MODIFICATIONS_NOT_SUPPORTED"],
    ),
    "no_pending_modifications_on_an_erp_without_modifications": (
        {"exports_modifications": False, "has_pending_modifications": False},
        [],
    ),
    "original_amounts_on_an_erp_without_budgets": ({"exports_budget": False}, ["VALIDATION_FAILED"]),
    "only_modifications_on_an_erp_without_budgets": (
        {"exports_budget": False, "has_pending_original": False},
        [],
    ),
    "nothing_to_send": (
        {"nothing_to_send": True, "has_pending_modifications": False, "has_pending_original": False},
        ["NOTHING_TO_SEND"],
    ),
    "amounts_within_13_digits": (
        {"pending": (pending_line("a", "9999999999999.99", "-1.00"), pending_line("b", "-9999999999999.99"))},
        [],
    ),
    # A line's revised estimate past 13 digits; the totals too (original + changes, and the entries).
    "a_revised_estimate_past_13_digits": (
        {"pending": (pending_line("a", "9999999999999.99", "9999999999999.99"),)},
        ["AMOUNT_OUT_OF_RANGE"] * 3,
    ),
    # Each line fits, their sums do not: the request's total original budget, revised estimate and entries.
    "request_totals_past_13_digits": (
        {"pending": (pending_line("a", "6000000000000.00"), pending_line("b", "6000000000000.00"))},
        ["AMOUNT_OUT_OF_RANGE"] * 3,
    ),
    "sub_job_lines_named_by_id": (
        {"supports_sub_jobs": False, "sub_job_lines": ("03-300/L/A",), "sub_job_line_ids": ("li_a",)},
        ["SUB_JOB_NOT_SUPPORTED"],
    ),
    "format_problems": (
        {"format_problems": (FormatProblem("li_a", "costCode", "Line 03-300/L: too long."),
                             FormatProblem(None, "number", "The job is too long."))},
        ["ERP_FORMAT_INVALID"] * 2,
    ),
}


def test_send_cases_exercise_every_send_condition() -> None:
    touched = {name for changes, _ in SEND_CASES.values() for name in changes}
    assert touched == {f.name for f in dataclasses.fields(SendConditions)}


def test_a_locked_budget_with_everything_synced_can_be_sent() -> None:
    assert send_blockers(LOCKED, ADMIN, READY) == []


@pytest.mark.parametrize("case", list(SEND_CASES))
def test_each_send_condition_blocks_with_its_own_code(case: str) -> None:
    changes, expected = SEND_CASES[case]
    cond = dataclasses.replace(READY, **changes)  # type: ignore[arg-type]
    assert codes(send_blockers(LOCKED, ADMIN, cond)) == sorted(expected)


def test_every_unsynced_cost_code_is_named_in_its_own_blocker() -> None:
    cond = dataclasses.replace(READY, unsynced_cost_codes=("03-300", "05-100"))
    messages = [e.message for e in send_blockers(LOCKED, ADMIN, cond)]
    assert len(messages) == 2
    assert "03-300" in messages[0]
    assert "05-100" in messages[1]


def test_every_line_with_a_sub_job_is_named_in_its_own_blocker() -> None:
    cond = dataclasses.replace(READY, supports_sub_jobs=False, sub_job_lines=("03-300/L/A", "05-100/M/B"))
    messages = [e.message for e in send_blockers(LOCKED, ADMIN, cond)]
    assert len(messages) == 2
    assert "03-300/L/A" in messages[0]
    assert "05-100/M/B" in messages[1]


def test_each_format_problem_is_its_own_blocker_pointing_at_its_cell() -> None:
    problems = (
        FormatProblem("li_a", "costCode", "Line 03-300-0001-ABCD/L: the cost code is 16 characters long."),
        FormatProblem("li_a", "description", "Line 03-300-0001-ABCD/L: the description is 31 characters long."),
        FormatProblem(None, "erpJobId", "The job 'SAGE-24-017-A' is 13 characters long."),
    )
    blockers = send_blockers(LOCKED, ADMIN, dataclasses.replace(READY, format_problems=problems))
    assert [(e.code, e.message, e.line_item_id, e.cell, e.field) for e in blockers] == [
        (ErrorCode.ERP_FORMAT_INVALID, problems[0].message, "li_a", ("costCode",), ("lineItem", "li_a", "costCode")),
        (ErrorCode.ERP_FORMAT_INVALID, problems[1].message, "li_a", ("description",),
         ("lineItem", "li_a", "description")),
        (ErrorCode.ERP_FORMAT_INVALID, problems[2].message, None, ("project", "erpJobId"), ("project", "erpJobId")),
    ]
    assert all(isinstance(e, ErpFormatInvalidError) for e in blockers)


def test_a_line_with_a_sub_job_points_at_its_sub_job() -> None:
    cond = dataclasses.replace(
        READY, supports_sub_jobs=False, sub_job_lines=("03-300/L/A", "05-100/M/B"), sub_job_line_ids=("li_a", "li_b")
    )
    assert [(e.line_item_id, e.cell) for e in send_blockers(LOCKED, ADMIN, cond)] == [
        ("li_a", ("subJob",)),
        ("li_b", ("subJob",)),
    ]


def test_without_an_erp_connection_the_sync_state_is_not_reported() -> None:
    cond = dataclasses.replace(
        READY,
        erp_connected=False,
        project_synced=False,
        unsynced_cost_codes=("03-300",),
        unsynced_cost_types=("L",),
    )
    assert codes(send_blockers(LOCKED, ADMIN, cond)) == ["ERP_NOT_CONNECTED"]


def test_an_unlocked_budget_cannot_be_sent() -> None:
    assert codes(send_blockers(budget(locked=False), ADMIN, READY)) == ["BUDGET_NOT_LOCKED"]


SEND_STATUS_EXPECTED: dict[ExportStatus, list[str]] = {
    S.NOT_SENT: [],
    S.PENDING_ACCEPTANCE: ["EXPORT_IN_PROGRESS"],
    S.RETRIEVED: [],
    S.REJECTED: [],
    S.EXPORTING: ["EXPORT_IN_PROGRESS"],
    S.EXPORT_FAILED: ["EXPORT_IN_PROGRESS"],
    S.AWAITING_POSTING: ["AWAITING_POSTING"],
    S.SYNCED: [],
}


@pytest.mark.parametrize("status", ALL_STATUSES, ids=STATUS_IDS)
def test_a_budget_can_be_re_sent_only_after_the_latest_request_is_withdrawn_or_synced(
    status: ExportStatus,
) -> None:
    assert codes(send_blockers(budget(locked=True, status=status), ADMIN, READY)) == SEND_STATUS_EXPECTED[status]


@pytest.mark.parametrize("access", [ADMIN, READ_ONLY_WITH_SEND])
def test_a_budget_admin_or_the_send_grant_may_send(access: ProjectAccess) -> None:
    assert send_blockers(LOCKED, access, READY) == []


@pytest.mark.parametrize("access", [STANDARD, STANDARD_WITH_LOCK, READ_ONLY, ProjectAccess()])
def test_sending_is_forbidden_without_admin_or_the_send_grant(access: ProjectAccess) -> None:
    assert codes(send_blockers(LOCKED, access, READY)) == ["FORBIDDEN"]


def test_send_blockers_list_every_reason_at_once() -> None:
    cond = dataclasses.replace(
        READY,
        project_synced=False,
        unsynced_cost_codes=("03-300",),
        unsynced_cost_types=("L",),
        supports_sub_jobs=False,
        sub_job_lines=("03-300/L/A",),
        exports_modifications=False,
        nothing_to_send=True,
    )
    blockers = send_blockers(budget(locked=False, status=S.AWAITING_POSTING), STANDARD, cond)
    assert codes(blockers) == sorted(
        [
            "FORBIDDEN",
            "BUDGET_NOT_LOCKED",
            "PROJECT_NOT_SYNCED",
            "COST_CODE_NOT_SYNCED",
            "COST_TYPE_NOT_SYNCED",
            "SUB_JOB_NOT_SUPPORTED",
            "MODIFICATIONS_NOT_SUPPORTED",
            "AWAITING_POSTING",
            "NOTHING_TO_SEND",
        ]
    )


# ---------------------------------------------------------------- retrieve


@pytest.mark.parametrize("status", ALL_STATUSES, ids=STATUS_IDS)
def test_only_a_request_pending_acceptance_can_be_retrieved(status: ExportStatus) -> None:
    expected = [] if status is S.PENDING_ACCEPTANCE else ["NOT_PENDING"]
    assert codes(retrieve_blockers(budget(locked=True, status=status), ADMIN)) == expected


@pytest.mark.parametrize(("access", "expected"), [(READ_ONLY_WITH_SEND, []), (STANDARD_WITH_LOCK, ["FORBIDDEN"])])
def test_retrieving_needs_the_same_rights_as_sending(access: ProjectAccess, expected: list[str]) -> None:
    blockers = retrieve_blockers(budget(locked=True, status=S.PENDING_ACCEPTANCE), access)
    assert codes(blockers) == expected


# ---------------------------------------------------------------- decide


def test_an_approver_can_accept_a_pending_request_without_a_reason() -> None:
    assert decide_blockers(APPROVER, S.PENDING_ACCEPTANCE, A.ACCEPT, None) == []


def test_an_approver_can_reject_a_pending_request_with_a_reason() -> None:
    assert decide_blockers(APPROVER, S.PENDING_ACCEPTANCE, A.REJECT, "cost code 03-300 is wrong") == []


@pytest.mark.parametrize("reason", [None, "", " ", "\t\n  "], ids=["none", "empty", "space", "whitespace"])
def test_a_rejection_without_a_reason_is_refused(reason: str | None) -> None:
    blockers = decide_blockers(APPROVER, S.PENDING_ACCEPTANCE, A.REJECT, reason)
    assert codes(blockers) == ["REASON_REQUIRED"]
    assert blockers[0].field == ("input", "reason")


def test_an_erp_admin_without_the_approver_flag_cannot_decide() -> None:
    assert codes(decide_blockers(NOT_AN_APPROVER, S.PENDING_ACCEPTANCE, A.ACCEPT, None)) == ["FORBIDDEN"]


def test_a_request_already_decided_cannot_be_decided_again() -> None:
    assert codes(decide_blockers(APPROVER, S.REJECTED, A.ACCEPT, None)) == ["ALREADY_DECIDED"]


def test_decide_blockers_list_every_reason_at_once() -> None:
    blockers = decide_blockers(NOT_AN_APPROVER, S.SYNCED, A.REJECT, "   ")
    assert codes(blockers) == ["ALREADY_DECIDED", "FORBIDDEN", "REASON_REQUIRED"]


def test_a_failed_export_can_be_retried_by_an_approver() -> None:
    assert decide_blockers(APPROVER, S.EXPORT_FAILED, A.RETRY, None) == []
    assert codes(decide_blockers(APPROVER, S.EXPORTING, A.RETRY, None)) == ["NOT_FAILED"]


# ---------------------------------------------------------------- require_none


def test_require_none_passes_when_nothing_blocks() -> None:
    require_none([])


def test_require_none_refuses_with_every_reason() -> None:
    reasons = unlock_blockers(budget(locked=False, status=S.EXPORTING), STANDARD)
    with pytest.raises(DomainErrors) as refused:
        require_none(reasons)
    assert codes(refused.value.errors) == ["BUDGET_NOT_LOCKED", "EXPORT_IN_PROGRESS", "FORBIDDEN"]
