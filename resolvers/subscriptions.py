"""The live event stream: replay from the event log, then follow it.

Order of operations matters: listen for wake-ups first, then read the log, so an event committed between
the read and the wait still rings the bell. Everything delivered comes from the log (never from the hint),
de-duplicated by sequence; sequences are gapless per company, so "everything after N" is exact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import GraphQLError

from domain import permissions
from domain.permissions import Actor, ProjectAccess
from persistence.reads import EventRelations
from persistence.records import EventRecord
from resolvers import input_validation as check
from resolvers.context import Context
from resolvers.event_tail import EventTails
from resolvers.live_fanout import Delivery, LiveFanout, Member, ParkingWaiter, current_delivery
from resolvers.shared_execution import LiveScope, SharingExecutor, subscription_executor

PAGE = 500


class Waiter(Protocol):
    async def wait(self, timeout: float) -> bool: ...


class Wakeups(Protocol):
    def listen(self, company_id: str) -> AbstractAsyncContextManager[Waiter]: ...


class SubscriptionInputError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


class AccessTakenBackError(GraphQLError):
    """The viewer was disabled, deleted or had their tokens revoked while subscribed. The connection is already
    closed (4403) by the time this ends the stream."""

    def __init__(self) -> None:
        super().__init__("access was taken back", extensions={"code": "UNAUTHENTICATED"})


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


def is_status_change(event: EventRecord) -> bool:
    return event.previous_status is not None and event.previous_status != event.status


@dataclass
class _Rights:
    """The viewer (read afresh) and their access to each project, as of their last re-read (once per
    re-read interval)."""

    actor: Actor
    access: dict[str, ProjectAccess]
    read_at: float

    def of(self, project_id: str) -> ProjectAccess:
        return self.access.get(project_id, permissions.NO_ACCESS)

    def scope(self, event: EventRecord) -> LiveScope:
        """Everything the answer to `event` depends on besides the document (resolvers.shared_execution)."""
        actor = self.actor
        key = (actor.company_id, event.sequence, actor.is_company_admin, actor.is_accounting_approver,
               actor.erp_permission, self.of(event.project_id))
        return LiveScope(event, key, actor.user_id)


async def _reread(ctx: Context) -> _Rights:
    """A viewer whose access was taken back ends the stream (the connection is closed already)."""
    reads = ctx.services.reads
    async with reads.session():  # the viewer and their grants on one connection, returned before the next wait
        if not await ctx.still_allowed():
            raise AccessTakenBackError()
        actor = ctx.actor
        return _Rights(actor, await reads.all_access(actor.user_id), time.monotonic())


async def export_status_changed(
    ctx: Context,
    project_id: str | None,
    after: str | None,
    *,
    wakeups: Wakeups,
    reread_seconds: float,
    max_lag: int,
    tails: EventTails | None = None,
    root_of: Callable[[EventRecord], Any] | None = None,
) -> AsyncGenerator[EventRecord, None]:
    """The events the viewer may see, in order. Once caught up, a subscription whose transport takes
    ready-made frames parks with the process's fan-out (resolvers.live_fanout) instead of waiting on its own,
    and goes on here whenever the fan-out hands it back. `root_of` maps an event to the field's value."""
    actor = ctx.actor
    check.argument(project_id, "projectId")
    start = parse_after(check.argument(after, "after"))
    delivery, executor = current_delivery.get(), subscription_executor.get()  # set in this task, before the stream
    async with wakeups.listen(actor.company_id) as waiter:
        parking = _parking(ctx, tails, root_of, delivery, executor, waiter)
        last = start if start is not None else await ctx.services.reads.latest_sequence(actor.company_id)
        caught_up = False
        park_next = parking is not None
        rights = await _reread(ctx)
        while True:
            events, related = await _next_events(ctx, tails, last, caught_up=caught_up, max_lag=max_lag)
            for event in events:
                last = event.sequence
                if not _visible(event, project_id, rights):
                    continue
                _prepare(ctx, related, event, rights)
                yield event
            if len(events) == PAGE:
                continue
            caught_up = True
            if parking is not None and park_next:
                fanout, parked_waiter, member_of = parking
                member = member_of(last, project_id, rights, reread_seconds, max_lag)
                # Not parked again at once when the event cache does not reach back to it: one wait of its own.
                rung, park_next = await fanout.park(actor.company_id, member, parked_waiter)
                last = member.last
            else:
                park_next = parking is not None
                # Until the next re-read is due (not a whole interval after a wake-up), so it is never late.
                rung = await waiter.wait(max(0.0, rights.read_at + reread_seconds - time.monotonic()))
            # Access and permissions are re-read once per interval, not per event: a disabled, deleted or
            # revoked viewer's connection is closed, and a revoked grant stops the stream, within reread_seconds.
            # On the timer, so that a burst of events after a quiet spell does not start with reads for every
            # subscriber; when woken, only if the re-read is due.
            if not rung or time.monotonic() - rights.read_at >= reread_seconds:
                rights = await _reread(ctx)


