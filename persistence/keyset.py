"""Keyset paging: a page starts after the last row of the previous one, named by that row's sort key and id,
never by an offset. Rows added (or removed) before that row do not shift the page, so a client that pages
while the list grows sees no row twice and skips none that existed when it started.

`page(...)` is the statement of one page, `order(...)` its ORDER BY and `after(...)` the condition "comes
after this row" (for a key without NULLs). Every ordering ends in a unique column, so the position of a row
is exact. A nullable sort column sorts its NULLs as if they were larger than every value (last ascending,
first descending): PostgreSQL's own default, which lets one plain index serve both directions; SQLite is told
the same explicitly.

The plain values the read side passes in (`RequestQueueFilter`, `RequestOrder`, `Position`) live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, UnaryExpression, and_, literal, select, tuple_, union_all

# The sort values of a row and its id (or another unique tie-breaker), as a cursor carries them.
Position = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RequestQueueFilter:
    """What the ERP Integrations queue is narrowed to; every condition that is set must hold (None: no such
    condition; an empty tuple matches nothing)."""

    statuses: tuple[str, ...] | None = None
    project_id: str | None = None
    kinds: tuple[str, ...] | None = None
    sent_after: datetime | None = None  # inclusive
    sent_before: datetime | None = None  # exclusive
    sent_by_id: str | None = None


# The erp_requests columns the queue can be ordered by.
REQUEST_ORDER_COLUMNS = ("sent_at", "decided_at", "total_original_budget")


@dataclass(frozen=True, slots=True)
class RequestOrder:
    column: str = "sent_at"  # one of REQUEST_ORDER_COLUMNS
    descending: bool = True

    def __post_init__(self) -> None:
        if self.column not in REQUEST_ORDER_COLUMNS:
            raise ValueError(f"the queue cannot be ordered by {self.column!r}")


def _typed(column: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    """A bound value processed by the column's own type (UTC datetimes, scaled decimals on SQLite)."""
    return literal(value, type_=column.type)


def _beyond(columns: Sequence[ColumnElement[Any]], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """(columns) > (values) ascending, < descending: a row-value comparison both engines index-scan."""
    if len(columns) == 1:
        column, value = columns[0], _typed(columns[0], values[0])
        return column < value if descending else column > value
    left = tuple_(*columns)
    right = tuple_(*(_typed(c, v) for c, v in zip(columns, values, strict=True)))
    return left < right if descending else left > right


def after(
    key: ColumnElement[Any], tie: ColumnElement[Any], position: Position, *, descending: bool
) -> ColumnElement[bool]:
    """Rows after `position` = (key value, tie value) in `order(key, tie)`, for a key without NULLs: one
    row-value comparison, which an index on (..., key, tie) answers with a range scan."""
    return _beyond([key, tie], list(position), descending)


def order(
    key: ColumnElement[Any], tie: ColumnElement[Any], *, descending: bool, nullable: bool = False
) -> list[UnaryExpression[Any]]:
    if descending:
        first = key.desc().nulls_first() if nullable else key.desc()
        return [first, tie.desc()]
    first = key.asc().nulls_last() if nullable else key.asc()
    return [first, tie.asc()]


def page(
    base: Select[Any],
    key: ColumnElement[Any],
    tie: ColumnElement[Any],
    position: Position | None,
    *,
    descending: bool,
    nullable: bool,
    limit: int,
) -> Select[Any]:
    """Up to `limit` rows of `base` after `position` in `order(key, tie)`.

    Every part is a range of one index on (..., key, tie). Where the rows after the cursor are two ranges
    (the non-NULL keys after it and the NULLs, or the NULLs after it and every non-NULL key), each range is
    read on its own, at most `limit` rows each, and the union is ordered again: an OR of both conditions
    would make the database scan from the start of the list, as an offset does."""
    ordering = order(key, tie, descending=descending, nullable=nullable)
    if position is None:
        return base.order_by(*ordering).limit(limit)
    value, tie_value = position
    if not nullable or (value is None) != descending:
        if value is None:  # ascending, among the NULLs at the end: only NULLs with a larger tie follow
            condition = and_(key.is_(None), _beyond([tie], [tie_value], descending))
        else:  # non-NULL rows after it; NULLs sort before them descending and compare to nothing anyway
            condition = _beyond([key, tie], [value, tie_value], descending)
        return base.where(condition).order_by(*ordering).limit(limit)
    if value is None:  # descending, among the NULLs at the start: the rest of them, then every non-NULL row
        ranges = [and_(key.is_(None), _beyond([tie], [tie_value], descending)), key.is_not(None)]
    else:  # ascending: the non-NULL rows after it, then the NULLs at the end
        ranges = [_beyond([key, tie], [value, tie_value], descending), key.is_(None)]
    parts = [base.where(condition).order_by(*ordering).limit(limit).subquery().select() for condition in ranges]
    both = union_all(*parts).subquery()
    again = order(both.c[key.name], both.c[tie.name], descending=descending, nullable=nullable)
    return select(both).order_by(*again).limit(limit)
