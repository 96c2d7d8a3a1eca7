"""A per-process cache of each company's newest events, shared by all live subscriptions of the process.

Without it, one status change seen by N subscribers costs N reads of the event log plus N reads of each
related row (actor, project, request, budget). With it, the first subscriber to wake reads the new events
and their related rows once (a single-flight refresh), and every other subscriber takes them from memory.

Correctness rests on the log, not on the cache: sequences are gapless per company, a refresh reads
everything after the newest cached sequence, and a reader whose position is older than the cache (a replay
with an old `after`) is told to read the log itself. The cache is refreshed when a wake-up for the company
arrives (`invalidate`) and, as a safety net, whenever it is older than `max_age`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from persistence.reads import EventRelations
from persistence.records import EventRecord

PAGE = 500


class EventSource(Protocol):
    """What the cache reads (the app's ReadStore; tests hand in a fake)."""

    async def latest_sequence(self, company_id: str) -> int: ...

    async def company_events_after(self, company_id: str, after: int, *, limit: int) -> list[EventRecord]: ...

    async def relations_of_events(self, events: Sequence[EventRecord]) -> EventRelations: ...


@dataclass
class _Tail:
    start: int  # every event after this sequence and up to `last` is in `events`
    last: int
    events: deque[EventRecord]
    related: EventRelations = field(default_factory=EventRelations)
    dirty: bool = False
    refreshed_at: float = 0.0
    refreshing: asyncio.Task[None] | None = None


class EventTails:
    def __init__(self, reads: EventSource, *, capacity: int = 2000, max_age: float = 1.0, companies: int = 256) -> None:
        self._reads = reads
        self._capacity = capacity
        self._max_age = max_age
        self._companies = companies  # least recently read companies are forgotten beyond this
        self._tails: OrderedDict[str, _Tail] = OrderedDict()

    def invalidate(self, company_id: str | None) -> None:
        """A wake-up arrived: the next reader refreshes (once, for everyone)."""
        targets = self._tails.values() if company_id is None else [self._tails.get(company_id)]
        for tail in targets:
            if tail is not None:
                tail.dirty = True

    async def after(self, company_id: str, last: int) -> tuple[list[EventRecord], EventRelations] | None:
        """The company's events after `last` with their related records, or None when `last` is older than
        what the cache holds (the caller reads the log itself)."""
        tail = self._tails.get(company_id)
        if tail is None:
            tail = self._tails[company_id] = await self._new_tail(company_id)
            while len(self._tails) > self._companies:
                self._tails.popitem(last=False)
        self._tails.move_to_end(company_id)
        if tail.dirty or time.monotonic() - tail.refreshed_at > self._max_age:
            await self._refresh(tail, company_id)
        elif tail.refreshing is not None and not tail.refreshing.done():
            await asyncio.shield(tail.refreshing)  # another reader is fetching what we were woken for
        if last < tail.start:
            return None
        return [event for event in tail.events if event.sequence > last], tail.related

    async def _new_tail(self, company_id: str) -> _Tail:
        newest = await self._reads.latest_sequence(company_id)
        return _Tail(start=newest, last=newest, events=deque(), refreshed_at=time.monotonic())

    async def _refresh(self, tail: _Tail, company_id: str) -> None:
        if tail.refreshing is None or tail.refreshing.done():
            tail.dirty = False  # wake-ups from now on need another refresh
            tail.refreshing = asyncio.create_task(self._read_new(tail, company_id))
        await asyncio.shield(tail.refreshing)

    async def _read_new(self, tail: _Tail, company_id: str) -> None:
        while True:
            events = await self._reads.company_events_after(company_id, tail.last, limit=PAGE)
            if events:
                if tail.related.size() > 4 * self._capacity:
                    tail.related = EventRelations()  # bounded: ids of dropped events go, new events reload theirs
                tail.related.add(await self._reads.relations_of_events(events))
                tail.events.extend(events)
                tail.last = events[-1].sequence
            if len(events) < PAGE:
                break
        while len(tail.events) > self._capacity:
            tail.start = tail.events.popleft().sequence
        tail.refreshed_at = time.monotonic()
