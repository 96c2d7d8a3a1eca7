"""Live events across server processes and across a broadcast outage.

Two real `budgetbridge serve` processes share one PostgreSQL database (`budgetbridge_scaleout`, created
here) and a broadcast channel. Their subscriptions re-read the log only every 30 s, so an event that
reaches the other process's subscriber within a few seconds proves the broadcast wake-up crossed
processes. Then a Redis outage: events made while Redis is down and after it comes back all arrive, in
order, once each, from the event log.

PostgreSQL and Redis are required: unreachable, these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis import asyncio as redis_client
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.live import CHANNEL, LiveHub
from persistence.database import Database
from resolvers.context import Services
from tests.e2e.conftest import ok
from tests.e2e.test_subscriptions import RETRIEVE, SEND, Collector, ready_tenant
from tests.live_server import LiveServer, free_port, live_server, reap, server_settings_for
from tests.support import JWT_SECRET, in_ci, make_services, postgres_url
from tests.waiting import Changes, watching
from tests.ws_support import latest_sequence

ROOT = Path(__file__).resolve().parents[2]
# One database per test run: several runs may share this machine's PostgreSQL, and each drops its own.
SCALEOUT_DATABASE = f"budgetbridge_scaleout_{os.getpid()}"
REDIS_URL = os.environ.get("BUDGETBRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CROSS_PROCESS_SECONDS = 5.0  # far below the 30 s re-read interval of the server processes
HEARTBEAT = 0.5  # of the hubs in the two-hub test


def require(available: bool, reason: str) -> None:
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so these tests must run")
    pytest.skip(reason)


async def run(*command: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def budgetbridge() -> list[str]:
    script = Path(sys.executable).with_name("budgetbridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    env.update({f"BUDGETBRIDGE_{k.upper()}": v for k, v in settings.items()})
    return env


# --- Redis ---------------------------------------------------------------------------------------------

def host_port(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 6379


async def redis_alive(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class ProcessOutput:
    """Drains a child's output into a log file, so the pipe never fills and blocks the child, and lets the
    test wait for a line (the child saying it is ready) or for the end of the output (the child is gone)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        assert process.stdout is not None
        self.log = log
        self.text = ""
        self.closed = False
        self.changes = Changes()
        self.task = asyncio.create_task(self._drain(process.stdout), name=f"drain {log.name}")

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        try:
            with self.log.open("ab") as sink:
                # Chunks, not lines: a line longer than the stream's limit would make readline() raise.
                while chunk := await stream.read(65536):
                    sink.write(chunk)
                    sink.flush()
                    self.text += chunk.decode(errors="replace")
                    self.changes.notify()
        finally:
            self.closed = True
            self.changes.notify()

    async def wait_for_line(self, needle: str, *, timeout: float, what: str) -> None:
        """Wait until the output contains `needle` (case-insensitive); fail at once if the output ends first."""

        def seen() -> bool:
            if needle.lower() in self.text.lower():
                return True
            if self.closed:
                raise AssertionError(f"the process ended before {what}:\n{self.text[-4000:]}")
            return False

        await self.changes.until(seen, timeout=timeout, what=lambda: f"{what}; output:\n{self.text[-4000:]}")

    async def close(self) -> None:
        """After the process ended: the rest of its output is read (bounded: a grandchild could hold the pipe)."""
        done, _ = await asyncio.wait({self.task}, timeout=10)
        if not done:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=5)
        elif self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]


@dataclass
class RedisServer:
    """A Redis of this test's own, on a free port: stopping it disturbs nobody else (other test runs on the
    machine, the shared Redis of REDIS_URL). It runs as a child process in the foreground: its log says when it
    accepts connections and its exit says it is gone, so nothing is polled."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    output: ProcessOutput | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--logfile", "",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self.output = ProcessOutput(self.process, self.directory / f"redis-{self.starts}.log")
        try:
            # Logged once its listening socket is open ("Ready to accept connections [tcp]" in Redis 5 to 7).
            await self.output.wait_for_line("ready to accept connections", timeout=15, what="Redis to listen")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM: Redis shuts down at once (nothing to save); it is gone when the process has exited."""
        process, output, self.process, self.output = self.process, self.output, None, None
        if process is None:
            return
        await terminate(process)
        if output is not None:
            await output.close()


@contextlib.asynccontextmanager
async def own_redis(directory: Path) -> AsyncIterator[RedisServer]:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    redis = RedisServer(directory)
    try:
        await redis.start()
        yield redis
    finally:
        await redis.stop()


# --- PostgreSQL ----------------------------------------------------------------------------------------

def scaleout_url(drivername: str) -> str:
    url: URL = make_url(postgres_url()).set(drivername=drivername, database=SCALEOUT_DATABASE)
    return url.render_as_string(hide_password=False)


