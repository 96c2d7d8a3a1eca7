"""Cursors, page limits and the page every list field returns. Cursors are opaque to clients (base64 of a
small tag and a number)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from graphql import GraphQLError

from resolvers.input_validation import argument

MAX_PAGE = 1000

T = TypeVar("T")

# The most items each unpaged list field returns; the rest are cut. The query cost analysis
# (schema/cost.py) charges each such list at its maximum. Documented in the README ("Security").
UNPAGED_MAXIMA: dict[str, int] = {
    "Query.costCodes": 5_000,
    "Query.costTypes": 500,
    "Budget.erpRequests": 200,
    "Budget.modifications": 1_000,
    "Budget.pendingExport": 10_000,
    "Budget.sendBlockers": 100,
    "Budget.unlockBlockers": 100,
    "ErpRequest.lines": 10_000,
    "ErpRequest.entries": 10_000,
    "Reconciliation.lines": 10_000,
}
# Any other list of objects, until it is given its own maximum above.
DEFAULT_UNPAGED_MAXIMUM = 1_000


def capped(items: Sequence[T], field: str) -> Sequence[T]:
    """At most the documented maximum of the unpaged list `field` ("Type.field")."""
    maximum = UNPAGED_MAXIMA.get(field, DEFAULT_UNPAGED_MAXIMUM)
    return items if len(items) <= maximum else items[:maximum]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items, each item's cursor, whether more follow and how many there are."""

    items: list[T]
    cursors: list[str]
    has_next: bool
    total: int

    @classmethod
    def of(cls, items: Sequence[T], cursor: Callable[[T], str], *, has_next: bool, total: int) -> Page[T]:
        return cls(list(items), [cursor(item) for item in items], has_next, total)

    @classmethod
    def at_offset(cls, items: Sequence[T], start: int, *, total: int) -> Page[T]:
        """A page of an offset-paginated list starting at item `start` of `total`."""
        cursors = [encode("o", start + i) for i in range(len(items))]
        return cls(list(items), cursors, start + len(items) < total, total)


class QueryLimitError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


def encode(tag: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{tag}:{value}".encode()).decode()


def decode(tag: str, cursor: str | None, name: str = "after") -> int | None:
    if cursor is None:
        return None
    argument(cursor, name)
    try:
        got_tag, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if got_tag == tag and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise QueryLimitError("invalid cursor: pass an endCursor or cursor this API returned")


def check_first(first: int | None, maximum: int = MAX_PAGE, default: int = 50) -> int:
    """`first: null` means the default page size (the contract declares it nullable with a default)."""
    if first is None:
        return default
    if first < 0 or first > maximum:
        raise QueryLimitError(f"first must be between 0 and {maximum}")
    return first
