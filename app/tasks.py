"""Stopping background work without trusting it to stop.

`task.cancel(); await task` (and asyncio.wait_for on timeout) waits for the task to finish cancelling; a
task that swallows the cancellation then hangs the whole shutdown. Python 3.11's own `asyncio.wait_for`
does that when the cancellation arrives in the same loop turn as the awaited result (our code uses
`asyncio.timeout` instead); libraries do it in their reconnect paths. So a stop cancels again until the
task is done, and gives up after a bound, saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger("budgetbridge.tasks")


async def cancel_and_wait(task: asyncio.Task[object] | None, timeout: float, what: str) -> None:
    if task is None or task.done():
        return
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        task.cancel()  # again each round: one cancellation can be swallowed
        await asyncio.wait({task}, timeout=min(remaining, 0.1))
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
