"""A real uvicorn server on a pre-bound loopback socket, in the test's event loop, for WebSocket clients.

The server announces its start with an event (no polling of `server.started`), and it is always stopped
within a bound: lingering connections are cut after `GRACEFUL_SECONDS`, so the app's lifespan shutdown
(export worker, broadcast hub, database pool) always runs and nothing of one test keeps running into the next.

An in-process server also shows the test what its live subscriptions do (`LiveServer.wakeups`): when one
started, caught up with the log, was woken by a commit or by its re-read timer, and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from app.main import create_app
from app.settings import Settings
from tests.support import JWT_SECRET
from tests.waiting import Changes, What, cancel_until_done

log = logging.getLogger("tests.live_server")

GRACEFUL_SECONDS = 5  # then uvicorn cancels what is still connected and runs the lifespan shutdown
# The app's own shutdown steps are bounded (app.main: at most 45 s in all); a server slower than this is stuck.
STOP_SECONDS = 60.0


def free_port() -> int:
    """A port that was free a moment ago; prefer `bound_socket` (no race) where the server takes a socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server with its start announced by an event, and a failed start raised, not sys.exit()."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit as exc:  # uvicorn exits the process when the app's startup fails
            raise RuntimeError(f"the server did not start (uvicorn exit code {exc.code}); see the log") from None
        if self.started:
            self.started_event.set()


async def _stop(server: _Server, task: asyncio.Task[None], name: str) -> str | None:
    """Stop the server within STOP_SECONDS; a description of what went wrong, or None."""
    server.should_exit = True
    done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
    if not done:
        server.force_exit = True
        stopped = await cancel_until_done(task, timeout=5)
        return f"{name} did not stop within {STOP_SECONDS:g} s" + ("" if stopped else " and ignores cancellation")
    if task.cancelled():
        return f"{name} was cancelled"
    exc = task.exception()
    return f"{name} failed: {exc!r}" if exc is not None else None


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, name: str, lifespan: Literal["on", "off"] = "on") -> AsyncIterator[int]:
    """Serve `app` on a loopback port (yielded) until the block ends."""
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="websockets-sansio",
                            timeout_graceful_shutdown=GRACEFUL_SECONDS)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    try:
        started = asyncio.ensure_future(server.started_event.wait())
        try:
            await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if task.done():
            task.result()
            raise AssertionError(f"{name} stopped before it started")
        if not server.started_event.is_set():
            raise AssertionError(f"{name} did not start within 30 s")
        yield port
    except BaseException:
        problem = await _stop(server, task, name)
        if problem:
            log.error("%s (while the test failed)", problem)
        raise
    else:
        problem = await _stop(server, task, name)
        if problem:
            raise AssertionError(problem)
    finally:
        sock.close()


# --- what the live subscriptions do ---------------------------------------------------------------------


@dataclass
class ObservedSubscription:
    company_id: str
    # In order: "park" (caught up with the log, waiting for a wake-up), "rung" (woken by a commit),
    # "timer" (its re-read interval passed without a wake-up).
    journal: list[str] = field(default_factory=list)
    open: bool = True

    @property
    def parked(self) -> bool:
        return "park" in self.journal

    def reread_by_timer_since(self, position: int) -> bool:
        """Since journal[position]: the re-read timer fired, and the re-read it started is over (parked again)."""
        later = self.journal[position:]
        return "timer" in later and "park" in later[later.index("timer"):]


class _ObservedWaiter:
    def __init__(self, inner: Any, record: ObservedSubscription, changes: Changes) -> None:
        self._inner = inner
        self._record = record
        self._changes = changes

    async def wait(self, timeout: float) -> bool:
        self._parked()
        rung: bool = await self._inner.wait(timeout)
        self._woken(rung)
        return rung

    # Parked with the live fan-out (resolvers.live_fanout) is waiting too: for the fan-out to hand it back.
    def park(self, to: Any) -> None:
        self._inner.park(to)
        self._parked()

    def unpark(self, rung: bool) -> None:
        self._inner.unpark(rung)
        self._woken(rung)

    def _parked(self) -> None:
        self._record.journal.append("park")
        self._changes.notify()

    def _woken(self, rung: bool) -> None:
        self._record.journal.append("rung" if rung else "timer")
        self._changes.notify()


