"""Live subscriptions: how long one status change takes to reach N subscribers, against a raw WebSocket
broadcast to the same N clients measured in the same run.

    python bench/subscriptions.py [--subscribers 200] [--max 2000]

BudgetBridge: one in-process uvicorn server (a temporary SQLite database, memory:// broadcast), N
graphql-transport-ws connections (raw `websockets` clients, authenticated in connection_init) each with one
exportStatusChanged subscription, then ONE sendToERP over HTTP. A subscriber's latency is the time from
just before that request to the moment its `next` message is received; the path is commit -> wake-up ->
each subscription re-reads the event log -> GraphQL execution -> a text frame.

Baseline: a minimal Starlette WebSocket endpoint on another free port with the same N clients; one HTTP
request makes it send one small JSON text frame to every client; latency measured the same way. It is the
floor of the transport (uvicorn, the websockets client, this event loop) with no database and no GraphQL.

Clients and servers share this process's event loop, so both sides are measured under the same load.
Figures are printed, never asserted. --max caps --subscribers (each connection costs two file descriptors).
"""

# ruff: noqa: E402  (the project root has to be importable before tests.support can be imported)

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/subscriptions.py` puts bench/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import httpx
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection

from app.settings import Settings
from persistence.tables import events
from tests.live_server import free_port, live_server
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant
from tests.ws_support import initialise, open_raw_socket, subscribe

SUBSCRIPTION = "subscription($after: String) { exportStatusChanged(after: $after) { sequence previousStatus status } }"
SETUP = """
mutation($b: ID!, $i: CreateBudgetLineItemInput!, $p: ID!) {
  createBudgetLineItem(input: $i) { userErrors { code message } }
  syncProjectToERP(projectId: $p) { userErrors { code message } }
  lockBudget(input: {budgetId: $b}) { userErrors { code message } }
}
"""
SEND = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { userErrors { code message } } }"
ROLE = "approver"  # sees every project of the company
CONNECT_CONCURRENCY = 50
DELIVERY_TIMEOUT = 60.0


@dataclass
class Latencies:
    label: str
    samples: list[float]  # seconds, one per subscriber that received the message
    expected: int

    def percentile(self, p: float) -> float:
        """Nearest rank."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def line(self) -> str:
        return (f"{self.label:<36} p50 {self.p50 * 1000:9.2f} ms   p99 {self.p99 * 1000:9.2f} ms   "
                f"(delivered {len(self.samples)}/{self.expected})")


@dataclass
class Report:
    subscribers: int
    budgetbridge: Latencies
    baseline: Latencies

    @property
    def ratio_p50(self) -> float:
        return self.budgetbridge.p50 / self.baseline.p50

    @property
    def ratio_p99(self) -> float:
        return self.budgetbridge.p99 / self.baseline.p99


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=200, help="concurrent subscriptions (default 200)")
    parser.add_argument("--max", type=int, default=2000, help="refuse more subscribers than this (default 2000)")
    args = parser.parse_args(argv)
    if not 1 <= args.subscribers <= args.max:
        parser.error(f"--subscribers must be between 1 and --max ({args.max})")
    return args


def raise_file_limit(connections: int) -> None:
    """Client and server ends of every connection live in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


async def gather_limited(count: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(count)))


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


async def measure(label: str, tasks: list[asyncio.Task[float]], trigger: Callable[[], Awaitable[None]]) -> Latencies:
    started = time.perf_counter()
    await trigger()
    done, pending = await asyncio.wait(tasks, timeout=DELIVERY_TIMEOUT)
    for task in pending:
        task.cancel()
    samples = [task.result() - started for task in done if task.exception() is None]
    return Latencies(label, samples, len(tasks))


@contextlib.asynccontextmanager
async def open_sockets(url: str, count: int, ready: Callable[[ClientConnection, int], Awaitable[None]]
                       ) -> AsyncIterator[list[ClientConnection]]:
    sockets: list[ClientConnection] = []

    async def connect(i: int) -> None:
        ws = await open_raw_socket(url)
        sockets.append(ws)
        await ready(ws, i)

    try:
        await gather_limited(count, connect)
        yield sockets
    finally:  # all at once: a thousand close handshakes one after the other take a while
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --------------------------------------------------------------------------------------------------------
# BudgetBridge

async def prepare(database_url: str) -> tuple[Tenant, int]:
    db = await fresh_database(database_url)
    try:
        tenant = await make_tenant(make_services(db))
        await tenant.ok("admin", SETUP, b=tenant.budget_id, p=tenant.project_id, i={
            "budgetId": tenant.budget_id,
            "item": {"costCodeId": tenant.cost_codes["03-300"], "costTypeId": tenant.cost_types["L"],
                     "originalAmount": "1000.00"},
        })
        async with db.read() as conn:
            latest = await conn.execute(
                select(func.max(events.c.sequence)).where(events.c.company_id == tenant.company_id)
            )
            return tenant, int(latest.scalar_one() or 0)
    finally:
        await db.dispose()


async def budgetbridge_latencies(database_url: str, subscribers: int) -> Latencies:
    tenant, latest = await prepare(database_url)
    # The re-read timer is far away: what is measured is the wake-up path, not polling.
    settings = Settings(database_url=database_url, jwt_secret=JWT_SECRET, broadcast_url="memory://",
                        subscription_reread_seconds=300, keep_alive_seconds=300, connection_init_timeout_seconds=60)
    token = tenant.token(ROLE)

    async def ready(ws: ClientConnection, _: int) -> None:
        await initialise(ws, token, timeout=60)
        # `after` pins where each subscription starts, whenever its first read of the log happens.
        await subscribe(ws, "1", SUBSCRIPTION, {"after": str(latest)})

    async with live_server(settings) as server, httpx.AsyncClient(timeout=60) as http:
        live = server.app.state.runtime.live
        async with open_sockets(server.ws_url, subscribers, ready) as sockets:
            await until(lambda: live.listener_count == subscribers, 120, "every subscription to listen")
            await asyncio.sleep(min(5.0, 0.5 + subscribers / 500))  # their first (empty) reads of the log
            tasks = await receive_times(sockets, lambda m: m.get("type") == "next")

            async def send_to_erp() -> None:
                response = await http.post(server.http_url, json={"query": SEND, "variables": {"b": tenant.budget_id}},
                                           headers={"Authorization": f"Bearer {tenant.token('admin')}"})
                body = response.json()
                assert "errors" not in body and body["data"]["sendToERP"]["userErrors"] == [], body

            return await measure("budgetbridge (graphql-transport-ws)", tasks, send_to_erp)


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
async def serve(app: Starlette) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           ws="websockets-sansio"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 10, "the baseline server")
        if task.done():
            task.result()
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def baseline_latencies(subscribers: int) -> Latencies:
    app, clients = baseline_app()

    async def ready(_ws: ClientConnection, _i: int) -> None:
        return None

    async with (
        serve(app) as port,
        httpx.AsyncClient(timeout=60) as http,
        open_sockets(f"ws://127.0.0.1:{port}/ws", subscribers, ready) as sockets,
    ):
        await until(lambda: len(clients) == subscribers, 60, "every baseline client")
        tasks = await receive_times(sockets, lambda m: m.get("type") == "next")

        async def trigger() -> None:
            response = await http.post(f"http://127.0.0.1:{port}/trigger")
            assert response.json() == {"sent": subscribers}, response.text

        return await measure("raw websocket broadcast (baseline)", tasks, trigger)


# --------------------------------------------------------------------------------------------------------

async def amain(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Report:
    args = parse_args(argv)
    raise_file_limit(args.subscribers)
    out(f"subscriptions: {args.subscribers} subscribers, one status change (sendToERP over HTTP); "
        "SQLite, memory:// broadcast; latency from just before the request to receipt")
    with tempfile.TemporaryDirectory(prefix="budgetbridge-bench-") as directory:
        ours = await budgetbridge_latencies(f"sqlite+aiosqlite:///{directory}/bench.db", args.subscribers)
    out(ours.line())
    baseline = await baseline_latencies(args.subscribers)
    out(baseline.line())
    report = Report(args.subscribers, ours, baseline)
    out(f"ratio p50: {report.ratio_p50:.2f}  ratio p99: {report.ratio_p99:.2f}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(amain(argv, out=lambda text: print(text, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
