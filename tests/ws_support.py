"""Raw GraphQL-over-WebSocket frames with the `websockets` client library.

gql speaks the protocols politely; these helpers can also be rude (no connection_init, subscribe before
connection_ack, too many subscriptions) and read close codes. The benchmark uses them too: a raw connection
costs far less than a gql session when hundreds are open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from persistence.tables import events
from resolvers.context import Services

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
CONTROL = frozenset({"ping", "pong", "ka"})  # keep-alive frames, not answers to anything


async def open_raw_socket(url: str, *, subprotocol: str = TRANSPORT_WS, origin: str | None = None) -> ClientConnection:
    """The caller closes it (`await ws.close()`)."""
    return await connect(
        url, subprotocols=[Subprotocol(subprotocol)], origin=Origin(origin) if origin else None, proxy=None,
        open_timeout=10, close_timeout=2, ping_interval=None, compression=None,
    )


@contextlib.asynccontextmanager
async def raw_socket(
    url: str, *, subprotocol: str = TRANSPORT_WS, origin: str | None = None
) -> AsyncIterator[ClientConnection]:
    ws = await open_raw_socket(url, subprotocol=subprotocol, origin=origin)
    try:
        yield ws
    finally:
        await ws.close()


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection, timeout: float = 10.0, *, skip_control: bool = True) -> dict[str, Any]:
    """The next protocol message; pings are answered and skipped unless skip_control is False."""

    async def next_frame() -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if not skip_control or message.get("type") not in CONTROL:
                return message
            if message["type"] == "ping":
                await send(ws, {"type": "pong"})

    return await asyncio.wait_for(next_frame(), timeout)


async def until_closed(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes the socket: its close code and every message it sent before."""
    messages: list[dict[str, Any]] = []

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                messages.append(json.loads(await ws.recv()))

    await asyncio.wait_for(drain(), timeout)
    return ws.close_code, messages


def init_payload(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token is not None else {}


async def initialise(ws: ClientConnection, token: str | None, timeout: float = 10.0) -> None:
    await send(ws, {"type": "connection_init", "payload": init_payload(token)})
    ack = await receive(ws, timeout)
    assert ack["type"] == "connection_ack", ack


async def subscribe(
    ws: ClientConnection, operation_id: str, query: str, variables: dict[str, Any] | None = None,
    *, subprotocol: str = TRANSPORT_WS,
) -> None:
    kind = "subscribe" if subprotocol == TRANSPORT_WS else "start"
    await send(ws, {"id": operation_id, "type": kind, "payload": {"query": query, "variables": variables or {}}})


async def latest_sequence(services: Services, company_id: str) -> str:
    """The company's newest event sequence: subscribing with `after` set to it gets exactly what comes next,
    however late the server starts the subscription."""
    async with services.db.read() as conn:
        latest = await conn.execute(select(func.max(events.c.sequence)).where(events.c.company_id == company_id))
        return str(latest.scalar_one() or 0)
