"""Waiting in tests: on events, never on the clock.

`Changes` is how a test waits for something another task does: whoever changes the state calls `notify()`,
and `until(condition)` re-checks the condition after each notification. Nothing sleeps; the timeout is only a
bound that turns a missing event into a failure with a message instead of a hang.

`eventually` is the suite's ONE polling loop, for state that nothing announces (see its docstring). Every
other wait is on an event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

What = str | Callable[[], str]


def describe(what: What) -> str:
    return what() if callable(what) else what


class Changes:
    """Wakes every waiter whenever something changed; each waiter then re-checks its own condition.

    `notify()` sets the current event and replaces it, so a waiter that checked its condition (false) and then
    awaits the current event cannot miss a change: both happen in one step of the event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, condition: Callable[[], bool], *, timeout: float, what: What) -> None:
        """Return once `condition()` is true; it may raise to fail the wait at once (a stored failure)."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._event.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {describe(what)}") from None


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: What) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds.

    Polling is necessary only where no event can tell the test that the answer changed: `check` reads state
    that another component owns and announces to nobody (a row the export worker writes, a request a
    background task makes). Everything with an event to wait on uses `Changes.until` instead. The interval is
    short and the bound explicit; the loop never decides the outcome by elapsed time alone, it re-checks once
    more after the deadline so a slow machine fails only when the state really never came.
    """
    deadline = time.monotonic() + timeout
    while True:
        overdue = time.monotonic() > deadline
        if await check():
            return
        if overdue:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {describe(what)}")
        await asyncio.sleep(0.02)  # the poll interval of the one polling loop (see the docstring)


async def cancel_until_done(task: asyncio.Task[Any], *, timeout: float = 10) -> bool:
    """Cancel `task` and wait until it is done; True when it is, within `timeout`.

    The cancellation is repeated while the task runs on: Python 3.11's asyncio.wait_for() swallows a
    cancellation that arrives in the same turn of the loop as the result it waits for, and the task then goes
    on as if nothing happened. Each wait returns as soon as the task is done; the 0.1 s is only how often the
    cancellation is repeated."""
    deadline = time.monotonic() + timeout
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    return task.done()


class LogRecords(logging.Handler):
    """Every record a logger emits while installed; waiters are woken on each (see `watching`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.changes = Changes()

    def emit(self, record: logging.LogRecord) -> None:
        # Loggers call handlers synchronously, in the thread that logs: ours all log from the event loop.
        self.records.append(record)
        self.changes.notify()

    def messages(self, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    async def until(self, condition: Callable[[list[logging.LogRecord]], bool], *, timeout: float, what: What) -> None:
        await self.changes.until(lambda: condition(self.records), timeout=timeout, what=what)


@contextmanager
def watching(logger_name: str) -> Iterator[LogRecords]:
    """Collect what `logger_name` logs inside the block (at the levels the logger lets through: warnings and
    above unless configured otherwise)."""
    logger = logging.getLogger(logger_name)
    handler = LogRecords()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
