"""How the HTTP benches run the two servers and drive them.

Timing: BudgetBridge (`app.main:create_app_from_env`) and the raw floor (`bench.floor:create_floor_app`) each
run in a uvicorn process of their own, one worker, like production; the clients are httpx in the bench's
process. The two are measured in turn, interleaved, in the same run: at c=1 one request to each by turns
(p50/p99), at c=16 windows of a fixed time by turns (throughput, median of the windows).

Counting: statements and round trips are counted in this process, on the same apps served in process
(ASGI, no socket), after a warm-up request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from bench.floor import Floor, floor_app
from bench.measure import Tally, count_round_trips, counting, percentile
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16

Call = Callable[[httpx.AsyncClient, int], Awaitable[Any]]  # (client, worker index): a worker may own its target


def app_environment(database_url: str, jwt_secret: str, response_cache_bytes: int = 0) -> dict[str, str]:
    """The server's settings. The response cache is off unless asked for: a cold bench measures execution,
    and a warm one (nested_reads) turns it on by name."""
    return {
        **os.environ,
        "BUDGETBRIDGE_DATABASE_URL": database_url,
        "BUDGETBRIDGE_JWT_SECRET": jwt_secret,
        "BUDGETBRIDGE_RUN_EXPORT_WORKER": "false",
        "BUDGETBRIDGE_RATE_LIMIT_OPERATIONS": "100000000/minute",  # the bench is one user
        "BUDGETBRIDGE_BROADCAST_URL": "memory://",
        "BUDGETBRIDGE_RESPONSE_CACHE_BYTES": str(response_cache_bytes),
    }


def bench_settings(database_url: str, jwt_secret: str, response_cache_bytes: int = 0) -> Settings:
    return Settings.from_env(app_environment(database_url, jwt_secret, response_cache_bytes))


# The process id behind each server URL uvicorn_process yields (for its resident memory).
SERVER_PIDS: dict[str, int] = {}


def rss_bytes(url: str) -> int:
    """The resident set size of the server process behind `url` (Linux: /proc/<pid>/status VmRSS)."""
    for line in Path(f"/proc/{SERVER_PIDS[url]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc: resident memory is measured on Linux only")


@contextlib.contextmanager
def uvicorn_process(factory: str, env: dict[str, str]) -> Iterator[str]:
    """`uvicorn <factory> --factory` on a free port; yields its base URL. Not on a socket handed over with
    --fd: uvicorn takes such a socket for a Unix one, so its connections go without TCP_NODELAY and small
    answers wait for delayed ACKs (40 ms). A port picked free can be taken by another process before the
    server binds it: run the benches alone (the suite's own servers bind their sockets first)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    SERVER_PIDS[url] = process.pid
    try:
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_until_serving(client: httpx.AsyncClient, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.get(url)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@dataclass
class Latency:
    label: str
    samples: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)


async def interleaved_latencies(client: httpx.AsyncClient, ours: Call, floor: Call, samples: int
                                ) -> tuple[Latency, Latency]:
    """c=1: one request to each side by turns (the order alternates), after a warm-up of each."""
    for call in (ours, floor, ours, floor):
        await call(client, 0)
    measured: dict[int, list[float]] = {0: [], 1: []}
    for i in range(samples):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            call = ours if side == 0 else floor
            start = time.perf_counter()
            await call(client, 0)
            measured[side].append(time.perf_counter() - start)
    return Latency("budgetbridge", measured[0]), Latency("raw floor", measured[1])


async def throughput_window(client: httpx.AsyncClient, call: Call, seconds: float, concurrency: int) -> float:
    """Requests per second with `concurrency` clients for `seconds`."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(index: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call(client, index)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - start)


async def interleaved_throughput(client: httpx.AsyncClient, ours: Call, floor: Call, windows: int, seconds: float,
                                 concurrency: int = CONCURRENCY) -> tuple[float, float]:
    """Windows by turns, `concurrency` clients each; the median requests per second of each side."""
    measured: dict[int, list[float]] = {0: [], 1: []}
    for i in range(windows):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            call = ours if side == 0 else floor
            measured[side].append(await throughput_window(client, call, seconds, concurrency))
    return statistics.median(measured[0]), statistics.median(measured[1])


@contextlib.asynccontextmanager
async def timed_servers(database_url: str, jwt_secret: str, response_cache_bytes: int = 0
                        ) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """Both servers in their own processes, and a client with room for CONCURRENCY connections to each."""
    env = app_environment(database_url, jwt_secret, response_cache_bytes)
    limits = httpx.Limits(max_connections=4 * CONCURRENCY, max_keepalive_connections=4 * CONCURRENCY)
    with (
        uvicorn_process("app.main:create_app_from_env", env) as ours,
        uvicorn_process("bench.floor:create_floor_app", env) as floor,
    ):
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            await wait_until_serving(client, ours + "/healthz")
            await wait_until_serving(client, floor + "/nested")
            yield client, ours, floor


@contextlib.asynccontextmanager
async def counted_servers(database_url: str, jwt_secret: str, response_cache_bytes: int = 0
                          ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Tally, Tally]]:
    """Both apps in this process (ASGI), each with a tally of its statements and round trips."""
    floor_tally = Tally()

    async def on_connect(conn: Any) -> None:
        count_round_trips(conn, floor_tally)

    ours_app = create_app(bench_settings(database_url, jwt_secret, response_cache_bytes), run_worker=False)
    floor = floor_app(Floor(database_url, jwt_secret, on_connect=on_connect))
    async with LifespanManager(ours_app) as ours_running, LifespanManager(floor) as floor_running:
        engine = ours_app.state.runtime.db.engine.sync_engine
        with counting(engine) as ours_tally:
            async with (
                httpx.AsyncClient(transport=httpx.ASGITransport(app=ours_running.app), base_url="http://ours") as a,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=floor_running.app), base_url="http://floor") as b,
            ):
                yield a, b, ours_tally, floor_tally


async def count_one(client: httpx.AsyncClient, call: Call, tally: Tally) -> Tally:
    """The statements and round trips of one request, after a warm-up one (pool, statement caches)."""
    await call(client, 0)
    await call(client, 0)
    tally.reset()
    await call(client, 0)
    once = Tally()
    once.statements, once.driver_statements, once.round_trips = tally.statements, tally.driver_statements, \
        tally.round_trips
    return once


@dataclass(frozen=True)
class Comparison:
    """BudgetBridge against the floor in one interleaved run: c=1 latencies (seconds), and requests per second
    with `clients` at once."""

    p50: float
    p99: float
    floor_p50: float
    floor_p99: float
    throughput: float
    floor_throughput: float
    clients: int

    def lines(self, name: str, ours: Tally, floor: Tally | None) -> list[str]:
        counts = (f"{name}: per request: budgetbridge {ours.statements} sql statements, {ours.round_trips} round"
                  " trips")
        if floor is not None:
            counts += f";  raw floor {floor.driver_statements} sql statements, {floor.round_trips} round trips"
        return [
            f"{name}: c=1 budgetbridge p50 {self.p50 * 1000:8.2f} ms  p99 {self.p99 * 1000:8.2f} ms;"
            f"  raw floor p50 {self.floor_p50 * 1000:8.2f} ms  p99 {self.floor_p99 * 1000:8.2f} ms",
            f"{name}: c={self.clients} budgetbridge {self.throughput:8.1f} req/s;  raw floor "
            f"{self.floor_throughput:8.1f} req/s",
            counts,
            f"{name}: ratio p50: {self.p50 / self.floor_p50:.2f}  ratio p99: {self.p99 / self.floor_p99:.2f}  "
            f"ratio throughput (floor / budgetbridge): {self.floor_throughput / self.throughput:.2f}",
        ]


async def compare(client: httpx.AsyncClient, ours: Call, floor: Call, args: argparse.Namespace,
                  clients: int = CONCURRENCY) -> Comparison:
    """Both measures of a bench, by turns: `args.samples` at c=1, then `args.windows` windows of `args.seconds`."""
    latency, floor_latency = await interleaved_latencies(client, ours, floor, args.samples)
    throughput, floor_throughput = await interleaved_throughput(client, ours, floor, args.windows, args.seconds,
                                                                clients)
    return Comparison(latency.p50, latency.p99, floor_latency.p50, floor_latency.p99, throughput, floor_throughput,
                      clients)
