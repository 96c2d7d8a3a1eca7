"""The shared event tail on an in-memory event source: single-flight refreshes, never a gap, bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from persistence.reads import EventRelations
from persistence.records import EventRecord, UserRecord
from resolvers.event_tail import PAGE, EventTails

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(company_id: str, sequence: int) -> EventRecord:
    return EventRecord(
        sequence, company_id, sequence, NOW, "BudgetSentToErp", f"usr_{sequence}", "prj_1", "bgt_1", None,
        "NOT_SENT", "PENDING_ACCEPTANCE", None, {},
    )


class Log:
    """An event source whose every read is counted."""

    def __init__(self) -> None:
        self.events: dict[str, list[EventRecord]] = {}
        self.reads: list[str] = []

    def append(self, company_id: str, count: int = 1) -> None:
        stored = self.events.setdefault(company_id, [])
        for _ in range(count):
            stored.append(event(company_id, len(stored) + 1))

    async def latest_sequence(self, company_id: str) -> int:
        self.reads.append("latest")
        return len(self.events.get(company_id, []))

    async def company_events_after(self, company_id: str, after: int, *, limit: int) -> list[EventRecord]:
        self.reads.append("events")
        await asyncio.sleep(0)  # let other readers arrive while this read is in flight
        return [e for e in self.events.get(company_id, []) if e.sequence > after][:limit]

    async def relations_of_events(self, events: Sequence[EventRecord]) -> EventRelations:
        self.reads.append("relations")
        actors = {e.actor_id: e.company_id for e in events if e.actor_id is not None}
        return EventRelations(
            users={a: UserRecord(a, company, "", "", False, False, "NONE", NOW) for a, company in actors.items()}
        )


async def test_readers_woken_together_share_one_read_of_the_log() -> None:
    log = Log()
    log.append("c1", 2)
    tails = EventTails(log, max_age=3600)
    assert await tails.after("c1", 2) == ([], EventRelations())
    log.append("c1", 3)
    tails.invalidate("c1")
    log.reads.clear()
    answers = await asyncio.gather(*(tails.after("c1", 2) for _ in range(20)))
    assert log.reads == ["events", "relations"]
    for answer in answers:
        assert answer is not None
        events, related = answer
        assert [e.sequence for e in events] == [3, 4, 5]
        assert set(related.users) == {"usr_3", "usr_4", "usr_5"}
    assert [e.sequence for e in (await tails.after("c1", 4) or ([], None))[0]] == [5]


async def test_without_a_wake_up_the_cache_is_served_until_it_is_too_old() -> None:
    log = Log()
    tails = EventTails(log, max_age=3600)
    assert await tails.after("c1", 0) == ([], EventRelations())
    log.append("c1")
    assert await tails.after("c1", 0) == ([], EventRelations())  # not woken, not stale: nothing new yet
    stale = EventTails(log, max_age=0)
    assert await stale.after("c1", 0) is None  # built after event 1: a reader at 0 must read the log
    log.append("c1")
    answer = await stale.after("c1", 1)
    assert answer is not None and [e.sequence for e in answer[0]] == [2]


async def test_a_long_backlog_is_read_page_by_page_and_trimmed_to_capacity() -> None:
    log = Log()
    tails = EventTails(log, capacity=10, max_age=3600)
    assert await tails.after("c1", 0) == ([], EventRelations())
    log.append("c1", PAGE + 5)
    tails.invalidate(None)
    log.reads.clear()
    assert await tails.after("c1", 0) is None  # the first events were dropped: the reader goes to the log
    assert log.reads == ["events", "relations", "events", "relations"]
    answer = await tails.after("c1", PAGE - 5)
    assert answer is not None and [e.sequence for e in answer[0]] == list(range(PAGE - 4, PAGE + 6))


async def test_related_records_and_companies_are_bounded() -> None:
    log = Log()
    tails = EventTails(log, capacity=2, max_age=3600, companies=1)
    assert await tails.after("c1", 0) == ([], EventRelations())
    for _ in range(12):  # 12 actors for a capacity of 2: the related records are dropped past 4 x capacity
        log.append("c1")
        tails.invalidate("c1")
        await tails.after("c1", 0)
    answer = await tails.after("c1", 10)
    assert answer is not None
    assert len(answer[1].users) <= 4 * 2 + 1 and "usr_12" in answer[1].users
    assert await tails.after("c2", 0) == ([], EventRelations())  # forgets c1
    log.reads.clear()
    assert await tails.after("c1", 12) == ([], EventRelations())
    assert log.reads[0] == "latest"  # c1's tail was rebuilt from the log's newest event
