"""Live fan-out: one task per company delivers each new event to every caught-up live subscription of the process.

A subscription that has caught up with the log would otherwise wake its own task for every event and pass
it through three async generators (ours, graphql-core's, strawberry's), strawberry's per-result handling and
its own JSON encoding. Here, a caught-up subscription whose transport takes ready-made frames (`Delivery`,
set by the graphql-transport-ws handler) parks instead of waiting: its doorbell rings its company's `_Group`
from then on, and its task sleeps until it is handed back. When the company's log grows, the group reads the
new events once (the shared event tail) and, for every parked subscription, decides whether the event is
sent to it (its rights and project filter, the very check of resolvers.subscriptions), executes each
distinct answer once (resolvers.shared_execution's key: document, variables, visibility scope), encodes it
once, and posts the same text, framed with each subscription's operation id, to its connection's outbox.

Anything that is not a plain shared answer goes back to the subscription's own loop, which then runs as it
always did (`_hand_back`): an answer with errors (never shared: the subscriber executes the event itself), a
re-read of the viewer's access that is due, a backlog beyond max_lag, an event cache that no longer reaches
back far enough, a client that does not read (its outbox is full: its own sends wait). A parked subscription
goes on after the last event it was sent, so its events stay in order. One whose connection is closed is
sent nothing more; it ends with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from persistence.reads import EventRelations
from persistence.records import EventRecord
from resolvers.shared_execution import Key, LiveScope, SharingExecutor

log = logging.getLogger("budgetbridge.live")


class Outbox(Protocol):
    """A connection's outgoing text frames, in order (app.outbox)."""

    def post(self, text: str) -> bool:
        """Send `text` without waiting; False when the connection does not take it (closed, or too far behind)."""
        ...

    @property
    def closed(self) -> bool: ...


@dataclass(frozen=True)
class Delivery:
    """Where a subscription operation's `next` frames go, set for the operation's task by a transport that
    takes ready-made frames (graphql-transport-ws)."""

    operation_id: str
    outbox: Outbox
    sent: Callable[[], None] = lambda: None  # a frame was sent (the operation's access line)
    # False once the client completed the operation (its task is being cancelled): nothing more is sent.
    is_open: Callable[[], bool] = lambda: True

    def prefix(self) -> str:
        # The bytes strawberry would send: {"id": ..., "type": "next", "payload": {"data": ...}}
        return '{"id":' + orjson.dumps(self.operation_id).decode() + ',"type":"next","payload":{"data":'


# Set by the transport in the operation's task; read by the subscription when it starts.
current_delivery: ContextVar[Delivery | None] = ContextVar("budgetbridge_live_delivery", default=None)


class Ringable(Protocol):
    def ring(self) -> None: ...


@runtime_checkable
class ParkingWaiter(Protocol):
    """A subscription's doorbell (app.live.Waiter) that can ring someone else while the subscription is parked."""

    def park(self, to: Ringable) -> None:
        """From now on, rings go to `to` (and a ring already pending is dropped: the caller reads the log next)."""
        ...

    def unpark(self, rung: bool) -> None:
        """Rings go to the subscription again; `rung`: it goes on for an event, not for its re-read timer."""
        ...


class DeliveryGuard(Protocol):
    """What keeps the garbage collector off a delivery (app.live.CollectorGuard)."""

    def delivering(self, waiter: Any) -> None: ...

    def delivered(self, waiter: Any) -> None: ...


class EventSource(Protocol):
    async def after(self, company_id: str, last: int) -> tuple[list[EventRecord], EventRelations] | None: ...


@dataclass(eq=False)
class Member:
    """One parked subscription: what decides whether an event is sent to it, and how its answer is made."""

    delivery: Delivery
    executor: SharingExecutor  # the subscription's own (its document, variables and context)
    root_of: Callable[[EventRecord], Any]  # the event as the subscription field's value
    visible: Callable[[EventRecord], bool]  # the subscription's project filter and the viewer's rights
    scope_of: Callable[[EventRecord], LiveScope]
    prepare: Callable[[EventRecord, EventRelations], None]  # the context made ready to execute the event
    last: int  # the last event sequence it was sent (or skipped)
    deadline: float  # when its access must be re-read (by its own loop)
    max_lag: int
    prefix: str = ""
    resumed: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def __post_init__(self) -> None:
        self.prefix = self.delivery.prefix()

    def key(self, event: EventRecord) -> Key | None:
        return self.executor.shared_key_of(self.scope_of(event))


class LiveFanout:
    """The process's groups, one per company with parked subscriptions."""

    def __init__(self, tails: EventSource, guard: DeliveryGuard | None = None) -> None:
        self._tails = tails
        self._guard = guard
        self._groups: dict[str, _Group] = {}
        self.executed = 0  # answers executed by groups (each also counted by SharedExecutions)
        self.encoded = 0  # answers encoded
        self.sent = 0  # frames posted

    async def park(self, company_id: str, member: Member, waiter: ParkingWaiter) -> tuple[bool, bool]:
        """Until the subscription must go on by itself (`member.last` is then the last sequence it was sent or
        skipped): whether it goes on for an event (True) or for its re-read timer (False), and whether it was
        parked at all: not when it has events to read already, or the event cache does not reach back to it."""
        group = self._groups.get(company_id)
        if group is None:
            group = self._groups[company_id] = _Group(self, company_id)
        group.join(member)
        waiter.park(group)
        rung = True
        try:
            # Anything committed before the waiter rang the group is read here.
            found = await self._tails.after(company_id, member.last)
            if found is None or any(event.sequence > member.last for event in found[0]):
                return True, found is not None
            rung = await member.resumed
            return rung, True
        finally:
            waiter.unpark(rung)
            group.leave(member)

    @property
    def parked(self) -> int:
        """Subscriptions parked now (those handed back and not yet gone on included)."""
        return sum(len(group.members) for group in self._groups.values())

    def _forget(self, group: _Group) -> None:
        if self._groups.get(group.company_id) is group:
            del self._groups[group.company_id]