MemberOf = Callable[[int, "str | None", _Rights, float, int], Member]


def _parking(
    ctx: Context,
    tails: EventTails | None,
    root_of: Callable[[EventRecord], Any] | None,
    delivery: Delivery | None,
    executor: SharingExecutor | None,
    waiter: Waiter,
) -> tuple[LiveFanout, ParkingWaiter, MemberOf] | None:
    """The process's fan-out and how to park this subscription with it, when it can be parked: its transport
    takes ready-made frames, its events are shared (the event cache, shared executions), its executor is known
    and its doorbell can ring the fan-out."""
    fanout: LiveFanout | None = ctx.services.live_fanout
    if (fanout is None or delivery is None or executor is None or tails is None or root_of is None
            or ctx.services.shared_executions is None or executor.context_value is not ctx
            or not isinstance(waiter, ParkingWaiter)):
        return None
    known_delivery, known_executor, known_root_of = delivery, executor, root_of

    def member(last: int, project_id: str | None, rights: _Rights, reread_seconds: float, max_lag: int) -> Member:
        return Member(
            delivery=known_delivery,
            executor=known_executor,
            root_of=known_root_of,
            visible=lambda event: _visible(event, project_id, rights),
            scope_of=rights.scope,
            prepare=lambda event, related: _prepare(ctx, related, event, rights),
            last=last,
            deadline=rights.read_at + reread_seconds,
            max_lag=max_lag,
        )

    return fanout, waiter, member


def _visible(event: EventRecord, project_id: str | None, rights: _Rights) -> bool:
    """Whether the event is sent to this subscriber at all (the same check parked or not)."""
    return (
        is_status_change(event)
        and (project_id is None or event.project_id == project_id)
        and permissions.can_view_project(rights.actor, rights.of(event.project_id))
    )


def _prepare(ctx: Context, related: EventRelations, event: EventRecord, rights: _Rights) -> None:
    """The context made ready to execute `event` for this subscriber."""
    ctx.reset_loaders()  # nested fields of a long-lived stream must not read stale cache
    _seed(ctx, related, event, rights)
    ctx.live_scope = rights.scope(event)


async def _next_events(
    ctx: Context, tails: EventTails | None, last: int, *, caught_up: bool, max_lag: int
) -> tuple[list[EventRecord], EventRelations]:
    """Up to PAGE events after `last`: from the process's shared cache when it reaches back that far,
    else from the log. A live subscriber whose backlog exceeds max_lag is ended (it resumes with `after`)."""
    company_id = ctx.actor.company_id
    cached = await tails.after(company_id, last) if tails is not None else None
    if cached is not None:
        events, related = cached
        if caught_up and len(events) > max_lag:
            raise SubscriberTooSlowError(last)
        return events[:PAGE], related
    reads = ctx.services.reads
    async with reads.session():
        events = await reads.company_events_after(company_id, last, limit=PAGE)
        # Only a long read can mean a long backlog; count it exactly then.
        if caught_up and len(events) >= min(PAGE, max_lag + 1) and await reads.backlog(company_id, last) > max_lag:
            raise SubscriberTooSlowError(last)
    return events, EventRelations()


def _seed(ctx: Context, related: EventRelations, event: EventRecord, rights: _Rights) -> None:
    """Hand the event's related records (read once for all subscribers) and the viewer's recorded access to
    this subscriber's loaders, for when (if ever) it executes the event itself."""
    loaders = ctx.loaders
    loaders.seed("access", event.project_id, rights.of(event.project_id))
    if event.actor_id is not None and (user := related.users.get(event.actor_id)) is not None:
        loaders.seed("user", event.actor_id, user)
    if (project := related.projects.get(event.project_id)) is not None:
        loaders.seed("project", event.project_id, project)
    if (budget := related.budgets.get(event.budget_id)) is not None:
        loaders.seed("budget", event.budget_id, budget)
    if event.erp_request_id is not None and (request := related.requests.get(event.erp_request_id)) is not None:
        loaders.seed("erp_request", event.erp_request_id, request)
