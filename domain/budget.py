"""The budget as a pure model: every check that gates a change is a function returning the reasons it is
refused (so `sendBlockers` / `unlockBlockers` and the mutations run the very same code), and every change
is a decision that returns the budget's next state and the event that records it. Nothing here reads or
writes storage; the service layer loads the state, asks, and hands the answer to the repositories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from domain import events as ev
from domain import permissions
from domain.errors import (
    DomainError,
    DomainErrors,
    ErpFormatInvalidError,
    ErrorCode,
    SubJobNotSupportedError,
    invalid,
)
from domain.export import ExportLine
from domain.money import MAX_INTEGER_DIGITS, ZERO, amount_in_range, format_decimal
from domain.permissions import Actor, ProjectAccess
from domain.status import EDITS_FROZEN, IN_PROGRESS, ExportStatus, RequestAction, transition

S, A = ExportStatus, RequestAction


@dataclass(frozen=True)
class BudgetState:
    id: str
    project_id: str
    locked: bool
    version: int
    export_status: ExportStatus
    last_request_id: str | None = None
    request_count: int = 0
    locked_at: datetime | None = None
    locked_by_id: str | None = None


@dataclass(frozen=True)
class BudgetChange:
    """A decision's outcome: the budget after it (its version always moves on by one) and its event."""

    budget: BudgetState
    event: ev.BudgetEvent


def _next(budget: BudgetState, **changes: Any) -> BudgetState:
    return replace(budget, version=budget.version + 1, **changes)


E = TypeVar("E", bound=ev.BudgetEvent)


def _recorded(cls: type[E], budget: BudgetState, actor_id: str | None, **data: Any) -> E:
    """An event of `cls` that leaves the budget's export status where it is."""
    status = budget.export_status
    return cls(
        project_id=budget.project_id,
        budget_id=budget.id,
        status=status,
        previous_status=status,
        actor_id=actor_id,
        **data,
    )


def _present(errors: Iterable[DomainError | None]) -> list[DomainError]:
    return [e for e in errors if e is not None]


def _edits_frozen(budget: BudgetState) -> DomainError | None:
    if budget.export_status in EDITS_FROZEN:
        return DomainError(
            ErrorCode.EXPORT_IN_PROGRESS,
            f"the budget's ERP request is {budget.export_status.value}: retrieve it or wait for the export",
        )
    return None


def line_edit_blockers(
    budget: BudgetState, access: ProjectAccess, *, new_line_amount: Decimal | None = None
) -> list[DomainError]:
    """Why lines may not be created/changed/deleted. `new_line_amount` is set when adding a line:
    a locked budget still accepts new lines with an original amount of zero."""
    return _present(
        [permissions.edit_lines_refusal(access), _edits_frozen(budget), locked_refusal(budget, new_line_amount)]
    )


def locked_refusal(
    budget: BudgetState, new_line_amount: Decimal | None = None, field: Sequence[str] | None = None
) -> DomainError | None:
    """The locked-budget rule, the one place it is written: a locked budget's original amounts are read-only,
    but it still takes new lines of amount 0 (`new_line_amount` is set when the change adds a line)."""
    if not budget.locked or (new_line_amount is not None and new_line_amount == 0):
        return None
    if new_line_amount is not None:
        message = "the budget is locked: it only takes new lines of amount 0 (or use a modification)"
    else:
        message = "the budget is locked: original amounts are read-only (add lines with amount 0 or use a modification)"
    return DomainError(ErrorCode.BUDGET_LOCKED, message, field)


def modification_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_locked = (
        None
        if budget.locked
        else DomainError(
            ErrorCode.BUDGET_NOT_LOCKED, "modifications are made on a locked budget; change original amounts instead"
        )
    )
    return _present([permissions.edit_lines_refusal(access), not_locked, _edits_frozen(budget)])


def lock_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    locked = DomainError(ErrorCode.BUDGET_LOCKED, "the budget is already locked") if budget.locked else None
    return _present([permissions.lock_refusal(access), locked])


def _latest_request_blocker(budget: BudgetState, doing: str) -> DomainError | None:
    status = budget.export_status
    if status in IN_PROGRESS:
        return DomainError(ErrorCode.EXPORT_IN_PROGRESS, f"cannot {doing} while the ERP request is {status.value}")
    if status is S.AWAITING_POSTING:
        return DomainError(
            ErrorCode.AWAITING_POSTING,
            f"cannot {doing} until the exported entries are posted in the ERP's Job Cost",
        )
    return None


def unlock_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_locked = None if budget.locked else DomainError(ErrorCode.BUDGET_NOT_LOCKED, "the budget is not locked")
    return _present([permissions.unlock_refusal(access), not_locked, _latest_request_blocker(budget, "unlock")])


