"""Wake-ups for live subscriptions, across server processes.

The event log in the database is the source of truth; what travels through broadcaster is only a hint
("company C has events up to N"). Subscriptions re-read the log when woken and on a timer, so a lost hint,
a dead Redis or a crash between commit and publish delays an event by at most one re-read interval and
never loses it.

broadcaster 0.3.1 neither reconnects nor notices a dead connection, and queues per subscriber without
bound. So this hub holds exactly ONE broadcaster subscription per process, fans hints out to local waiters
as coalescing asyncio.Events (memory stays flat whatever a slow client does), proves the channel alive with
a heartbeat it expects to hear back, and rebuilds the connection when it goes quiet or publishing fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable

from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend

from app.metrics import SUBSCRIPTIONS_OPEN, tracking
from app.tasks import cancel_and_wait, run_bounded
from resolvers.live_fanout import Ringable

log = logging.getLogger("budgetbridge.live")

CHANNEL = "budgetbridge_events"


class _RedisBackend(RedisBackend):
    """broadcaster 0.3.1's Redis backend with two races fixed.

    It wakes its listener before SUBSCRIBE completes; redis-py's `listen()` then sees no channel yet and
    returns at once, and the listener goes back to waiting for a wake-up that never comes again: nothing is
    ever received. And it starts that listener before connecting, so every failed connect leaks a task.
    """

    async def connect(self) -> None:
        await self._pubsub.connect()  # type: ignore[no-untyped-call]  # broadcaster's backends are untyped
        self._listener = asyncio.create_task(self._pubsub_listener())

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


def _broadcast_for(url: str) -> Broadcast:
    if url.split("://", 1)[0] in ("redis", "rediss"):
        return Broadcast(backend=_RedisBackend(url))
    return Broadcast(url)


class Waiter:
    """One subscription's doorbell: set by hints for its company, cleared when it re-reads. While the
    subscription is parked with the live fan-out (resolvers.live_fanout), it rings the fan-out instead."""

    def __init__(self, collector: CollectorGuard | None = None) -> None:
        self._event = asyncio.Event()
        self._collector = collector
        self._parked_with: Ringable | None = None

    def ring(self) -> None:
        if self._parked_with is not None:
            self._parked_with.ring()
            return
        if self._collector is not None and not self._event.is_set():
            self._collector.delivering(self)
        self._event.set()

    def park(self, to: Ringable) -> None:
        self._parked_with = to
        self._event.clear()  # the subscription reads the log before it waits on the fan-out
        if self._collector is not None:
            self._collector.delivered(self)

    def unpark(self, rung: bool) -> None:
        self._parked_with = None

    async def wait(self, timeout: float) -> bool:
        """True when rung, False on timeout; either way the caller re-reads the log."""
        if self._collector is not None:
            self._collector.delivered(self)  # back to waiting: whatever it was woken for has been sent
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()


class CollectorGuard:
    """Keeps the garbage collector off the delivery path.

    Delivering one event to thousands of subscribers allocates a lot, which triggers collections; a full one
    walks every tracked object of the process (hundreds of thousands with many subscriptions open), and they
    took most of the delivery window. So when subscribers are woken, everything alive is frozen (gc.freeze,
    constant time: later collections never walk it again) and collection is paused until every woken
    subscriber is back to waiting (it has sent what it was woken for), or `max_pause_seconds` at most.

    Frozen objects are never collected, so cyclic garbage made before a freeze (closed subscriptions,
    finished requests) would stay for good. Once deliveries have been quiet for `settle_seconds` and the
    frozen set has grown by `growth` since the last compaction, it is unfrozen, collected once and frozen
    again: one full collection, off the delivery path, only when it has something to reclaim.
    """

    def __init__(
        self, *, max_pause_seconds: float = 2.0, settle_seconds: float = 10.0, growth: float = 1.25, freeze: bool = True
    ) -> None:
        # freeze=False: only pause collection (bounded). For SQLite, whose single write lock a connection
        # dropped with its transaction open holds until the collector finalizes it, which it never does
        # for a frozen one (the embedded mode is not where thousands of subscribers are).
        self._freeze = freeze
        self._max_pause = max_pause_seconds
        self._settle = settle_seconds
        self._growth = growth
        self._baseline = gc.get_freeze_count()
        self._woken: set[Hashable] = set()  # waiters, and live fan-out groups
        self._paused = False
        self._resume: asyncio.TimerHandle | None = None
        self._compaction: asyncio.TimerHandle | None = None
        self.compactions = 0

    @property
    def paused(self) -> bool:
        return self._paused

    def delivering(self, waiter: Hashable) -> None:
        """`waiter` (or a live fan-out group) is being woken for an event."""
        if not self._woken:
            self._pause()
        self._woken.add(waiter)

    def delivered(self, waiter: Hashable) -> None:
        """`waiter` is waiting again (or for the first time), or gone."""
        self._woken.discard(waiter)
        if not self._woken and self._paused:
            self._unpause()

    def _pause(self) -> None:
        loop = asyncio.get_running_loop()
        if self._freeze:
            gc.freeze()
        if not self._paused and gc.isenabled():
            gc.disable()
            self._paused = True
            self._resume = loop.call_later(self._max_pause, self._unpause)
        if not self._freeze:
            return
        if self._compaction is not None:
            self._compaction.cancel()
        self._compaction = loop.call_later(self._settle, self._compact)

    def _unpause(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._woken.clear()  # a subscriber still busy after max_pause_seconds no longer holds collection off
        if self._paused:
            self._paused = False
            if self._freeze:
                gc.freeze()  # what the delivery left alive is not walked by the next young collection either
            gc.enable()

    def _compact(self) -> None:
        self._compaction = None
        if gc.get_freeze_count() < self._baseline * self._growth:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._baseline = gc.get_freeze_count()
        self.compactions += 1

    def stop(self) -> None:
        self._unpause()
        if self._compaction is not None:
            self._compaction.cancel()
            self._compaction = None


class LiveHub:
    def __init__(
        self,
        url: str,
        *,
        heartbeat_seconds: float = 2.0,
        reconnect_seconds: float = 1.0,
        on_wake: Callable[[str | None], None] = lambda company_id: None,
        freeze_collector: bool = True,
    ) -> None:
        self.url = url
        self._on_wake = on_wake  # runs before subscribers are rung (the shared event cache goes stale)
        self._heartbeat = heartbeat_seconds
        self._reconnect = reconnect_seconds
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._broadcast: Broadcast | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._last_heard = 0.0
        self._instance = uuid.uuid4().hex
        # One publish at a time per connection: the postgres:// backend publishes on its single asyncpg
        # connection, which refuses concurrent statements ("another operation is in progress").
        self._publish_lock = asyncio.Lock()
        self.connected = asyncio.Event()
        self.collector = CollectorGuard(freeze=freeze_collector)

    # --- local side ------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def listen(self, company_id: str) -> AsyncIterator[Waiter]:
        waiter = Waiter(self.collector)
        self._waiters[company_id].add(waiter)
        try:
            with tracking(SUBSCRIPTIONS_OPEN):  # each live subscription listens once
                yield waiter
        finally:
            self.collector.delivered(waiter)
            self._waiters[company_id].discard(waiter)
            if not self._waiters[company_id]:
                del self._waiters[company_id]

    @property
    def listener_count(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def _ring(self, company_id: str | None) -> None:
        self._on_wake(company_id)
        targets = self._waiters.values() if company_id is None else [self._waiters.get(company_id, set())]
        for waiters in targets:
            for waiter in waiters:
                waiter.ring()

    def notify(self, company_id: str) -> None:
        """After a commit: wake local subscribers now, and tell the other processes."""
        self._ring(company_id)
        task = asyncio.get_running_loop().create_task(self._publish(f"e:{company_id}"))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, message: str) -> None:
        broadcast, lock = self._broadcast, self._publish_lock
        if broadcast is None:
            return  # reconnecting: the other processes' timers re-read the log
        try:
            async with lock:
                async with asyncio.timeout(self._heartbeat):
                    await broadcast.publish(CHANNEL, message)
        except Exception as exc:
            log.warning("broadcast publish failed (%s); reconnecting", exc)
            self._drop(broadcast)

    # --- the one broadcaster connection ------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        self.collector.stop()
        await cancel_and_wait(self._task, 5, "the broadcast connection")
        for task in list(self._pending):
            task.cancel()

    def _drop(self, broadcast: Broadcast) -> None:
        if self._broadcast is broadcast:
            self._broadcast = None
            self.connected.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self._connected_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broadcast connection to %s lost (%s); retrying", _safe(self.url), exc)
            self._broadcast = None
            self.connected.clear()
            await asyncio.sleep(self._reconnect)

    async def _connected_session(self) -> None:
        broadcast = _broadcast_for(self.url)
        async with asyncio.timeout(5):
            await broadcast.connect()
        try:
            async with broadcast.subscribe(CHANNEL) as subscriber:
                self._publish_lock = asyncio.Lock()  # a publish stuck on the old connection must not hold us
                self._broadcast = broadcast
                loop = asyncio.get_running_loop()
                self._last_heard = loop.time()
                self.connected.set()
                self._ring(None)  # whatever happened while we were away: everyone re-reads
                heartbeat = asyncio.create_task(self._heartbeats(broadcast))
                try:
                    while self._broadcast is broadcast:
                        try:
                            async with asyncio.timeout(self._heartbeat):
                                event = await subscriber.get()
                        except TimeoutError:
                            if loop.time() - self._last_heard > 3 * self._heartbeat:
                                raise ConnectionError("no heartbeat heard back") from None
                            continue
                        self._last_heard = loop.time()
                        kind, _, company_id = event.message.partition(":")
                        if kind == "e":
                            self._ring(company_id)
                finally:
                    await cancel_and_wait(heartbeat, 2, "the broadcast heartbeat")
        finally:
            await run_bounded(broadcast.disconnect(), 2, "closing the broadcast connection")

    async def _heartbeats(self, broadcast: Broadcast) -> None:
        lock = self._publish_lock
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                async with lock:
                    async with asyncio.timeout(self._heartbeat):
                        await broadcast.publish(CHANNEL, f"h:{self._instance}")
            except Exception as exc:
                log.warning("heartbeat publish failed (%s)", exc)
                self._drop(broadcast)
                return


def _safe(url: str) -> str:
    """The URL without credentials, for logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
