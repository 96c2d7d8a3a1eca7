"""Live subscriptions: how long one status change takes to reach N subscribers, against a raw WebSocket
broadcast to the same N clients, interleaved in the same run, on PostgreSQL.

    python bench/subscriptions.py --database-url postgresql://postgres@127.0.0.1:5432/bb_perf \
        [--subscribers 200 1000 2000] [--rounds 3] [--baseline-repeats 5]

The database given is WIPED (tests.support.fresh_database drops its public schema). The default URL is
BUDGETBRIDGE_BENCH_DATABASE_URL.

BudgetBridge: one in-process uvicorn server (memory:// broadcast), N graphql-transport-ws connections (raw
`websockets` clients, authenticated in connection_init) each with one exportStatusChanged subscription that
also selects the event's project and actor, then status changes over HTTP (sendToERP and retrieveBudget in
turn). A subscriber's latency is the time from just before that request to the moment its `next` message
is received; the path is commit -> wake-up -> each subscription takes the new events from the shared event
tail -> GraphQL execution -> a text frame.

Baseline: a minimal Starlette WebSocket endpoint on another port with the same number of clients; one HTTP
request makes it send one small JSON text frame to every client. It is the floor of the transport (uvicorn,
the websockets client, this event loop) with no database and no GraphQL. It is noisy on a shared machine,
so it runs --baseline-repeats times around every BudgetBridge round and its median p50/p99 are used.

The subscriber counts grow in one run (200, then 800 more, ...): clients and both servers share this
process's event loop, so both sides are measured under the same load. For each count it prints the medians
over --rounds status changes, the ratios, the SQL statements and round trips the server spent per change
(the mutation included), and the garbage collections that ran in the delivery window. Figures are printed,
never asserted. --max caps the subscribers (each connection costs two file descriptors).
"""