@dataclass(frozen=True)
class FormatProblem:
    """A value of what a send would export that the ERP's import format cannot carry as it is (the service
    layer gathers them from the connector's `validate`). `field` is the line's field as the API names it, or
    the project's (`number`, `erpJobId`) when `line_item_id` is None."""

    line_item_id: str | None
    field: str
    message: str


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
    sub_job_line_ids: tuple[str, ...] = ()  # the ids of those lines, in the same order (when known)
    # What the connector's format check says about the batch a send would export now (one per line and field).
    format_problems: tuple[FormatProblem, ...] = ()
    # What the send would carry (its amounts are checked against the 13 integer digits).
    pending: tuple[ExportLine, ...] = ()


def send_blockers(budget: BudgetState, access: ProjectAccess, cond: SendConditions) -> list[DomainError]:
    errors: list[DomainError | None] = [permissions.send_refusal(access)]
    if not budget.locked:
        errors.append(DomainError(ErrorCode.BUDGET_NOT_LOCKED, "lock the budget before sending it to the ERP"))
    if not cond.erp_connected:
        errors.append(DomainError(ErrorCode.ERP_NOT_CONNECTED, "the company has no ERP connection"))
    else:
        if not cond.project_synced:
            errors.append(DomainError(ErrorCode.PROJECT_NOT_SYNCED, "the project is not synced with the ERP as a job"))
        errors += [
            DomainError(ErrorCode.COST_CODE_NOT_SYNCED, f"cost code {code} is not synced with the ERP")
            for code in cond.unsynced_cost_codes
        ]
        errors += [
            DomainError(ErrorCode.COST_TYPE_NOT_SYNCED, f"cost type {code} is not synced with the ERP")
            for code in cond.unsynced_cost_types
        ]
        if not cond.supports_sub_jobs:
            ids: Sequence[str | None] = cond.sub_job_line_ids or [None] * len(cond.sub_job_lines)
            errors += [
                SubJobNotSupportedError(line_id, label) for line_id, label in zip(ids, cond.sub_job_lines, strict=True)
            ]
        if cond.has_pending_modifications and not cond.exports_modifications:
            errors.append(
                DomainError(
                    ErrorCode.MODIFICATIONS_NOT_SUPPORTED, "the ERP connector cannot export budget modifications"
                )
            )
        if cond.has_pending_original and not cond.exports_budget:
            errors.append(DomainError(ErrorCode.VALIDATION_FAILED, "the ERP connector cannot export original budgets"))
        errors += [ErpFormatInvalidError(p.line_item_id, p.field, p.message) for p in cond.format_problems]
    errors.append(_latest_request_blocker(budget, "send"))
    errors += send_amount_refusals(cond.pending)
    if cond.nothing_to_send:
        errors.append(DomainError(ErrorCode.NOTHING_TO_SEND, "everything in this budget has already been exported"))
    return _present(errors)


def retrieve_blockers(budget: BudgetState, access: ProjectAccess) -> list[DomainError]:
    not_pending = None
    if budget.export_status is not S.PENDING_ACCEPTANCE:
        not_pending = DomainError(
            ErrorCode.NOT_PENDING,
            f"only a request pending acceptance can be retrieved (status {budget.export_status.value})",
        )
    return _present([permissions.send_refusal(access), not_pending])


def decide_blockers(actor: Actor, status: ExportStatus, action: RequestAction, reason: str | None) -> list[DomainError]:
    errors: list[DomainError | None] = [permissions.decide_refusal(actor)]
    try:
        transition(status, action)
    except DomainError as exc:
        errors.append(exc)
    if action is A.REJECT and not (reason or "").strip():
        errors.append(DomainError(ErrorCode.REASON_REQUIRED, "a rejection needs a reason", ("input", "reason")))
    return _present(errors)


def require_none(errors: Iterable[DomainError | None]) -> None:
    """Refuse with every reason at once, as the blockers fields list them (None entries are no reason)."""
    present = _present(errors)
    if present:
        raise DomainErrors(present)


# --- decisions: the next state and its event ----------------------------------------------------------


def lock(budget: BudgetState, access: ProjectAccess, actor_id: str, now: datetime) -> BudgetChange:
    require_none(lock_blockers(budget, access))
    return BudgetChange(
        _next(budget, locked=True, locked_at=now, locked_by_id=actor_id),
        _recorded(ev.BudgetLocked, budget, actor_id),
    )


def unlock(budget: BudgetState, access: ProjectAccess, actor_id: str) -> BudgetChange:
    require_none(unlock_blockers(budget, access))
    return BudgetChange(
        _next(budget, locked=False, locked_at=None, locked_by_id=None),
        _recorded(ev.BudgetUnlocked, budget, actor_id),
    )


