"""The refusals the workflow can give, each with a stable code.

`ErrorCode` is the one list of codes: the GraphQL `ErrorCode` enum is generated from it, so a code cannot
exist on one side only. Errors carry data (ids, statuses, fields); the message is for people and may
change, the code may not.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ErrorCode(enum.StrEnum):
    """A StrEnum: a code compares equal to its name, as clients and logs spell it."""

    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    DUPLICATE_LINE_ITEM = "DUPLICATE_LINE_ITEM"
    BUDGET_LOCKED = "BUDGET_LOCKED"
    BUDGET_NOT_LOCKED = "BUDGET_NOT_LOCKED"
    EXPORT_IN_PROGRESS = "EXPORT_IN_PROGRESS"
    NOT_PENDING = "NOT_PENDING"
    ALREADY_DECIDED = "ALREADY_DECIDED"
    REASON_REQUIRED = "REASON_REQUIRED"
    ERP_NOT_CONNECTED = "ERP_NOT_CONNECTED"
    PROJECT_NOT_SYNCED = "PROJECT_NOT_SYNCED"
    COST_CODE_NOT_SYNCED = "COST_CODE_NOT_SYNCED"
    COST_TYPE_NOT_SYNCED = "COST_TYPE_NOT_SYNCED"
    SUB_JOB_NOT_SUPPORTED = "SUB_JOB_NOT_SUPPORTED"
    MODIFICATIONS_NOT_SUPPORTED = "MODIFICATIONS_NOT_SUPPORTED"
    NOTHING_TO_SEND = "NOTHING_TO_SEND"
    AWAITING_POSTING = "AWAITING_POSTING"
    NOT_FAILED = "NOT_FAILED"
    # Added to the contract's codes: the connector refused or failed to create the job (message says why).
    ERP_SYNC_FAILED = "ERP_SYNC_FAILED"
    # An amount or a total would pass the 13 integer digits amounts have (NUMERIC(15,2)).
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    # Second wave (API.md "Additions"): a value the ERP's import format cannot carry as it is, and posting
    # control totals that do not match the request's exported entries.
    ERP_FORMAT_INVALID = "ERP_FORMAT_INVALID"
    POSTING_TOTALS_MISMATCH = "POSTING_TOTALS_MISMATCH"


class DomainError(Exception):
    """One refusal. Subclasses name the common kinds and keep what they are about.

    `field` is the path to the *input* field at fault (a userError's `field`). A refusal about a budget's
    content rather than its input may point at the cell at fault instead (a blocker's `lineItem` / `field`):
    `line_item_id` names the line (None: the budget or its project) and `cell` the field, relative to the
    line (`("costCode",)`) or, without a line, to the budget (`("project", "number")`)."""

    line_item_id: str | None = None
    cell: tuple[str, ...] | None = None

    def __init__(self, code: ErrorCode, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.field: tuple[str, ...] | None = tuple(field) if field else None


class NotFoundError(DomainError):
    """`what` does not exist, or belongs to another company (the two are indistinguishable on purpose)."""

    def __init__(self, what: str, field: Sequence[str] | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{what} not found", field)
        self.what = what


class ForbiddenError(DomainError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


class ValidationError(DomainError):
    def __init__(self, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(ErrorCode.VALIDATION_FAILED, message, field)


class VersionConflictError(DomainError):
    """The budget moved on: `expected` is what the caller saw (None: a concurrent writer won the race)."""

    def __init__(self, actual: int | None, expected: int | None = None) -> None:
        if expected is not None and actual is not None:
            message = f"the budget is at version {actual}, not {expected}: reload it and try again"
            field: tuple[str, ...] | None = ("input", "expectedVersion")
        else:
            message = "the budget changed meanwhile: reload it and try again"
            field = None
        super().__init__(ErrorCode.VERSION_CONFLICT, message, field)
        self.actual = actual
        self.expected = expected


class ConcurrentChangeError(DomainError):
    """A concurrent transaction won a unique key (persistence translates its integrity error to this)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.VERSION_CONFLICT, "a concurrent change conflicted: reload and retry")


class LineCellError(DomainError):
    """A refusal about one cell of the budget: a line's field, or (without a line) a field of its project."""

    def __init__(self, code: ErrorCode, message: str, line_item_id: str | None, cell: Sequence[str]) -> None:
        self.line_item_id = line_item_id
        self.cell = tuple(cell)
        # As a userError (no lineItem there), the path names the line: ["lineItem", "<id>", "costCode"].
        path = ("lineItem", line_item_id, *self.cell) if line_item_id is not None else self.cell
        super().__init__(code, message, path)


class SubJobNotSupportedError(LineCellError):
    def __init__(self, line_item_id: str | None, label: str) -> None:
        super().__init__(
            ErrorCode.SUB_JOB_NOT_SUPPORTED,
            f"line {label} has a sub job, which the ERP does not support",
            line_item_id,
            ("subJob",),
        )


class ErpFormatInvalidError(LineCellError):
    """A value the company's ERP import format cannot carry as it is (a connector's format violation): one per
    offending line and field. `violation_field` is the line's field as the API names it (BudgetLineItem:
    costCode, costType, subJob, description, unitOfMeasure, quantity, unitCost, originalAmount,
    modificationsAmount) or, without a line, the project's (number, erpJobId)."""

    def __init__(self, line_item_id: str | None, violation_field: str, message: str) -> None:
        cell = (violation_field,) if line_item_id is not None else ("project", violation_field)
        super().__init__(ErrorCode.ERP_FORMAT_INVALID, message, line_item_id, cell)
        self.violation_field = violation_field


class PostingTotalsMismatchError(DomainError):
    """The control totals of a posting confirmation differ from the request's exported entries."""

    def __init__(self, message: str, field: Sequence[str]) -> None:
        super().__init__(ErrorCode.POSTING_TOTALS_MISMATCH, message, field)


class DomainErrors(Exception):
    """Several refusals at once (bulk import reports every bad row, not just the first)."""

    def __init__(self, errors: Sequence[DomainError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)


def not_found(what: str, field_path: Sequence[str] | None = None) -> NotFoundError:
    return NotFoundError(what, field_path)


def forbidden(message: str) -> ForbiddenError:
    return ForbiddenError(message)


def invalid(message: str, field_path: Sequence[str] | None = None) -> ValidationError:
    return ValidationError(message, field_path)
