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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row

from persistence import event_log, reads
from persistence.database import Database
from persistence.tables import budgets, erp_requests, events, projects, users

PAGE = 500


@dataclass
class _Tail:
    start: int  # every event after this sequence and up to `last` is in `rows`
    last: int
    rows: deque[Row]
    related: dict[str, dict[str, Row]] = field(default_factory=dict)  # loader name -> id -> row
    dirty: bool = False
    refreshed_at: float = 0.0
    refreshing: asyncio.Task[None] | None = None


class EventTails:
    def __init__(self, db: Database, *, capacity: int = 2000, max_age: float = 1.0, companies: int = 256) -> None:
        self._db = db
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

    async def after(self, company_id: str, last: int) -> tuple[list[Row], dict[str, dict[str, Row]]] | None:
        """The company's events after `last` with their related rows, or None when `last` is older than
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
        return [row for row in tail.rows if row.sequence > last], tail.related

    async def _new_tail(self, company_id: str) -> _Tail:
        async with self._db.read() as conn:
            latest = await conn.execute(select(func.max(events.c.sequence)).where(events.c.company_id == company_id))
            newest = int(latest.scalar_one() or 0)
        return _Tail(start=newest, last=newest, rows=deque(), refreshed_at=time.monotonic())

    async def _refresh(self, tail: _Tail, company_id: str) -> None:
        if tail.refreshing is None or tail.refreshing.done():
            tail.dirty = False  # wake-ups from now on need another refresh
            tail.refreshing = asyncio.create_task(self._read_new(tail, company_id))
        await asyncio.shield(tail.refreshing)

    async def _read_new(self, tail: _Tail, company_id: str) -> None:
        async with self._db.read() as conn:
            while True:
                rows = await event_log.company_events_after(conn, company_id, tail.last, limit=PAGE)
                if rows:
                    await self._load_related(conn, tail, rows)
                    tail.rows.extend(rows)
                    tail.last = rows[-1].sequence
                if len(rows) < PAGE:
                    break
            while len(tail.rows) > self._capacity:
                dropped = tail.rows.popleft()
                tail.start = dropped.sequence
        tail.refreshed_at = time.monotonic()

    async def _load_related(self, conn: Any, tail: _Tail, rows: list[Row]) -> None:
        wanted = {
            "user": (users, {r.actor_id for r in rows if r.actor_id}),
            "project": (projects, {r.project_id for r in rows}),
            "budget": (budgets, {r.budget_id for r in rows}),
            "erp_request": (erp_requests, {r.erp_request_id for r in rows if r.erp_request_id}),
        }
        for name, (table, ids) in wanted.items():
            cache = tail.related.setdefault(name, {})
            if len(cache) > 4 * self._capacity:
                cache.clear()  # bounded: ids of dropped events go, the next events reload theirs
            for row in await reads.rows_by_ids(conn, table, list(ids), None):
                cache[row.id] = row
