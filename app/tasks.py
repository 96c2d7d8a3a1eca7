"""Stopping background work without trusting it to stop.

`task.cancel(); await task` (and asyncio.wait_for on timeout) waits for the task to finish cancelling; a
task that swallows the cancellation then hangs the whole shutdown. Python 3.11's own `asyncio.wait_for`
does that when the cancellation arrives in the same loop turn as the awaited result (our code uses
`asyncio.timeout` instead); libraries do it in their reconnect paths. So a stop cancels again until the
task is done, and gives up after a bound, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class PollingLoop:
    """Background work run in passes: a pass now and then every `poll_seconds`, or at once when kicked (a
    commit that made work due kicks it, so nothing waits for the poll). A failing pass (a database outage) is
    logged and the next one tries again; the loop itself never dies of it. Subclasses write `run_once`."""

    def __init__(self, poll_seconds: float, name: str, what: str, logger: logging.Logger) -> None:
        self._poll = poll_seconds
        self._name = name  # the task's name
        self._what = what  # how logs name it
        self._log = logger
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One pass over the work due now; returns how much it handled."""
        raise NotImplementedError

    def kick(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool | None:
        """None: not started in this process (`start`); else whether its loop still runs (readiness)."""
        return None if self._task is None else not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name=self._name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task, 10, self._what)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # an outage must not kill the loop; the next pass tries again
                self._log.exception("%s: pass failed", self._what)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()
