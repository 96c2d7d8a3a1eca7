"""The budget and its ERP requests as a pure state machine.

TRANSITIONS is the single source of truth for what an ERP request may do next; every check that gates a
mutation is a function returning the reasons it is refused, so `sendBlockers` / `unlockBlockers` and the
mutations run the very same code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from domain import permissions
from domain.errors import DomainError, DomainErrors
from domain.permissions import Actor, ProjectAccess


class ExportStatus(enum.Enum):
    NOT_SENT = "NOT_SENT"
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE"
    RETRIEVED = "RETRIEVED"
    REJECTED = "REJECTED"
    EXPORTING = "EXPORTING"
    EXPORT_FAILED = "EXPORT_FAILED"
    AWAITING_POSTING = "AWAITING_POSTING"
    SYNCED = "SYNCED"


class RequestAction(enum.Enum):
    RETRIEVE = "RETRIEVE"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    EXPORT_WRITTEN = "EXPORT_WRITTEN"  # the connector wrote the entries; posting still to come
    EXPORT_POSTED = "EXPORT_POSTED"  # the connector wrote entries that the ERP posts at once
    EXPORT_FAILED = "EXPORT_FAILED"
    RETRY = "RETRY"
    CONFIRM_POSTING = "CONFIRM_POSTING"


S, A = ExportStatus, RequestAction

TRANSITIONS: dict[tuple[ExportStatus, RequestAction], ExportStatus] = {
    (S.PENDING_ACCEPTANCE, A.RETRIEVE): S.RETRIEVED,
    (S.PENDING_ACCEPTANCE, A.ACCEPT): S.EXPORTING,
    (S.PENDING_ACCEPTANCE, A.REJECT): S.REJECTED,
    (S.EXPORTING, A.EXPORT_WRITTEN): S.AWAITING_POSTING,
    (S.EXPORTING, A.EXPORT_POSTED): S.SYNCED,
    (S.EXPORTING, A.EXPORT_FAILED): S.EXPORT_FAILED,
    (S.EXPORT_FAILED, A.RETRY): S.EXPORTING,
    (S.AWAITING_POSTING, A.CONFIRM_POSTING): S.SYNCED,
}

# Statuses a request can no longer be decided from once an approver acted on it.
DECIDED = frozenset({S.EXPORTING, S.EXPORT_FAILED, S.AWAITING_POSTING, S.SYNCED, S.REJECTED})
# While the latest request is in one of these, lines and modifications are frozen.
EDITS_FROZEN = frozenset({S.PENDING_ACCEPTANCE, S.EXPORTING})
# While the latest request is in one of these, neither a send nor an unlock may happen.
IN_PROGRESS = frozenset({S.PENDING_ACCEPTANCE, S.EXPORTING, S.EXPORT_FAILED})
UNLOCKABLE = frozenset({S.NOT_SENT, S.RETRIEVED, S.REJECTED, S.SYNCED})
# Entries of requests in these statuses were never exported: a later send carries them again.
WITHDRAWN = frozenset({S.RETRIEVED, S.REJECTED})

EVENT_NAMES: dict[RequestAction, str] = {
    A.RETRIEVE: "BudgetRetrieved",
    A.ACCEPT: "ExportAccepted",
    A.REJECT: "ExportRejected",
    A.EXPORT_WRITTEN: "ExportWritten",
    A.EXPORT_POSTED: "ExportPosted",
    A.EXPORT_FAILED: "ExportFailed",
    A.RETRY: "ExportRetried",
    A.CONFIRM_POSTING: "JobCostPosted",
}


@dataclass(frozen=True)
class BudgetState:
    id: str
    project_id: str
    locked: bool
    version: int
    export_status: ExportStatus


def transition(status: ExportStatus, action: RequestAction) -> ExportStatus:
    """The next status, or the refusal a user sees for trying `action` on a request in `status`."""
    nxt = TRANSITIONS.get((status, action))
    if nxt is not None:
        return nxt
    if action in (A.ACCEPT, A.REJECT) and status in DECIDED:
        raise DomainError("ALREADY_DECIDED", f"the request was already decided (status {status.value})")
    if action is A.RETRY:
        raise DomainError("NOT_FAILED", f"only a failed export can be retried (status {status.value})")
    if action is A.CONFIRM_POSTING:
        raise DomainError("NOT_PENDING", f"the request is not awaiting posting (status {status.value})")
    raise DomainError("NOT_PENDING", f"the request is not pending acceptance (status {status.value})")


def _present(errors: Iterable[DomainError | None]) -> list[DomainError]:
    return [e for e in errors if e is not None]


def _edits_frozen(budget: BudgetState) -> DomainError | None:
    if budget.export_status in EDITS_FROZEN:
        return DomainError(
            "EXPORT_IN_PROGRESS",
            f"the budget's ERP request is {budget.export_status.value}: retrieve it or wait for the export",
        )
    return None


def line_edit_blockers(
    budget: BudgetState, access: ProjectAccess, *, new_line_amount: Decimal | None = None
) -> list[DomainError]:
    """Why lines may not be created/changed/deleted. `new_line_amount` is set when adding a line:
    a locked budget still accepts new lines with an original amount of zero."""
    locked = None
    if budget.locked and not (new_line_amount is not None and new_line_amount == 0):
        locked = DomainError(
            "BUDGET_LOCKED",
            "the budget is locked: original amounts are read-only (add lines with amount 0 or use a modification)",
        )
    return _present([permissions.edit_lines_refusal(access), _edits_frozen(budget), locked])


def modification_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_locked = None if budget.locked else DomainError(
        "BUDGET_NOT_LOCKED", "modifications are made on a locked budget; change original amounts instead"
    )
    return _present([permissions.edit_lines_refusal(access), not_locked, _edits_frozen(budget)])


def lock_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    locked = DomainError("BUDGET_LOCKED", "the budget is already locked") if budget.locked else None
    return _present([permissions.lock_refusal(access), locked])


def _latest_request_blocker(budget: BudgetState, doing: str) -> DomainError | None:
    status = budget.export_status
    if status in IN_PROGRESS:
        return DomainError("EXPORT_IN_PROGRESS", f"cannot {doing} while the ERP request is {status.value}")
    if status is S.AWAITING_POSTING:
        return DomainError(
            "AWAITING_POSTING",
            f"cannot {doing} until the exported entries are posted in the ERP's Job Cost",
        )
    return None


def unlock_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_locked = None if budget.locked else DomainError("BUDGET_NOT_LOCKED", "the budget is not locked")
    return _present([permissions.unlock_refusal(access), not_locked, _latest_request_blocker(budget, "unlock")])


@dataclass(frozen=True)
class SendConditions:
    """What a send depends on beyond the budget itself, gathered by the service layer."""

    erp_connected: bool
    exports_budget: bool
    exports_modifications: bool
    supports_sub_jobs: bool
    project_synced: bool
    unsynced_cost_codes: tuple[str, ...]
    unsynced_cost_types: tuple[str, ...]
    sub_job_lines: tuple[str, ...]  # labels of pending lines that carry a sub job
    has_pending_modifications: bool
    has_pending_original: bool
    nothing_to_send: bool


def send_blockers(budget: BudgetState, access: ProjectAccess, cond: SendConditions) -> list[DomainError]:
    errors: list[DomainError | None] = [permissions.send_refusal(access)]
    if not budget.locked:
        errors.append(DomainError("BUDGET_NOT_LOCKED", "lock the budget before sending it to the ERP"))
    if not cond.erp_connected:
        errors.append(DomainError("ERP_NOT_CONNECTED", "the company has no ERP connection"))
    else:
        if not cond.project_synced:
            errors.append(DomainError("PROJECT_NOT_SYNCED", "the project is not synced with the ERP as a job"))
        errors += [
            DomainError("COST_CODE_NOT_SYNCED", f"cost code {code} is not synced with the ERP")
            for code in cond.unsynced_cost_codes
        ]
        errors += [
            DomainError("COST_TYPE_NOT_SYNCED", f"cost type {code} is not synced with the ERP")
            for code in cond.unsynced_cost_types
        ]
        if not cond.supports_sub_jobs:
            errors += [
                DomainError("SUB_JOB_NOT_SUPPORTED", f"line {label} has a sub job, which the ERP does not support")
                for label in cond.sub_job_lines
            ]
        if cond.has_pending_modifications and not cond.exports_modifications:
            errors.append(
                DomainError("MODIFICATIONS_NOT_SUPPORTED", "the ERP connector cannot export budget modifications")
            )
        if cond.has_pending_original and not cond.exports_budget:
            errors.append(DomainError("VALIDATION_FAILED", "the ERP connector cannot export original budgets"))
    errors.append(_latest_request_blocker(budget, "send"))
    if cond.nothing_to_send:
        errors.append(DomainError("NOTHING_TO_SEND", "everything in this budget has already been exported"))
    return _present(errors)


def retrieve_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_pending = None
    if budget.export_status is not S.PENDING_ACCEPTANCE:
        not_pending = DomainError(
            "NOT_PENDING", f"only a request pending acceptance can be retrieved (status {budget.export_status.value})"
        )
    return _present([permissions.send_refusal(access), not_pending])


def decide_blockers(actor: Actor, status: ExportStatus, action: RequestAction, reason: str | None) -> list[DomainError]:
    errors: list[DomainError | None] = [permissions.decide_refusal(actor)]
    try:
        transition(status, action)
    except DomainError as exc:
        errors.append(exc)
    if action is A.REJECT and not (reason or "").strip():
        errors.append(DomainError("REASON_REQUIRED", "a rejection needs a reason", ("input", "reason")))
    return _present(errors)


def require_none(errors: Iterable[DomainError | None]) -> None:
    """Refuse with every reason at once, as the blockers fields list them (None entries are no reason)."""
    present = _present(errors)
    if present:
        raise DomainErrors(present)