def postgres_address() -> str:
    url = make_url(postgres_url())
    return f"{url.host}:{url.port or 5432}"


async def postgres_alive() -> bool:
    url = make_url(postgres_url()).set(drivername="postgresql", database="postgres")
    try:
        conn = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="module")
async def scaleout_services() -> AsyncIterator[Services]:
    """A database of its own (the suite's `test` database is dropped and recreated by other tests),
    migrated by the real `budgetbridge migrate`."""
    require(await postgres_alive(), f"PostgreSQL at {postgres_address()} is not reachable")
    # Every statement and connect is bounded: a blocked DROP/CREATE DATABASE fails instead of hanging.
    admin = create_async_engine(make_url(postgres_url()).set(database="postgres"), isolation_level="AUTOCOMMIT",
                                connect_args={"timeout": 10, "command_timeout": 60})
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {SCALEOUT_DATABASE} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {SCALEOUT_DATABASE}"))
        code, out, err = await run(*budgetbridge(), "--json", "migrate",
                                   env=server_env(database_url=scaleout_url("postgresql")))
        assert code == 0, (out, err)
        assert '"migrated":true' in out, out
        db = Database(scaleout_url("postgresql+asyncpg"))
        services = make_services(db)
        try:
            yield services
        finally:
            await asyncio.wait_for(services.connectors.aclose(), 10)
            await asyncio.wait_for(db.dispose(), 30)
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {SCALEOUT_DATABASE} WITH (FORCE)"))
    finally:
        await admin.dispose()


# --- server processes ----------------------------------------------------------------------------------

@dataclass
class ServerProcess(LiveServer):
    """A `budgetbridge serve` subprocess; `app` is None (only the URLs of LiveServer are used)."""

    process: asyncio.subprocess.Process | None = None
    log: Path | None = None
    drain: ProcessOutput | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


async def wait_started(server: ServerProcess, timeout: float = 30) -> None:
    """uvicorn logs "Uvicorn running on ..." once the app's startup is complete and the socket listens."""
    assert server.drain is not None
    await server.drain.wait_for_line("Uvicorn running on", timeout=timeout, what=f"the server on {server.port} started")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://127.0.0.1:{server.port}/healthz")
    assert response.status_code == 200, (response.text, server.output()[-4000:])


async def terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await asyncio.wait_for(process.wait(), 10)


@contextlib.asynccontextmanager
async def serve_processes(env: dict[str, str], log_dir: Path, count: int) -> AsyncIterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    try:
        for index in range(count):
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                *budgetbridge(), "serve", "--host", "127.0.0.1", "--port", str(port),
                env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            log = log_dir / f"server-{index}.log"
            servers.append(ServerProcess(app=None, port=port, process=process, log=log,  # type: ignore[arg-type]
                                         drain=ProcessOutput(process, log)))
        for server in servers:
            await wait_started(server)
        yield servers
    finally:
        for server in servers:
            assert server.process is not None and server.drain is not None
            await terminate(server.process)
            await server.drain.close()


# --- the broadcast channel, observed from outside --------------------------------------------------------

