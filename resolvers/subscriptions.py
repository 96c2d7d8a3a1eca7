"""The live event stream: replay from the event log, then follow it.

Order of operations matters: listen for wake-ups first, then read the log, so an event committed between
the read and the wait still rings the bell. Everything delivered comes from the log (never from the hint),
de-duplicated by sequence; sequences are gapless per company, so "everything after N" is exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from graphql import GraphQLError
from sqlalchemy import func, select
from sqlalchemy.engine import Row

from domain import permissions
from persistence import event_log
from persistence.tables import events, project_permissions
from resolvers.context import MAX_NODES, Context

PAGE = 500


class Waiter(Protocol):
    async def wait(self, timeout: float) -> bool: ...


class Wakeups(Protocol):
    def listen(self, company_id: str) -> AbstractAsyncContextManager[Waiter]: ...


class SubscriptionInputError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


class SubscriberTooSlowError(GraphQLError):
    def __init__(self, last: int) -> None:
        super().__init__(
            f'this subscriber fell too far behind the live stream; subscribe again with after: "{last}" to resume',
            extensions={"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": str(last)},
        )


def parse_after(after: str | None) -> int | None:
    if after is None:
        return None
    text = after.strip()
    if not text.isdigit():
        raise SubscriptionInputError("after must be a sequence number as returned in BudgetEvent.sequence")
    return int(text)


def is_status_change(row: Row) -> bool:
    return row.previous_status is not None and row.previous_status != row.status


async def _visible_projects(ctx: Context) -> set[str] | None:
    """None means every project of the company (admins, approvers, ERP users)."""
    actor = ctx.actor
    if permissions.can_view_project(actor, permissions.NO_ACCESS):
        return None
    async with ctx.db.read() as conn:
        rows = await conn.execute(
            select(project_permissions.c.project_id).where(
                project_permissions.c.user_id == actor.user_id, project_permissions.c.budget_permission != "NONE"
            )
        )
        return set(rows.scalars())


async def _latest_sequence(ctx: Context) -> int:
    async with ctx.db.read() as conn:
        latest = await conn.execute(
            select(func.max(events.c.sequence)).where(events.c.company_id == ctx.actor.company_id)
        )
        return int(latest.scalar_one() or 0)


async def export_status_changed(
    ctx: Context,
    project_id: str | None,
    after: str | None,
    *,
    wakeups: Wakeups,
    reread_seconds: float,
    max_lag: int,
    tails: Any = None,
) -> AsyncIterator[Row]:
    actor = ctx.actor
    start = parse_after(after)
    async with wakeups.listen(actor.company_id) as waiter:
        last = start if start is not None else await _latest_sequence(ctx)
        caught_up = False
        visible: set[str] | None = None
        visible_at = -math.inf
        while True:
            # Permissions are re-read once per interval, not per event: a revoked grant stops the stream
            # within reread_seconds.
            if time.monotonic() - visible_at >= reread_seconds:
                visible, visible_at = await _visible_projects(ctx), time.monotonic()
            rows, related = await _next_rows(ctx, tails, last, caught_up=caught_up, max_lag=max_lag)
            for row in rows:
                last = row.sequence
                if not is_status_change(row):
                    continue
                if project_id is not None and row.project_id != project_id:
                    continue
                if visible is not None and row.project_id not in visible:
                    continue
                ctx.reset_loaders()  # nested fields of a long-lived stream must not read stale cache
                ctx.node_allowance = MAX_NODES  # each event is answered like an operation of its own
                _prime(ctx, related, row)
                yield row
            if len(rows) == PAGE:
                continue
            caught_up = True
            await waiter.wait(reread_seconds)


async def _next_rows(
    ctx: Context, tails: Any, last: int, *, caught_up: bool, max_lag: int
) -> tuple[list[Row], dict[str, dict[str, Row]]]:
    """Up to PAGE events after `last`: from the process's shared cache when it reaches back that far,
    else from the log. A live subscriber whose backlog exceeds max_lag is ended (it resumes with `after`)."""
    company_id = ctx.actor.company_id
    cached = await tails.after(company_id, last) if tails is not None else None
    if cached is not None:
        rows, related = cached
        if caught_up and len(rows) > max_lag:
            raise SubscriberTooSlowError(last)
        return rows[:PAGE], related
    async with ctx.db.read() as conn:
        rows = await event_log.company_events_after(conn, company_id, last, limit=PAGE)
        # Only a long read can mean a long backlog; count it exactly then.
        if caught_up and len(rows) >= min(PAGE, max_lag + 1):
            backlog = await conn.execute(
                select(func.count()).where(events.c.company_id == company_id, events.c.sequence > last)
            )
            if int(backlog.scalar_one()) > max_lag:
                raise SubscriberTooSlowError(last)
    return rows, {}


_RELATED = (("user", "actor_id"), ("project", "project_id"), ("budget", "budget_id"), ("erp_request", "erp_request_id"))


def _prime(ctx: Context, related: dict[str, dict[str, Row]], row: Row) -> None:
    """Hand the event's related rows (read once for all subscribers) to this subscriber's loaders."""
    for loader_name, column in _RELATED:
        key = getattr(row, column)
        found = related.get(loader_name, {}).get(key) if key else None
        if found is not None:
            getattr(ctx.loaders, loader_name).prime(key, found)
