"""The live fan-out on fakes (no database, no server): answers executed and encoded once per distinct key,
frames posted in order through each connection's outbox (app.outbox), and anything else handed back to the
subscription's own loop: a client that stops reading, a closed connection, errors, a due re-read."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from graphql import ExecutionResult, GraphQLError

from app.outbox import Outbox
from persistence.reads import EventRelations
from persistence.records import EventRecord
from resolvers.live_fanout import Delivery, LiveFanout, Member
from resolvers.shared_execution import LiveScope, SharingExecutor

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMPANY = "cmp_1"


def event(sequence: int, project_id: str = "prj_1") -> EventRecord:
    return EventRecord(sequence, COMPANY, sequence, NOW, "BudgetSentToErp", "usr_1", project_id, "bgt_1", None,
                       "NOT_SENT", "PENDING_ACCEPTANCE", None, {})


class Tail:
    def __init__(self) -> None:
        self.events: list[EventRecord] = []

    async def after(self, company_id: str, last: int) -> tuple[list[EventRecord], EventRelations] | None:
        return [e for e in self.events if e.sequence > last], EventRelations()


class Doorbell:
    """A subscription's waiter: rings whoever it is parked with."""

    def __init__(self) -> None:
        self.parked_with: Any = None
        self.was_parked = asyncio.Event()

    def park(self, to: Any) -> None:
        self.parked_with = to
        self.was_parked.set()

    def unpark(self, rung: bool) -> None:
        self.parked_with = None


class Executor:
    """Stands in for the subscription's SharingExecutor: its answer to an event is computed by `answer`."""

    def __init__(self, answer: Callable[[EventRecord], ExecutionResult], scope: str = "same") -> None:
        self.context_value = object()
        self.answer = answer
        self.scope = scope
        self.executed: list[int] = []

    def shared_key_of(self, scope: LiveScope) -> Any:
        return ("document", self.scope, scope.key)

    def build_per_event_executor(self, root: EventRecord) -> Any:
        executor = self

        class PerEvent:
            async def execute_operation(self, serially: bool) -> ExecutionResult:
                executor.executed.append(root.sequence)
                return executor.answer(root)

        return PerEvent()


def status_of(record: EventRecord) -> ExecutionResult:
    return ExecutionResult(data={"exportStatusChanged": {"sequence": str(record.sequence)}})


