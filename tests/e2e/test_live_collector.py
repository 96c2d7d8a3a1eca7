"""The live hub keeps the garbage collector off while woken subscribers deliver: paused from the wake-up
until every woken subscriber waits again (or a bound), with everything alive frozen first; and what was
frozen is compacted once deliveries are quiet. No database: the hub on the in-process broadcast."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from asgi_lifespan import LifespanManager

from app.live import CollectorGuard, LiveHub
from app.main import create_app
from app.settings import Settings
from persistence.database import Database
from tests.support import JWT_SECRET
from tests.waiting import eventually

# The guard's own timers decide when: nothing announces it, so these poll (tests/waiting.py).


async def enabled() -> bool:
    return gc.isenabled()


def compacted(collector: CollectorGuard) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return collector.compactions > 0

    return check


@pytest.fixture
async def hub() -> AsyncIterator[LiveHub]:
    running = LiveHub("memory://")
    yield running
    await running.stop()
    assert gc.isenabled()


async def test_collection_is_paused_from_the_wake_up_until_every_woken_subscriber_waits_again(hub: LiveHub) -> None:
    async with hub.listen("co_a") as first, hub.listen("co_a") as second, hub.listen("co_b") as elsewhere:
        assert gc.isenabled()
        frozen = gc.get_freeze_count()
        hub.notify("co_a")
        assert not gc.isenabled() and hub.collector.paused
        assert gc.get_freeze_count() >= frozen  # what was alive at the wake-up is frozen
        assert await first.wait(1)  # woken; its next wait means it delivered
        await asyncio.wait_for(first.wait(0), 1)
        assert not gc.isenabled()  # the second is still delivering
        assert await second.wait(1)
        await asyncio.wait_for(second.wait(0), 1)
        assert gc.isenabled() and not hub.collector.paused
        assert not await elsewhere.wait(0)  # another company's subscriber was never woken


async def test_a_subscriber_that_never_waits_again_holds_collection_off_for_a_bounded_time() -> None:
    collector = CollectorGuard(max_pause_seconds=0.05)
    hub = LiveHub("memory://")
    hub.collector = collector
    try:
        async with hub.listen("co_a"):
            hub.notify("co_a")
            assert not gc.isenabled()
            await eventually(enabled, timeout=5, what="collection back on after the bound")
            assert not collector.paused
    finally:
        await hub.stop()
        assert gc.isenabled()


async def test_frozen_objects_are_compacted_once_deliveries_are_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The compaction's own steps are recorded, not run: a full collection of the test process would move every
    # other test's garbage around (and run the finalizers of what earlier tests leaked in the middle of this one).
    steps: list[str] = []

    def collect(*_args: object) -> int:
        steps.append("collect")
        return 0

    monkeypatch.setattr(gc, "unfreeze", lambda: steps.append("unfreeze"))
    monkeypatch.setattr(gc, "collect", collect)
    collector = CollectorGuard(settle_seconds=0.01, growth=1.0)
    hub = LiveHub("memory://")
    hub.collector = collector
    try:
        async with hub.listen("co_a") as waiter:
            hub.notify("co_a")
            assert await waiter.wait(1)
            await asyncio.wait_for(waiter.wait(0), 1)
        await eventually(compacted(collector), timeout=5, what="one compaction after the quiet spell")
        assert collector.compactions == 1 and gc.isenabled()
        assert steps == ["unfreeze", "collect"]  # then everything alive is frozen again
    finally:
        await hub.stop()


async def test_on_sqlite_nothing_is_frozen_though_collection_is_still_paused_for_deliveries(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite server freezes nothing, at start or at a delivery: a connection dropped with its transaction
    open holds SQLite's one write lock until the collector finalizes it, and a frozen one never is."""
    freezes: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append("freeze"))
    application = create_app(Settings(database_url=db.url, jwt_secret=JWT_SECRET, run_export_worker=False),
                             run_worker=False)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        hub: LiveHub = application.state.runtime.live
        assert bool(freezes) == (not db.is_sqlite)  # PostgreSQL servers freeze what start-up built
        freezes.clear()
        async with hub.listen("co_a") as waiter:
            hub.notify("co_a")
            assert hub.collector.paused  # collection is paused while delivering, whatever the engine
            assert await waiter.wait(1)
            await asyncio.wait_for(waiter.wait(0), 1)
        assert bool(freezes) == (not db.is_sqlite)
