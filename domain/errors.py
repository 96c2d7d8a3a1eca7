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


class DomainError(Exception):
    """One refusal. Subclasses name the common kinds and keep what they are about."""

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