def add_line(
    budget: BudgetState, access: ProjectAccess, actor_id: str, *, line_id: str, amount: Decimal, duplicate: bool
) -> BudgetChange:
    """A new line; `duplicate` says the budget already has a line with the same key."""
    require_none(line_edit_blockers(budget, access, new_line_amount=amount))
    if duplicate:
        raise duplicate_line(("input", "item"))
    return BudgetChange(_next(budget), _recorded(ev.LineItemCreated, budget, actor_id, line_item_id=line_id))


def change_line(budget: BudgetState, access: ProjectAccess, actor_id: str, *, line_id: str) -> BudgetChange:
    require_none(line_edit_blockers(budget, access))
    return BudgetChange(_next(budget), _recorded(ev.LineItemUpdated, budget, actor_id, line_item_id=line_id))


def delete_line(
    budget: BudgetState,
    access: ProjectAccess,
    actor_id: str,
    *,
    line_id: str,
    was_exported: bool,
    has_modifications: bool,
) -> BudgetChange:
    require_none(line_edit_blockers(budget, access))
    if was_exported:
        raise invalid("the line was part of an ERP request: set its original amount to 0 instead", ["id"])
    if has_modifications:
        raise invalid("the line has budget modifications and cannot be deleted", ["id"])
    return BudgetChange(_next(budget), _recorded(ev.LineItemDeleted, budget, actor_id, line_item_id=line_id))


LineKey = tuple[str, str, str]  # (cost code id, cost type id, sub job or '')


@dataclass(frozen=True)
class ImportRow:
    """One validated input row of a bulk import, with where it sits in the input (for error fields)."""

    path: tuple[str, ...]
    key: LineKey
    original_amount: Decimal


@dataclass(frozen=True)
class ImportPlan:
    new_rows: tuple[ImportRow, ...]
    updates: tuple[tuple[ImportRow, str], ...]  # (row, id of the existing line it changes)
    change: BudgetChange


def plan_import(
    budget: BudgetState,
    access: ProjectAccess,
    actor_id: str,
    rows: Sequence[ImportRow],
    existing: Mapping[LineKey, str],
    row_errors: Sequence[DomainError] = (),
) -> ImportPlan:
    """All or nothing: every bad row is reported (with its index in `field`), together with the rows the
    caller could not validate (`row_errors`); a locked budget only takes new lines of amount 0."""
    require_none(line_edit_blockers(budget, access, new_line_amount=Decimal(0) if budget.locked else None))
    if not rows and not row_errors:
        raise invalid("no items to import", ["input", "items"])
    errors = list(row_errors)
    new_rows: list[ImportRow] = []
    updates: list[tuple[ImportRow, str]] = []
    seen: set[LineKey] = set()
    for row in rows:
        if row.key in seen:
            errors.append(duplicate_line(row.path))
            continue
        seen.add(row.key)
        line_id = existing.get(row.key)
        if line_id is None:
            refusal = locked_refusal(budget, row.original_amount, (*row.path, "originalAmount"))
            if refusal is not None:
                errors.append(refusal)
            else:
                new_rows.append(row)
        elif budget.locked:
            errors.append(
                DomainError(ErrorCode.BUDGET_LOCKED, "the budget is locked: existing lines are read-only", row.path)
            )
        else:
            updates.append((row, line_id))
    if errors:
        raise DomainErrors(errors)
    event = _recorded(ev.LineItemsImported, budget, actor_id, created=len(new_rows), updated=len(updates))
    return ImportPlan(tuple(new_rows), tuple(updates), BudgetChange(_next(budget), event))


def duplicate_line(path: Sequence[str]) -> DomainError:
    return DomainError(
        ErrorCode.DUPLICATE_LINE_ITEM, "the budget already has a line with this cost code, cost type and sub job", path
    )


def add_modification(
    budget: BudgetState,
    access: ProjectAccess,
    actor_id: str,
    *,
    modification_id: str,
    number: int,
    amount: Decimal,
    from_line_id: str | None,
    to_line_id: str | None,
) -> BudgetChange:
    """Money moves from one line to another (or onto / off one line); the amount is always positive."""
    require_none(modification_blockers(budget, access))
    if amount <= 0:
        raise invalid("must be greater than 0", ["input", "amount"])
    if from_line_id is None and to_line_id is None:
        raise invalid("name the line the amount moves from, to, or both", ["input", "toLineItemId"])
    if from_line_id == to_line_id:
        raise invalid("the amount must move between two different lines", ["input", "toLineItemId"])
    event = _recorded(ev.BudgetModificationCreated, budget, actor_id, modification_id=modification_id, number=number)
    return BudgetChange(_next(budget), event)