# ruff: noqa: E402  (the project root has to be importable before tests.support can be imported)

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import itertools
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/subscriptions.py` puts bench/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection

from app.main import create_app
from app.settings import Settings
from bench.measure import bench_parser, counting, load_average, parse_bench_args, percentile
from persistence.database import Database
from persistence.tables import events
from tests.live_server import reap_runtime, serving
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant
from tests.ws_support import initialise, open_raw_socket, subscribe

SUBSCRIPTION = """subscription($after: String) { exportStatusChanged(after: $after) {
  sequence previousStatus status project { id name } actor { id name }
} }"""
SETUP = """
mutation($b: ID!, $i: CreateBudgetLineItemInput!, $p: ID!) {
  createBudgetLineItem(input: $i) { userErrors { code message } }
  syncProjectToERP(projectId: $p) { userErrors { code message } }
  lockBudget(input: {budgetId: $b}) { userErrors { code message } }
}
"""
# Status changes in turn: NOT_SENT/RETRIEVED -> PENDING_ACCEPTANCE -> RETRIEVED -> ...
CHANGES = (
    ("sendToERP", "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { userErrors { code message } } }"),
    ("retrieveBudget", "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code message } } }"),
)
ROLE = "approver"  # sees every project of the company
CONNECT_CONCURRENCY = 50
DELIVERY_TIMEOUT = 60.0


@dataclass
class Latencies:
    samples: list[float]  # seconds, one per subscriber that received the message
    expected: int

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def first(self) -> float:
        return min(self.samples, default=math.nan)

    @property
    def complete(self) -> bool:
        return len(self.samples) == self.expected


@dataclass
class Collections:
    """Garbage collections that ran during a delivery window: how many per generation, and their time."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    seconds: float = 0.0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._started


@dataclass
class Round:
    """One status change delivered to every subscriber, with what the server spent on it."""

    latencies: Latencies
    statements: int = 0
    round_trips: int = 0
    collections: Collections = field(default_factory=Collections)


@dataclass
class SizeReport:
    subscribers: int
    rounds: list[Round]
    baseline: list[Latencies]

    @staticmethod
    def _median(values: Sequence[float]) -> float:
        return statistics.median(values)

    @property
    def p50(self) -> float:
        return self._median([r.latencies.p50 for r in self.rounds])

    @property
    def p99(self) -> float:
        return self._median([r.latencies.p99 for r in self.rounds])

    @property
    def first(self) -> float:
        """When the first subscriber had it: the commit and wake-up, before the fan-out."""
        return self._median([r.latencies.first for r in self.rounds])

    @property
    def baseline_p50(self) -> float:
        return self._median([b.p50 for b in self.baseline])

    @property
    def baseline_p99(self) -> float:
        return self._median([b.p99 for b in self.baseline])

    @property
    def ratio_p50(self) -> float:
        return self.p50 / self.baseline_p50

    @property
    def ratio_p99(self) -> float:
        return self.p99 / self.baseline_p99

    @property
    def delivered(self) -> bool:
        return all(r.latencies.complete for r in self.rounds) and all(b.complete for b in self.baseline)

    def lines(self) -> list[str]:
        n = self.subscribers
        gc_counts = [sum(r.collections.counts[g] for r in self.rounds) for g in range(3)]
        gc_ms = statistics.median(r.collections.seconds for r in self.rounds) * 1000
        return [
            f"{n} subscribers: budgetbridge p50 {self.p50 * 1000:8.2f} ms  p99 {self.p99 * 1000:8.2f} ms"
            f"  first {self.first * 1000:8.2f} ms  (median of {len(self.rounds)} status changes; delivered to all: "
            f"{self.delivered})",
            f"{n} subscribers: raw broadcast p50 {self.baseline_p50 * 1000:8.2f} ms  "
            f"p99 {self.baseline_p99 * 1000:8.2f} ms  (median of {len(self.baseline)} broadcasts)",
            f"{n} subscribers: sql statements per change: {max(r.statements for r in self.rounds)}, "
            f"round trips per change: {max(r.round_trips for r in self.rounds)}",
            f"{n} subscribers: garbage collections in the delivery windows (gen0/gen1/gen2): "
            f"{gc_counts[0]}/{gc_counts[1]}/{gc_counts[2]}, median {gc_ms:.1f} ms per change",
            f"{n} subscribers: ratio p50: {self.ratio_p50:.2f}  ratio p99: {self.ratio_p99:.2f}",
        ]


@dataclass
class Report:
    sizes: list[SizeReport]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[200, 1000, 2000],
                        help="subscriber counts, increasing (default 200 1000 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="status changes per count (default 3)")
    parser.add_argument("--baseline-repeats", type=int, default=5,
                        help="raw broadcasts around each status change (default 5)")
    parser.add_argument("--max", type=int, default=2000, help="refuse more subscribers than this (default 2000)")
    args = parse_bench_args(parser, argv)
    counts = args.subscribers
    if any(b <= a for a, b in itertools.pairwise(counts)) or counts[0] < 1 or counts[-1] > args.max:
        parser.error(f"--subscribers must increase, each between 1 and --max ({args.max})")
    if args.rounds < 1 or args.baseline_repeats < 1:
        parser.error("--rounds and --baseline-repeats must be >= 1")
    return args


def raise_file_limit(connections: int) -> None:
    """Client and server ends of every connection live in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


async def gather_limited(indexes: range, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in indexes))


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def receive_times(
    sockets: Sequence[ClientConnection], accept: Callable[[dict[str, Any]], bool]
) -> list[asyncio.Task[float]]:
    """One task per socket, already waiting, that returns the perf_counter() at which `accept` first held."""

    async def first(ws: ClientConnection) -> float:
        while True:
            message = json.loads(await ws.recv())
            received = time.perf_counter()
            if accept(message):
                return received

    tasks = [asyncio.create_task(first(ws)) for ws in sockets]
    await asyncio.sleep(0)  # every task is now inside recv()
    return tasks


async def measure(tasks: list[asyncio.Task[float]], trigger: Callable[[], Awaitable[None]]) -> Latencies:
    started = time.perf_counter()
    await trigger()
    done, pending = await asyncio.wait(tasks, timeout=DELIVERY_TIMEOUT)
    for task in pending:
        task.cancel()
    samples = [task.result() - started for task in done if task.exception() is None]
    return Latencies(samples, len(tasks))


class Clients:
    """WebSocket clients of one server; more are added as the subscriber count grows."""

    def __init__(self, url: str, ready: Callable[[ClientConnection], Awaitable[None]]) -> None:
        self.url = url
        self.ready = ready
        self.sockets: list[ClientConnection] = []

    async def grow(self, count: int) -> None:
        async def connect(_: int) -> None:
            ws = await open_raw_socket(self.url)
            self.sockets.append(ws)
            await self.ready(ws)

        await gather_limited(range(len(self.sockets), count), connect)

    async def close(self) -> None:  # all at once: a thousand close handshakes one after the other take a while
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


# --------------------------------------------------------------------------------------------------------
# BudgetBridge

async def latest_sequence(db: Database, company_id: str) -> int:
    async with db.read() as conn:
        latest = await conn.execute(select(func.max(events.c.sequence)).where(events.c.company_id == company_id))
        return int(latest.scalar_one() or 0)


async def prepare(database_url: str) -> Tenant:
    db = await fresh_database(database_url)
    try:
        tenant = await make_tenant(make_services(db))
        await tenant.ok("admin", SETUP, b=tenant.budget_id, p=tenant.project_id, i={
            "budgetId": tenant.budget_id,
            "item": {"costCodeId": tenant.cost_codes["03-300"], "costTypeId": tenant.cost_types["L"],
                     "originalAmount": "1000.00"},
        })
        return tenant
    finally:
        await db.dispose()


# --------------------------------------------------------------------------------------------------------
# Baseline: a raw WebSocket broadcast

def baseline_app() -> tuple[Starlette, set[WebSocket]]:
    clients: set[WebSocket] = set()
    payload = json.dumps({"type": "next", "id": "1", "payload": {"status": "PENDING_ACCEPTANCE"}})

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    async def trigger(_: Request) -> JSONResponse:
        for ws in list(clients):
            await ws.send_text(payload)
        return JSONResponse({"sent": len(clients)})

    return Starlette(routes=[WebSocketRoute("/ws", endpoint), Route("/trigger", trigger, methods=["POST"])]), clients


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[int]:
    """BudgetBridge on a loopback port, its lifespan run (and its runtime stopped) around the block."""
    try:
        async with serving(app, name="budgetbridge") as port:
            yield port
    finally:
        await reap_runtime(getattr(app.state, "runtime", None), "the bench's server")


# --------------------------------------------------------------------------------------------------------

async def run(args: argparse.Namespace, out: Callable[[str], None]) -> Report:
    tenant = await prepare(args.database_url)
    # The re-read timer is far away: what is measured is the wake-up path, not polling.
    settings = Settings(database_url=args.database_url, jwt_secret=JWT_SECRET, broadcast_url="memory://",
                        subscription_reread_seconds=300, keep_alive_seconds=300, connection_init_timeout_seconds=60,
                        rate_limit_operations="1000000/minute")  # every subscriber is the same user
    token = tenant.token(ROLE)
    sizes: list[SizeReport] = []
    latest = 0

    async def ready(ws: ClientConnection) -> None:
        await initialise(ws, token, timeout=60)
        # `after` pins where each subscription starts, whenever its first read of the log happens: new
        # subscribers start after the changes measured so far.
        await subscribe(ws, "1", SUBSCRIPTION, {"after": str(latest)})

    async def nothing(_ws: ClientConnection) -> None:
        return None

    base_app, base_clients = baseline_app()
    # The app as it runs in production: no test instrumentation of its wake-ups, no export worker polling.
    app = create_app(settings, run_worker=False)
    async with (
        served(app) as port,
        serving(base_app, name="the baseline server", lifespan="off") as base_port,
        httpx.AsyncClient(timeout=60) as http,
    ):
        live = app.state.runtime.live
        db: Database = app.state.runtime.db
        engine = db.engine.sync_engine
        graphql_url = f"http://127.0.0.1:{port}/graphql"
        ours = Clients(f"ws://127.0.0.1:{port}/graphql", ready)
        raw = Clients(f"ws://127.0.0.1:{base_port}/ws", nothing)
        change = 0
        try:
            for count in args.subscribers:
                latest = await latest_sequence(db, tenant.company_id)
                await ours.grow(count)
                await raw.grow(count)
                listening = functools.partial(lambda n: live.listener_count == n, count)
                await until(listening, 120, "every subscription to listen")
                connected = functools.partial(lambda n: len(base_clients) == n, count)
                await until(connected, 60, "every baseline client")
                await asyncio.sleep(min(5.0, 0.5 + count / 500))  # their first (empty) reads of the log

                async def broadcast(count: int = count) -> Latencies:
                    tasks = await receive_times(raw.sockets, lambda m: m.get("type") == "next")

                    async def trigger() -> None:
                        response = await http.post(f"http://127.0.0.1:{base_port}/trigger")
                        assert response.json() == {"sent": count}, response.text

                    return await measure(tasks, trigger)

                rounds: list[Round] = []
                baseline: list[Latencies] = []
                for _ in range(args.rounds):
                    baseline += [await broadcast() for _ in range(max(1, args.baseline_repeats // 2))]
                    name, mutation = CHANGES[change % len(CHANGES)]
                    change += 1
                    tasks = await receive_times(ours.sockets, lambda m: m.get("type") == "next")
                    collections = Collections()

                    async def status_change(name: str = name, mutation: str = mutation) -> None:
                        response = await http.post(
                            graphql_url, json={"query": mutation, "variables": {"b": tenant.budget_id}},
                            headers={"Authorization": f"Bearer {tenant.token('admin')}"})
                        body = response.json()
                        assert "errors" not in body and body["data"][name]["userErrors"] == [], body

                    with counting(engine) as tally:
                        gc.callbacks.append(collections)
                        try:
                            latencies = await measure(tasks, status_change)
                        finally:
                            gc.callbacks.remove(collections)
                    rounds.append(Round(latencies, tally.statements, tally.round_trips, collections))
                    baseline += [await broadcast() for _ in range(args.baseline_repeats - args.baseline_repeats // 2)]
                size = SizeReport(count, rounds, baseline)
                sizes.append(size)
                for line in size.lines():
                    out(line)
                out(load_average())
        finally:
            await asyncio.gather(ours.close(), raw.close())
    return Report(sizes)


async def amain(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Report:
    args = parse_args(argv)
    raise_file_limit(args.subscribers[-1])
    out(f"subscriptions: {', '.join(map(str, args.subscribers))} subscribers, {args.rounds} status changes each "
        f"(sendToERP / retrieveBudget over HTTP), PostgreSQL, memory:// broadcast; latency from just before "
        f"the request to receipt; {load_average()}")
    return await run(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(amain(argv, out=lambda text: print(text, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
