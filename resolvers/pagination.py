"""Cursors, page limits and the page every list field returns.

Cursors are keyset cursors, opaque to clients: base64url (unpadded) of a small JSON array
`[kind, sort value..., id]` naming the last row of a page by where it sits in the list's order, never by an
offset. The next page starts after that row, so rows added meanwhile neither repeat a row nor skip one. The
kind says which list and order the cursor belongs to; a cursor of another list or order, or one that does
not decode, is refused with BAD_USER_INPUT "invalid cursor".
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

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
    """One page of a list: its items, how to name each by its cursor, whether more follow and how many there
    are (None: not counted, as the query did not ask). Cursors are made when asked for: about 10 us each, a
    measurable part of a page of hundreds of rows whose query selects only `endCursor`, or none."""

    items: list[T]
    cursor_of: Callable[[T], str]
    has_next: bool
    total: int | None

    @classmethod
    def of(cls, items: Sequence[T], cursor: Callable[[T], str], *, has_next: bool, total: int | None) -> Page[T]:
        return cls(list(items), cursor, has_next, total)

    @property
    def cursors(self) -> list[str]:
        return [self.cursor_of(item) for item in self.items]

    @property
    def end_cursor(self) -> str | None:
        return self.cursor_of(self.items[-1]) if self.items else None

    @classmethod
    def fetched(
        cls, found: Sequence[T], limit: int, cursor: Callable[[T], str], *, total: int | None
    ) -> Page[T]:
        """The page of a read that asked for `limit + 1` rows: the extra row only says that more follow."""
        return cls.of(found[:limit], cursor, has_next=len(found) > limit, total=total)

    @classmethod
    def empty(cls) -> Page[T]:
        return cls([], _no_cursor, False, 0)


def _no_cursor(item: object) -> str:
    raise AssertionError("an empty page has no items to name")


class QueryLimitError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


# --- keyset cursors --------------------------------------------------------------------------------------

CursorValue = int | str | Decimal | datetime | None
# Turns one decoded JSON value back into a sort value; raises ValueError (or TypeError) when it cannot.
Parser = Callable[[Any], Any]


def _plain(value: CursorValue) -> int | str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def encode(kind: str, *values: CursorValue) -> str:
    payload = json.dumps([kind, *(_plain(v) for v in values)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None, *parsers: Parser, name: str = "after") -> tuple[Any, ...] | None:
    """The sort values a cursor of `kind` carries, each through its parser; None without a cursor."""
    if cursor is None:
        return None
    argument(cursor, name)
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw.decode())
        if isinstance(data, list) and len(data) == len(parsers) + 1 and data[0] == kind:
            return tuple(parse(value) for parse, value in zip(parsers, data[1:], strict=True))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, InvalidOperation, OverflowError):
        pass
    raise QueryLimitError("invalid cursor: pass an endCursor or cursor this API returned for the same list and order")


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("not a text")
    return value


def timestamp(value: Any) -> datetime:
    parsed = datetime.fromisoformat(text(value))
    if parsed.tzinfo is None:
        raise ValueError("not an aware timestamp")
    return parsed


def decimal(value: Any) -> Decimal:
    parsed = Decimal(text(value))
    if not parsed.is_finite():
        raise ValueError("not a finite decimal")
    return parsed


def optional(parse: Parser) -> Parser:
    return lambda value: None if value is None else parse(value)


def check_first(first: int | None, maximum: int = MAX_PAGE, default: int = 50) -> int:
    """`first: null` means the default page size (the contract declares it nullable with a default)."""
    if first is None:
        return default
    if first < 0 or first > maximum:
        raise QueryLimitError(f"first must be between 0 and {maximum}")
    return first
