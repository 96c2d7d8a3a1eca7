"""Shutdown steps are bounded even when the work they stop ignores cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.tasks import cancel_and_wait, run_bounded


async def stubborn(running: asyncio.Event, release: asyncio.Event) -> None:
    running.set()
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue  # what a misbehaving client library does


async def test_a_task_that_swallows_cancellation_does_not_hang_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    running, release = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(stubborn(running, release))
    await running.wait()  # inside its loop: a cancellation now reaches the code that swallows it
    started = time.monotonic()
    await cancel_and_wait(task, 0.2, "the stubborn task")
    assert time.monotonic() - started < 2
    assert not task.done()
    assert "the stubborn task did not stop within 0.2 s" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()


async def test_a_failing_clean_up_step_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ConnectionError("pool already gone")

    await run_bounded(broken(), 1, "closing the pool")
    assert "closing the pool failed: pool already gone" in caplog.text