def send(
    budget: BudgetState, access: ProjectAccess, conditions: SendConditions, actor_id: str, *, request_id: str
) -> BudgetChange:
    """A new request pending acceptance becomes the budget's latest."""
    require_none(send_blockers(budget, access, conditions))
    after = _next(
        budget,
        export_status=S.PENDING_ACCEPTANCE,
        last_request_id=request_id,
        request_count=budget.request_count + 1,
    )
    event = ev.BudgetSentToErp(
        project_id=budget.project_id,
        budget_id=budget.id,
        erp_request_id=request_id,
        previous_status=budget.export_status,
        status=S.PENDING_ACCEPTANCE,
        actor_id=actor_id,
    )
    return BudgetChange(after, event)


def sync_project(budget: BudgetState, actor_id: str, erp_job_id: str) -> ev.ProjectSyncedToErp:
    """Syncing a project changes no budget state; it is recorded on the budget's trail."""
    return _recorded(ev.ProjectSyncedToErp, budget, actor_id, erp_job_id=erp_job_id)


# --- amounts: every stored amount and every total stays within 13 integer digits ---------------------------


@dataclass(frozen=True)
class LineAmounts:
    """A line's amounts as a change would leave them; `label` names the line, `field` the input at fault."""

    original: Decimal
    modifications: Decimal
    label: str = "the line"
    field: tuple[str, ...] | None = None

    @property
    def revised(self) -> Decimal:
        return self.original + self.modifications


@dataclass(frozen=True)
class BudgetTotals:
    """Sums over a budget's lines (what originalBudgetTotal / modificationsTotal / revisedBudgetTotal show)."""

    original: Decimal = ZERO
    modifications: Decimal = ZERO

    @property
    def revised(self) -> Decimal:
        return self.original + self.modifications

    def replacing(self, before: LineAmounts | None, after: LineAmounts | None) -> BudgetTotals:
        """The totals once the line `before` (None: a new line) is `after` (None: deleted)."""
        zero = LineAmounts(ZERO, ZERO)
        old, new = before or zero, after or zero
        return BudgetTotals(
            self.original - old.original + new.original, self.modifications - old.modifications + new.modifications
        )


def _out_of_range(what: str, value: Decimal, field: Sequence[str] | None) -> DomainError:
    return DomainError(
        ErrorCode.AMOUNT_OUT_OF_RANGE,
        f"{what} would be {format_decimal(value)}: amounts and totals have at most {MAX_INTEGER_DIGITS} "
        "integer digits",
        field,
    )


def amount_refusals(
    lines: Iterable[LineAmounts], totals: BudgetTotals, field: Sequence[str] | None = None
) -> list[DomainError]:
    """Why a change is refused for its amounts: a changed line's original, modifications or revised amount,
    or the budget's totals after the change (`totals`), past 13 integer digits. `field`: the input a
    budget total is blamed on."""
    errors: list[DomainError] = []
    for line in lines:
        for what, value in (
            ("original amount", line.original),
            ("modifications amount", line.modifications),
            ("revised amount", line.revised),
        ):
            if not amount_in_range(value):
                errors.append(_out_of_range(f"the {what} of {line.label}", value, line.field))
    for what, value in (
        ("original budget total", totals.original),
        ("modifications total", totals.modifications),
        ("revised budget total", totals.revised),
    ):
        if not amount_in_range(value):
            errors.append(_out_of_range(f"the budget's {what}", value, field))
    return errors


def require_amounts_in_range(
    lines: Iterable[LineAmounts], totals: BudgetTotals, field: Sequence[str] | None = None
) -> None:
    require_none(amount_refusals(lines, totals, field))


def send_amount_refusals(pending: Sequence[ExportLine]) -> list[DomainError]:
    """What a send would carry past 13 integer digits: a request line's original budget (a delta on a
    re-send, which can exceed both amounts it is the difference of), budget changes or revised estimate, or
    the request's totals (which include the sum of its entries). One reason per line at most."""
    errors: list[DomainError] = []
    for p in pending:
        for what, value in (
            ("original budget", p.original_budget),
            ("budget changes", p.budget_changes),
            ("revised estimate", p.revised_estimate),
        ):
            if not amount_in_range(value):
                errors.append(_out_of_range(f"the {what} sent for line {p.line.label}", value, None))
                break
    original = sum((p.original_budget for p in pending), ZERO)
    changes = sum((p.budget_changes for p in pending), ZERO)
    for what, value in (
        ("total original budget", original),
        ("total budget changes", changes),
        ("total revised estimate", sum((p.revised_estimate for p in pending), ZERO)),
        ("total of the entries", sum((e.amount for p in pending for e in p.entries), ZERO)),
    ):
        if not amount_in_range(value):
            errors.append(_out_of_range(f"the request's {what}", value, None))
    return errors