class Connection:
    """A client: its frames, and whether it reads (a send that waits until it does)."""

    def __init__(self, *, reading: bool = True, limit: int = 256) -> None:
        self.frames: list[str] = []
        self.reading = asyncio.Event()
        if reading:
            self.reading.set()
        self.arrived = asyncio.Event()
        self.outbox = Outbox(self._send, limit=limit)
        OPEN.append(asyncio.ensure_future(self._closed()))

    async def _closed(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.outbox.close()  # as the protocol's shutdown does

    async def _send(self, text: str) -> None:
        await self.reading.wait()
        self.frames.append(text)
        self.arrived.set()

    def sequences(self) -> list[int]:
        return [int(json.loads(f)["payload"]["data"]["exportStatusChanged"]["sequence"]) for f in self.frames]


OPEN: list[asyncio.Future[Any]] = []  # what a test leaves running: ended by the `tail` fixture


class Subscriber:
    def __init__(self, fanout: LiveFanout, connection: Connection, executor: Executor, *, last: int = 0,
                 operation_id: str = "1", visible: Callable[[EventRecord], bool] = lambda e: True,
                 deadline: float = float("inf")) -> None:
        self.doorbell = Doorbell()
        self.member = Member(
            delivery=Delivery(operation_id, connection.outbox),
            executor=cast(SharingExecutor, executor),
            root_of=lambda record: record,
            visible=visible,
            scope_of=lambda record: LiveScope(record, (COMPANY, record.sequence), "usr_1"),
            prepare=lambda record, related: None,
            last=last,
            deadline=deadline,
            max_lag=100,
        )
        self.parked = asyncio.ensure_future(fanout.park(COMPANY, self.member, self.doorbell))
        OPEN.append(self.parked)


async def parked(*subscribers: Subscriber) -> None:
    """Until each is parked (its doorbell rings the group)."""
    for subscriber in subscribers:
        await subscriber.doorbell.was_parked.wait()


def commit(tail: Tail, *subscribers: Subscriber, count: int = 1) -> None:
    """New events, and the doorbells ring (as the hub rings every listener of the company)."""
    for _ in range(count):
        tail.events.append(event(len(tail.events) + 1))
    for subscriber in subscribers:
        if subscriber.doorbell.parked_with is not None:
            subscriber.doorbell.parked_with.ring()


async def received(connection: Connection, count: int) -> None:
    while len(connection.frames) < count:
        connection.arrived.clear()
        await connection.arrived.wait()


@pytest.fixture
async def tail() -> AsyncIterator[Tail]:
    yield Tail()
    for running in OPEN:  # the subscriptions' operations end (and their groups with them), then connections
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    OPEN.clear()


async def test_one_execution_and_one_encoding_per_distinct_answer_and_a_frame_for_each_operation(tail: Tail) -> None:
    fanout = LiveFanout(tail)
    same, other = Executor(status_of), Executor(status_of, scope="other")
    connections = [Connection() for _ in range(4)]
    subscribers = [Subscriber(fanout, c, same, operation_id=f"op-{i}") for i, c in enumerate(connections[:3])]
    subscribers.append(Subscriber(fanout, connections[3], other, operation_id="op-3"))
    await parked(*subscribers)
    commit(tail, *subscribers)
    for connection in connections:
        await received(connection, 1)
    assert same.executed == [1] and other.executed == [1]
    assert (fanout.executed, fanout.encoded, fanout.sent) == (2, 2, 4)
    assert [c.frames for c in connections] == [
        [f'{{"id":"op-{i}","type":"next","payload":{{"data":{{"exportStatusChanged":{{"sequence":"1"}}}}}}}}']
        for i in range(4)
    ]
    assert all(s.member.last == 1 and not s.parked.done() for s in subscribers)  # still parked


async def test_what_a_subscriber_may_not_see_is_skipped_not_sent(tail: Tail) -> None:
    fanout = LiveFanout(tail)
    executor = Executor(status_of)
    everything, one_project = Connection(), Connection()
    subscribers = [Subscriber(fanout, everything, executor),
                   Subscriber(fanout, one_project, executor, visible=lambda e: e.sequence % 2 == 0)]
    await parked(*subscribers)
    commit(tail, *subscribers, count=3)
    await received(everything, 3)
    await received(one_project, 1)
    assert everything.sequences() == [1, 2, 3] and one_project.sequences() == [2]
    assert [s.member.last for s in subscribers] == [3, 3]  # skipped events are passed, in order


async def test_a_client_that_stops_reading_holds_up_no_one_and_goes_on_by_itself_once_its_outbox_is_full(
    tail: Tail,
) -> None:
    fanout = LiveFanout(tail)
    executor = Executor(status_of)
    stuck, reading = Connection(reading=False, limit=2), Connection()
    slow, fast = Subscriber(fanout, stuck, executor), Subscriber(fanout, reading, executor)
    await parked(slow, fast)
    for sequence in range(1, 4):  # its first frame waits on the socket; two more queue behind it
        commit(tail, slow, fast)
        await received(reading, sequence)
    assert stuck.frames == [] and stuck.outbox.queued == 2 and not slow.parked.done()
    commit(tail, slow, fast)  # no room: handed back, this event is its own loop's to send
    await received(reading, 4)
    assert await slow.parked == (True, True) and slow.member.last == 3
    assert not fast.parked.done() and fast.member.last == 4
    stuck.reading.set()  # it reads again: what was queued arrives, in order
    await received(stuck, 3)
    assert stuck.sequences() == [1, 2, 3]


async def test_a_closed_connection_drops_out_without_holding_up_the_others(tail: Tail) -> None:
    fanout = LiveFanout(tail)
    executor = Executor(status_of)
    closed, open_ = Connection(), Connection()

    async def gone(text: str) -> None:
        raise ConnectionResetError("gone")

    closed.outbox = Outbox(gone)
    subscribers = [Subscriber(fanout, closed, executor), Subscriber(fanout, open_, executor)]
    await parked(*subscribers)
    commit(tail, *subscribers)
    await received(open_, 1)
    assert closed.outbox.closed and not subscribers[0].parked.done()  # its operation ends with the connection
    commit(tail, *subscribers)
    await received(open_, 2)
    assert open_.sequences() == [1, 2]
    subscribers[0].parked.cancel()  # the protocol's shutdown
    with pytest.raises(asyncio.CancelledError):
        await subscribers[0].parked
    assert fanout.parked == 1


async def test_an_answer_with_errors_is_never_shared_the_subscriber_executes_it_itself(tail: Tail) -> None:
    fanout = LiveFanout(tail)

    def failing(record: EventRecord) -> ExecutionResult:
        return ExecutionResult(data=None, errors=[GraphQLError("boom")])

    executor = Executor(failing)
    first, second = Connection(), Connection()
    subscribers = [Subscriber(fanout, first, executor), Subscriber(fanout, second, executor)]
    await parked(*subscribers)
    commit(tail, *subscribers)
    assert [await s.parked for s in subscribers] == [(True, True)] * 2
    assert [s.member.last for s in subscribers] == [0, 0]  # the event is theirs to read again
    assert first.frames == second.frames == [] and fanout.encoded == 0 and executor.executed == [1]


async def test_a_subscriber_whose_re_read_is_due_goes_on_by_its_timer(tail: Tail) -> None:
    fanout = LiveFanout(tail)
    subscriber = Subscriber(fanout, Connection(), Executor(status_of), deadline=0.0)
    assert await subscriber.parked == (False, True)


async def test_a_subscriber_with_events_to_read_is_not_parked(tail: Tail) -> None:
    fanout = LiveFanout(tail)
    tail.events.append(event(1))
    subscriber = Subscriber(fanout, Connection(), Executor(status_of), last=0)
    assert await subscriber.parked == (True, True) and subscriber.member.last == 0
    assert fanout.parked == 0
