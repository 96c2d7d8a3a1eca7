"""Shutdown steps are bounded even when the work they stop ignores cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.tasks import cancel_and_wait, run_bounded


async def stubborn(release: asyncio.Event) -> None:
    while not release.is_set():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            continue  # what a misbehaving client library does


async def test_a_task_that_swallows_cancellation_does_not_hang_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    task = asyncio.create_task(stubborn(release))
    await asyncio.sleep(0)
    started = time.monotonic()
    await cancel_and_wait(task, 0.2, "the stubborn task")
    assert time.monotonic() - started < 2
    assert not task.done()
    assert "the stubborn task did not stop within 0.2 s" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=11)


async def test_a_failing_clean_up_step_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ConnectionError("pool already gone")

    await run_bounded(broken(), 1, "closing the pool")
    assert "closing the pool failed: pool already gone" in caplog.text