@dataclass
class _Planned:
    member: Member
    frames: list[tuple[EventRecord, Key | None]]  # its visible events, with their answers' keys


class _Group:
    def __init__(self, fanout: LiveFanout, company_id: str) -> None:
        self.fanout = fanout
        self.company_id = company_id
        self.members: dict[Member, None] = {}  # in joining order
        self._wake = asyncio.Event()
        self._log_grew = False
        self._next_wake = 0.0
        self.task = asyncio.create_task(self._run(), name=f"live-fanout-{company_id}")

    def ring(self) -> None:
        """A parked member's doorbell rang: the company's log grew."""
        if not self._log_grew:
            self._log_grew = True
            if self.fanout._guard is not None:
                self.fanout._guard.delivering(self)
            self._wake.set()

    def join(self, member: Member) -> None:
        self.members[member] = None
        if member.deadline < self._next_wake:
            self._wake.set()  # its re-read is due before the group would wake

    def leave(self, member: Member) -> None:
        self.members.pop(member, None)
        if not self.members:
            self.fanout._forget(self)
            self.task.cancel()

    async def _run(self) -> None:
        guard = self.fanout._guard
        try:
            while True:
                waiting = [m.deadline for m in self.members if not m.resumed.done()]
                self._next_wake = min(waiting, default=time.monotonic() + 60.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, self._next_wake - time.monotonic())):
                        await self._wake.wait()
                self._wake.clear()
                if self._log_grew:
                    self._log_grew = False
                    try:
                        await self._deliver()
                    finally:
                        if guard is not None and not self._log_grew:  # else: delivering again next
                            guard.delivered(self)
                now = time.monotonic()
                for member in [m for m in self.members if m.deadline <= now]:
                    _hand_back(member, rung=False)
        except Exception:
            log.exception("live fan-out of company %s failed; its subscriptions go on by themselves", self.company_id)
        finally:
            self.fanout._forget(self)
            if guard is not None:
                guard.delivered(self)
            for member in self.members:
                _hand_back(member)

    async def _deliver(self) -> None:
        members = [m for m in self.members if not m.resumed.done()]
        if not members:
            return
        found = await self.fanout._tails.after(self.company_id, min(m.last for m in members))
        if found is None:  # older than the cache: they read the log themselves
            for member in members:
                _hand_back(member)
            return
        events, related = found
        if not events:
            return
        plans = [plan for member in members if (plan := self._plan(member, events)) is not None]
        answers = await self._answers(plans, related)
        fanout = self.fanout
        for plan in plans:
            member = plan.member
            if member not in self.members or member.resumed.done():
                continue
            outbox = member.delivery.outbox
            if outbox.closed or not member.delivery.is_open():
                continue  # the connection is gone, or the operation completed: it is being ended
            for event, key in plan.frames:
                answer = answers.get(key) if key is not None else None
                if answer is None or not outbox.post(member.prefix + answer + "}}"):
                    if not outbox.closed:
                        _hand_back(member)  # it executes (errors) or waits to send (a full outbox) this event itself
                    break
                member.delivery.sent()
                fanout.sent += 1
                member.last = event.sequence
            else:
                member.last = max(member.last, events[-1].sequence)

    def _plan(self, member: Member, events: list[EventRecord]) -> _Planned | None:
        """Its new events that it may see, with their answers' keys; None when it goes on by itself."""
        new = [event for event in events if event.sequence > member.last]
        if len(new) > member.max_lag:
            _hand_back(member)  # its own loop ends it (SUBSCRIBER_TOO_SLOW)
            return None
        return _Planned(member, [(event, member.key(event)) for event in new if member.visible(event)])

    async def _answers(self, plans: list[_Planned], related: EventRelations) -> dict[Key, str | None]:
        """Each distinct answer executed and encoded once: JSON text of its data, or None (errors)."""
        wanted: dict[Key, tuple[Member, EventRecord]] = {}
        for plan in plans:
            for event, key in plan.frames:
                if key is not None and key not in wanted:
                    wanted[key] = (plan.member, event)
        # Members of one connection share its context (its loaders): their executions run one at a time.
        by_context: dict[int, list[tuple[Key, Member, EventRecord]]] = {}
        for key, (member, event) in wanted.items():
            by_context.setdefault(id(member.executor.context_value), []).append((key, member, event))
        answers: dict[Key, str | None] = {}

        async def execute(items: list[tuple[Key, Member, EventRecord]]) -> None:
            for key, member, event in items:
                answers[key] = await self._answer(member, event, related)

        await asyncio.gather(*(execute(items) for items in by_context.values()))
        return answers

    async def _answer(self, member: Member, event: EventRecord, related: EventRelations) -> str | None:
        member.prepare(event, related)
        executor = member.executor.build_per_event_executor(member.root_of(event))
        result = executor.execute_operation(False)
        done = await result if isinstance(result, Awaitable) else result
        self.fanout.executed += 1
        if done.errors or getattr(done, "extensions", None):
            return None  # answered by the subscriber itself, as strawberry would
        self.fanout.encoded += 1
        return orjson.dumps(done.data).decode()


def _hand_back(member: Member, *, rung: bool = True) -> None:
    """The member goes on by itself: for an event (rung) or its re-read timer."""
    if not member.resumed.done():
        member.resumed.set_result(rung)
