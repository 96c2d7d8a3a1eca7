"""Stopping background work without trusting it to stop.

`task.cancel(); await task` (and asyncio.wait_for on timeout) waits for the task to finish cancelling; a
library that swallows the cancellation (seen with network clients in their reconnect paths) then hangs
the whole shutdown. These helpers give up after a bound and say so instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger("budgetbridge.tasks")


async def cancel_and_wait(task: asyncio.Task[object] | None, timeout: float, what: str) -> None:
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait({task}, timeout=timeout)
    if not task.done():
        log.warning("%s did not stop within %g s; leaving it behind", what, timeout)


async def run_bounded(step: Awaitable[object], timeout: float, what: str) -> None:
    """Run a clean-up step for at most `timeout` seconds; failures are logged, not raised."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        log.warning("%s did not finish within %g s", what, timeout)
    elif task.exception() is not None:
        log.warning("%s failed: %s", what, task.exception())