class ObservedWakeups:
    """Stands in for the hub as `services.live`, the seam subscriptions take their wake-ups from: everything is
    passed through to the hub, and each step is recorded and announced to waiting tests.

    A subscription reads the log, sends what it found and only then waits for a wake-up, so "parked" means
    "caught up": everything it was going to send for the events committed before has been sent."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.subscriptions: list[ObservedSubscription] = []
        self.changes = Changes()

    @contextlib.asynccontextmanager
    async def listen(self, company_id: str) -> AsyncIterator[_ObservedWaiter]:
        record = ObservedSubscription(company_id)
        try:
            async with self.hub.listen(company_id) as waiter:
                self.subscriptions.append(record)
                self.changes.notify()
                yield _ObservedWaiter(waiter, record, self.changes)
        finally:
            record.open = False
            self.changes.notify()  # after the hub let go of the listener: listener_count is current

    async def until(self, condition: Any, *, timeout: float = 10, what: What) -> None:
        await self.changes.until(condition, timeout=timeout, what=what)

    async def reread_by_timer(self, *, timeout: float = 10) -> None:
        """Wait until every subscription open now has re-read the log because its re-read timer fired, after
        this call, and is parked again: whatever a timer re-read would send for the events committed before
        this call has been sent."""
        positions = {id(s): (s, len(s.journal)) for s in self.subscriptions if s.open}

        def reread() -> bool:
            for subscription, _ in positions.values():
                if not subscription.open:
                    raise AssertionError(f"a subscription of {subscription.company_id} ended: {subscription.journal}")
            return all(s.reread_by_timer_since(p) for s, p in positions.values())

        await self.until(reread, timeout=timeout, what=lambda: "a timer re-read of every open subscription: " + str(
            [s.journal[p:] for s, p in positions.values()]))


# --- the server -------------------------------------------------------------------------------------------


async def reap(component: Any, what: str) -> None:
    """After `component.stop()` (the export worker, the live hub): its task must be gone.

    A production issue, reported, not fixed here: stop() cancels the task once (app.tasks.cancel_and_wait) and
    gives up after a bound, "leaving it behind". Both tasks wait in asyncio.wait_for() (the worker for a kick,
    the hub for a message), and on Python 3.11 wait_for() swallows a cancellation that arrives in the same turn
    of the loop as what it waited for; the task then runs on, in this event loop shared by every test: the hub
    reconnecting and logging, the worker claiming other tests' exports from the shared database, their
    connections garbage-collected during some later test (a ResourceWarning that fails it). Until stop() stops
    them for good, what it left behind is cancelled here (with a warning in the log)."""
    task = getattr(component, "_task", None)
    if task is not None and not task.done():
        log.warning("%s survived its stop() (a swallowed cancellation); cancelling it again", what)
        assert await cancel_until_done(task), f"{what} ignores cancellation"


async def reap_runtime(runtime: Any, what: str) -> None:
    """After the app's lifespan shutdown: nothing it started may keep running (see `reap`)."""
    if runtime is not None:
        await reap(runtime.worker, f"the export worker of {what}")
        await reap(runtime.live, f"the live hub of {what}")


@dataclass
class LiveServer:
    app: Starlette
    port: int
    wakeups: ObservedWakeups | None = None  # in-process servers only

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


def server_settings_for(database_url: str, **overrides: object) -> Settings:
    base = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        export_poll_seconds=0.05,
        subscription_reread_seconds=1.0,
        keep_alive_seconds=1.0,
        connection_init_timeout_seconds=1.0,
        max_subscriptions_per_connection=3,
        rate_limit_failed_auth="100000/minute",
        rate_limit_operations="100000/minute",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    try:
        async with serving(app, name="live-server") as port:
            services = app.state.runtime.services
            wakeups = ObservedWakeups(services.live)
            services.live = wakeups
            yield LiveServer(app=app, port=port, wakeups=wakeups)
    finally:
        await reap_runtime(getattr(app.state, "runtime", None), "the live server")
