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
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.live import LiveHub
from persistence.database import Database
from resolvers.context import Services
from tests.e2e.conftest import ok
from tests.e2e.test_subscriptions import RETRIEVE, SEND, Collector, ready_tenant
from tests.live_server import LiveServer, free_port, live_server, server_settings_for
from tests.support import JWT_SECRET, in_ci, make_services, postgres_url
from tests.ws_support import latest_sequence

ROOT = Path(__file__).resolve().parents[2]
# One database per test run: several runs may share this machine's PostgreSQL, and each drops its own.
SCALEOUT_DATABASE = f"budgetbridge_scaleout_{os.getpid()}"
REDIS_URL = os.environ.get("BUDGETBRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CROSS_PROCESS_SECONDS = 5.0  # far below the 30 s re-read interval of the server processes


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


@dataclass
class RedisServer:
    """A Redis of this test's own, on a free port: stopping it disturbs nobody else (other test runs on the
    machine, the shared Redis of REDIS_URL)."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def wait(self, alive: bool, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while await redis_alive("127.0.0.1", self.port) != alive:
            if time.monotonic() > deadline:
                raise AssertionError(f"Redis did not {'come up' if alive else 'go down'} within {timeout:g} s")
            await asyncio.sleep(0.05)

    async def start(self) -> None:
        code, out, err = await run(
            "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--pidfile", str(self.directory / "redis.pid"),
            "--logfile", str(self.directory / "redis.log"), timeout=15,
        )
        assert code == 0, (out, err)
        await self.wait(alive=True)

    async def stop(self) -> None:
        await run("redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "shutdown", "nosave", timeout=15)
        await self.wait(alive=False)

    async def ensure_stopped(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        pidfile = self.directory / "redis.pid"
        if await redis_alive("127.0.0.1", self.port) and pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@contextlib.asynccontextmanager
async def own_redis(directory: Path) -> AsyncIterator[RedisServer]:
    require(shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None,
            "redis-server and redis-cli are not installed")
    redis = RedisServer(directory)
    try:
        await redis.start()
        yield redis
    finally:
        await redis.ensure_stopped()


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
    admin = create_async_engine(
        make_url(postgres_url()).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {SCALEOUT_DATABASE} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {SCALEOUT_DATABASE}"))
        code, out, err = await run(*budgetbridge(), "--json", "migrate",
                                   env=server_env(database_url=scaleout_url("postgresql")))
        assert code == 0, (out, err)
        assert '"migrated":true' in out, out
        db = Database(scaleout_url("postgresql+asyncpg"))
        try:
            yield make_services(db)
        finally:
            await db.dispose()
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

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


async def wait_healthy(server: ServerProcess, timeout: float = 30) -> None:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if server.process.returncode is not None:
                raise AssertionError(f"server exited with {server.process.returncode}:\n{server.output()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                response = await http.get(f"http://127.0.0.1:{server.port}/healthz")
                if response.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"server not healthy within {timeout:g} s:\n{server.output()[-4000:]}")
            await asyncio.sleep(0.1)


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
            log = log_dir / f"server-{index}.log"
            with log.open("wb") as sink:  # the child holds its own descriptor
                process = await asyncio.create_subprocess_exec(
                    *budgetbridge(), "serve", "--host", "127.0.0.1", "--port", str(port),
                    env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink,
                )
            servers.append(ServerProcess(app=None, port=port, process=process, log=log))  # type: ignore[arg-type]
        for server in servers:
            await wait_healthy(server)
        yield servers
    finally:
        for server in servers:
            assert server.process is not None
            await terminate(server.process)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.02)


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
        await ok(on_b, admin_token, SEND, b=tenant.budget_id)  # and the other way round
        await watcher_on_a.wait_for(3, timeout=CROSS_PROCESS_SECONDS)
        await watcher_on_b.wait_for(3, timeout=CROSS_PROCESS_SECONDS)
        await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
    for server in (a, b):  # the channel itself stayed healthy: no wake-up came from a reconnect's re-read
        assert "no heartbeat heard back" not in server.output(), server.output()
    expected = ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    for watcher in (watcher_on_a, watcher_on_b):
        assert [e["status"] for e in watcher.events] == expected
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
    hubs = [LiveHub(url, heartbeat_seconds=0.2, reconnect_seconds=0.2) for _ in range(2)]
    for hub in hubs:
        await hub.start()
    try:
        for hub in hubs:
            await asyncio.wait_for(hub.connected.wait(), 10)
        async with hubs[1].listen(company) as waiter:
            for _ in range(3):
                started = time.monotonic()
                hubs[0].notify(company)
                assert await waiter.wait(2.0), "the other hub's listener was not rung"
                assert time.monotonic() - started < 1.0
                await asyncio.sleep(0.5)  # a few heartbeats in between
            for _ in range(20):  # a burst of commits: concurrent publishes on one connection
                hubs[0].notify(company)
            assert await waiter.wait(2.0)
            await asyncio.sleep(0.5)
    finally:
        for hub in hubs:
            await hub.stop()
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
            async with Collector(server, tenant.token("approver"), projectId=tenant.project_id, after=after) as watcher:
                await redis.stop()
                await ok(http, tenant.token("admin"), SEND, b=tenant.budget_id)
                await ok(http, tenant.token("admin"), RETRIEVE, b=tenant.budget_id)
                await asyncio.wait_for(until(lambda: not live.connected.is_set()), 15)  # the hub noticed
                await redis.start()
                await ok(http, tenant.token("admin"), SEND, b=tenant.budget_id)
                events = await watcher.wait_for(3, timeout=10)
                await asyncio.wait_for(live.connected.wait(), 20)  # and found Redis again
                await ok(http, tenant.token("admin"), RETRIEVE, b=tenant.budget_id)
                events = await watcher.wait_for(4, timeout=10)
                await asyncio.sleep(1.5)  # a full re-read interval: a duplicate would show now
    assert [e["status"] for e in events] == ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE", "RETRIEVED"]
    assert len(watcher.events) == 4
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences))