class ChannelObserver:
    """A third party on the hubs' channel: every message published there, in order."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.changes = Changes()
        self.failure: BaseException | None = None

    def heard(self, message: str) -> None:
        self.messages.append(message)
        self.changes.notify()

    def failed(self, exc: BaseException) -> None:
        self.failure = exc
        self.changes.notify()

    async def until(self, condition: Callable[[], bool], *, what: str, timeout: float = 10) -> None:
        def satisfied() -> bool:
            if self.failure is not None:
                raise AssertionError(f"observing the channel failed: {self.failure!r}") from self.failure
            return condition()

        await self.changes.until(satisfied, timeout=timeout, what=what)

    async def heartbeats(self, hubs: list[LiveHub], count: int) -> None:
        """Wait for `count` more heartbeats from each hub (each publishes "h:<its instance id>" on its timer)."""
        since = len(self.messages)
        beats = [f"h:{hub._instance}" for hub in hubs]

        def heard() -> bool:
            later = self.messages[since:]
            return all(later.count(beat) >= count for beat in beats)

        await self.until(heard, what=f"{count} heartbeats from each hub")


@contextlib.asynccontextmanager
async def observe_channel(url: str) -> AsyncIterator[ChannelObserver]:
    """Listen on the hubs' channel with a plain client of the backend; subscribed when the block starts."""
    observer = ChannelObserver()
    if url.startswith("redis"):
        client = redis_client.Redis.from_url(url)
        pubsub = client.pubsub()
        subscribed = asyncio.Event()

        async def read() -> None:
            try:
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        subscribed.set()
                    elif message["type"] == "message":
                        observer.heard(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                observer.failed(exc)

        try:
            await pubsub.subscribe(CHANNEL)
            reader = asyncio.create_task(read(), name="channel observer")
            try:
                await asyncio.wait_for(subscribed.wait(), 10)  # Redis confirmed the SUBSCRIBE
                yield observer
            finally:
                reader.cancel()
                await asyncio.wait({reader}, timeout=5)
        finally:
            await asyncio.wait_for(pubsub.aclose(), 5)  # type: ignore[no-untyped-call]
            await asyncio.wait_for(client.aclose(), 5)
    else:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            # LISTEN has run when add_listener returns.
            await conn.add_listener(CHANNEL, lambda _conn, _pid, _channel, payload: observer.heard(payload))
            yield observer
        finally:
            await conn.close(timeout=5)


def http_at(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=15)


# --- the tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("broadcast", ["redis", "postgres"])
async def test_an_event_committed_on_one_process_reaches_subscribers_on_the_other_within_seconds(
    scaleout_services: Services, tmp_path: Path, broadcast: str
) -> None:
    if broadcast == "redis":
        require(await redis_alive(*host_port(REDIS_URL)), f"Redis at {REDIS_URL} is not reachable")
        broadcast_url = REDIS_URL
    else:
        broadcast_url = scaleout_url("postgres")  # broadcaster's LISTEN/NOTIFY backend
    tenant = await ready_tenant(scaleout_services)
    env = server_env(database_url=scaleout_url("postgresql"), jwt_secret=JWT_SECRET, broadcast_url=broadcast_url,
                     subscription_reread_seconds="30", export_poll_seconds="0.2")
    admin_token = tenant.token("admin")
    after = await latest_sequence(scaleout_services, tenant.company_id)
    async with (
        serve_processes(env, tmp_path, 2) as (a, b),
        http_at(a) as on_a,
        http_at(b) as on_b,
        Collector(b, tenant.token("approver"), after=after) as watcher_on_b,
        Collector(a, tenant.token("reader"), projectId=tenant.project_id, after=after) as watcher_on_a,
    ):
        # The first event may still come from a subscription's first read; the next two can only reach
        # the other process's subscriber in time through the broadcast wake-up.
        await ok(on_a, admin_token, SEND, b=tenant.budget_id)
        await watcher_on_b.wait_for(1, timeout=CROSS_PROCESS_SECONDS)
        await ok(on_a, admin_token, RETRIEVE, b=tenant.budget_id)
        await watcher_on_b.wait_for(2, timeout=CROSS_PROCESS_SECONDS)
        # The subscriber on `a` has read the log (events 1 and 2), so the next one must cross from `b`.
        await watcher_on_a.wait_for(2, timeout=CROSS_PROCESS_SECONDS)
        await ok(on_b, admin_token, SEND, b=tenant.budget_id)  # and the other way round
        await watcher_on_a.wait_for(3, timeout=CROSS_PROCESS_SECONDS)
        await watcher_on_b.wait_for(3, timeout=CROSS_PROCESS_SECONDS)
        # A marker both may see: anything extra (a duplicate) would have arrived before it (a subscription
        # sends in sequence order, on one connection).
        await ok(on_b, admin_token, RETRIEVE, b=tenant.budget_id)
        await watcher_on_a.wait_for(4, timeout=CROSS_PROCESS_SECONDS)
        await watcher_on_b.wait_for(4, timeout=CROSS_PROCESS_SECONDS)
    for server in (a, b):  # the channel itself stayed healthy: no wake-up came from a reconnect's re-read
        assert "no heartbeat heard back" not in server.output(), server.output()
    expected = ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    for watcher in (watcher_on_a, watcher_on_b):
        assert [e["status"] for e in watcher.events] == [*expected, "RETRIEVED"]  # and the marker
        sequences = [int(e["sequence"]) for e in watcher.events]
        assert sequences == sorted(set(sequences))
    assert [e["sequence"] for e in watcher_on_a.events] == [e["sequence"] for e in watcher_on_b.events]


@pytest.mark.parametrize("broadcast", ["redis", "postgres"])
async def test_two_hubs_on_one_channel_wake_each_other_and_hear_their_heartbeats(
    broadcast: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub's broadcaster connection itself, without servers: a hint published by one hub rings the
    other's listeners at once, and heartbeats keep arriving, so the connection is never rebuilt."""
    if broadcast == "redis":
        require(await redis_alive(*host_port(REDIS_URL)), f"Redis at {REDIS_URL} is not reachable")
        url = REDIS_URL
    else:
        require(await postgres_alive(), f"PostgreSQL at {postgres_address()} is not reachable")
        url = make_url(postgres_url()).set(drivername="postgres", database="postgres").render_as_string(False)
    caplog.set_level(logging.WARNING, logger="budgetbridge.live")
    company = f"co_hubtest_{os.getpid()}"
    hint = f"e:{company}"
    # Short enough for a quick test, long enough that a loaded CI machine (the event loop descheduled for a
    # few hundred ms) does not time a heartbeat's publish out: that is not what this test is about.
    hubs = [LiveHub(url, heartbeat_seconds=HEARTBEAT, reconnect_seconds=0.2) for _ in range(2)]
    async with observe_channel(url) as channel:
        for hub in hubs:
            await hub.start()
        try:
            for hub in hubs:
                await asyncio.wait_for(hub.connected.wait(), 10)
            await channel.heartbeats(hubs, 1)  # both publish, and the observer hears them
            async with hubs[1].listen(company) as waiter:
                for _ in range(3):
                    started = time.monotonic()
                    hubs[0].notify(company)
                    assert await waiter.wait(2.0), "the other hub's listener was not rung"
                    assert time.monotonic() - started < 1.0
                    await channel.heartbeats(hubs, 2)  # a few heartbeats in between
                for _ in range(20):  # a burst of commits: concurrent publishes on one connection
                    hubs[0].notify(company)
                assert await waiter.wait(2.0)
                # Every publish of the burst went out, then heartbeats for longer than a hub takes to notice
                # silence (more than 3 intervals, checked once per interval: within 4; heartbeats are at least
                # an interval apart): a hub that stopped hearing the channel, or whose connection the burst
                # broke, would have said so by now.
                await channel.until(lambda: channel.messages.count(hint) == 3 + 20, what="every hint published")
                await channel.heartbeats(hubs, 4 + 1)
        finally:
            for hub in hubs:
                await hub.stop()
                await reap(hub, "a hub of the test")
    assert [r.getMessage() for r in caplog.records if r.name == "budgetbridge.live"] == []


async def test_serve_with_several_workers_and_an_in_process_broadcast_refuses_to_start(tmp_path: Path) -> None:
    env = server_env(database_url=f"sqlite:///{tmp_path / 'bb.db'}", jwt_secret=JWT_SECRET, broadcast_url="memory://")
    started = time.monotonic()
    code, out, err = await run(*budgetbridge(), "serve", "--port", str(free_port()), "--workers", "2",
                               env=env, timeout=30)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "memory://" in lines[0]
    assert out == ""
    assert time.monotonic() - started < 20  # refused up front, not after starting anything
    assert not (tmp_path / "bb.db").exists()


async def test_events_made_during_a_redis_outage_are_delivered_once_in_order_after_it(
    db: Database, services: Services, tmp_path: Path
) -> None:
    tenant = await ready_tenant(services)
    async with own_redis(tmp_path) as redis:
        settings = server_settings_for(db.url, broadcast_url=redis.url, subscription_reread_seconds=1.0)
        async with live_server(settings) as server, http_at(server) as http:
            live = server.app.state.runtime.live
            await asyncio.wait_for(live.connected.wait(), 10)
            after = await latest_sequence(services, tenant.company_id)
            with watching("budgetbridge.live") as hub_log:
                async with Collector(
                    server, tenant.token("approver"), projectId=tenant.project_id, after=after
                ) as watcher:
                    await redis.stop()
                    await ok(http, tenant.token("admin"), SEND, b=tenant.budget_id)
                    await ok(http, tenant.token("admin"), RETRIEVE, b=tenant.budget_id)
                    # The hub noticed: it logs a warning whenever it drops the connection, in the same step.
                    await hub_log.until(lambda records: any(r.levelno >= logging.WARNING for r in records), timeout=15,
                                        what="the hub to notice that Redis is gone")
                    assert not live.connected.is_set()
                    await redis.start()
                    await ok(http, tenant.token("admin"), SEND, b=tenant.budget_id)
                    events = await watcher.wait_for(3, timeout=10)
                    await asyncio.wait_for(live.connected.wait(), 20)  # and found Redis again
                    await ok(http, tenant.token("admin"), RETRIEVE, b=tenant.budget_id)
                    events = await watcher.wait_for(4, timeout=10)
                    # A re-read on the subscription's timer must not repeat anything; then a marker: a duplicate
                    # would have come before it (a subscription sends in sequence order, on one connection).
                    assert server.wakeups is not None
                    await server.wakeups.reread_by_timer()
                    await ok(http, tenant.token("admin"), SEND, b=tenant.budget_id)
                    events = await watcher.wait_for(5, timeout=10)
    expected = ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE", "RETRIEVED"]
    assert [e["status"] for e in events] == [*expected, "PENDING_ACCEPTANCE"]  # and the marker
    assert len(watcher.events) == len(expected) + 1
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences))
