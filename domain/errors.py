"""The refusals the workflow can give, each with a stable code (the GraphQL ErrorCode enum).

Errors carry data (ids, statuses, fields); the message is for people and may change, the code may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


# Not frozen: contextlib assigns __traceback__ on exceptions passing through context managers.
@dataclass(eq=False)
class DomainError(Exception):
    code: str
    message: str
    field: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def not_found(what: str, field_path: Sequence[str] | None = None) -> DomainError:
    return DomainError("NOT_FOUND", f"{what} not found", tuple(field_path) if field_path else None)


def forbidden(message: str) -> DomainError:
    return DomainError("FORBIDDEN", message)


def invalid(message: str, field_path: Sequence[str] | None = None) -> DomainError:
    return DomainError("VALIDATION_FAILED", message, tuple(field_path) if field_path else None)


class DomainErrors(Exception):
    """Several refusals at once (bulk import reports every bad row, not just the first)."""

    def __init__(self, errors: Sequence[DomainError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)
