"""The WebSocket protocols around exportStatusChanged: authentication and protocol errors (close codes),
the per-connection subscription limit, the legacy graphql-ws protocol, keep-alive, the Origin check and
the release of every live listener when clients go away.

Rude clients are raw `websockets` connections (tests.ws_support); well-behaved ones are gql sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gql import Client
from gql.transport.websockets import WebsocketsTransport
from websockets.exceptions import InvalidStatus

from app import auth
from persistence.database import Database
from resolvers.context import Services
from tests.e2e.test_subscriptions import RETRIEVE, SEND, SUBSCRIPTION, Collector, ready_tenant
from tests.live_server import LiveServer, live_server, server_settings_for
from tests.support import JWT_SECRET
from tests.ws_support import (
    LEGACY_WS,
    init_payload,
    initialise,
    latest_sequence,
    raw_socket,
    receive,
    send,
    subscribe,
    until_closed,
)

ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    async with live_server(server_settings_for(db.url)) as running:
        yield running


class LegacyCollector(Collector):
    """Collector over the legacy `graphql-ws` (subscriptions-transport-ws) protocol."""

    def __init__(self, server: LiveServer, token: str, **variables: Any) -> None:
        super().__init__(server, token, **variables)
        self.client = Client(transport=WebsocketsTransport(
            url=server.ws_url, init_payload=init_payload(token), subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL],
        ))


async def listeners(server: LiveServer, count: int) -> None:
    """Wait until the hub holds exactly `count` listeners (re-checked whenever a subscription starts or ends)."""
    live = server.app.state.runtime.live
    assert server.wakeups is not None
    await server.wakeups.until(lambda: live.listener_count == count,
                               what=lambda: f"{count} listeners (the hub holds {live.listener_count})")


# --- authentication and protocol errors ---------------------------------------------------------------


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    auth.issue_token("another-secret-" + "y" * 40, "some-user", "some-company"),
    auth.issue_token(JWT_SECRET, "no-such-user", "no-such-company"),
    None,
], ids=["garbage", "foreign-signature", "unknown-user", "missing"])
async def test_a_bad_token_in_connection_init_closes_the_socket_with_4403_before_any_data(
    server: LiveServer, token: str | None
) -> None:
    async with raw_socket(server.ws_url) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(token)})
        code, messages = await until_closed(ws)
    assert code == 4403
    assert messages == []


async def test_a_subscribe_sent_with_a_bad_token_gets_no_data_either(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    async with raw_socket(server.ws_url) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload("not-a-jwt")})
        await subscribe(ws, "1", SUBSCRIPTION, {"after": "0"})  # everything the company ever did, if it leaked
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        code, messages = await until_closed(ws)
    assert code == 4403
    assert messages == []


async def test_no_connection_init_within_the_timeout_closes_with_4408(server: LiveServer) -> None:
    started = time.monotonic()
    async with raw_socket(server.ws_url) as ws:
        code, messages = await until_closed(ws, timeout=10)
    assert code == 4408
    assert messages == []
    assert time.monotonic() - started >= 0.9  # connection_init_timeout_seconds=1.0, not at once


async def test_subscribe_before_connection_ack_closes_with_4401(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    async with raw_socket(server.ws_url) as ws:
        await subscribe(ws, "1", SUBSCRIPTION, {"projectId": tenant.project_id, "after": "0"})
        code, messages = await until_closed(ws)
    assert code == 4401
    assert messages == []


async def test_legacy_protocol_refuses_a_bad_token_with_connection_error_and_no_data(server: LiveServer) -> None:
    async with raw_socket(server.ws_url, subprotocol=LEGACY_WS) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload("not-a-jwt")})
        await subscribe(ws, "1", SUBSCRIPTION, {"after": "0"}, subprotocol=LEGACY_WS)
        code, messages = await until_closed(ws)
    assert code is not None and code != 1000
    assert [m["type"] for m in messages] == ["connection_error"]


# --- the subscription limit ---------------------------------------------------------------------------


async def test_a_subscription_over_the_per_connection_limit_gets_an_error_and_the_others_keep_working(
    services: Services, server: LiveServer
) -> None:
    tenant = await ready_tenant(services)
    variables = {"projectId": tenant.project_id, "after": await latest_sequence(services, tenant.company_id)}
    received: dict[str, list[dict[str, Any]]] = {}

    async def collect(ws: Any, wanted: dict[str, int]) -> None:
        async def enough() -> None:
            while any(len(received.get(i, [])) < n for i, n in wanted.items()):
                message = await receive(ws, timeout=10)
                assert message["type"] == "next", message
                received.setdefault(message["id"], []).append(message["payload"]["data"]["exportStatusChanged"])

        await asyncio.wait_for(enough(), 10)

    async with raw_socket(server.ws_url) as ws:
        await initialise(ws, tenant.token("approver"))
        for operation_id in ("1", "2", "3"):  # max_subscriptions_per_connection=3 in server_settings_for
            await subscribe(ws, operation_id, SUBSCRIPTION, variables)
        await subscribe(ws, "4", SUBSCRIPTION, variables)
        refusal = await receive(ws)
        assert refusal["type"] == "error" and refusal["id"] == "4", refusal
        assert [e["message"] for e in refusal["payload"]] == ["Subscription limit reached"]

        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await collect(ws, {"1": 1, "2": 1, "3": 1})
        assert {i: [e["status"] for e in events] for i, events in received.items()} == {
            "1": ["PENDING_ACCEPTANCE"], "2": ["PENDING_ACCEPTANCE"], "3": ["PENDING_ACCEPTANCE"],
        }

        # Completing one frees its slot on the same connection.
        await send(ws, {"id": "1", "type": "complete"})
        after = received["2"][0]["sequence"]
        await subscribe(ws, "5", SUBSCRIPTION, {**variables, "after": after})
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        await collect(ws, {"2": 2, "3": 2, "5": 1})
        # Every open subscription re-reads the log once on its timer (nothing more may be sent then, and the
        # completed one is not even there), then a marker: anything extra, for the completed operation or a
        # repeat, would have been read before it (one connection, messages in order).
        assert server.wakeups is not None
        await server.wakeups.reread_by_timer()
        assert [s.open for s in server.wakeups.subscriptions].count(True) == 3
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await collect(ws, {"2": 3, "3": 3, "5": 2})
    assert [e["status"] for e in received["1"]] == ["PENDING_ACCEPTANCE"]
    assert [e["status"] for e in received["2"]] == ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    assert [e["status"] for e in received["3"]] == ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    assert [e["status"] for e in received["5"]] == ["RETRIEVED", "PENDING_ACCEPTANCE"]  # each with the marker


# --- the legacy protocol, keep-alive, origins ---------------------------------------------------------


async def test_the_legacy_graphql_ws_protocol_delivers_events_too(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    after = await latest_sequence(services, tenant.company_id)
    async with LegacyCollector(server, tenant.token("approver"), projectId=tenant.project_id, after=after) as watcher:
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        events = await watcher.wait_for(2)
    assert [(e["previousStatus"], e["status"]) for e in events] == [
        ("NOT_SENT", "PENDING_ACCEPTANCE"), ("PENDING_ACCEPTANCE", "RETRIEVED"),
    ]
    assert int(events[0]["sequence"]) < int(events[1]["sequence"])


async def test_the_server_pings_an_idle_graphql_transport_ws_connection(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    async with raw_socket(server.ws_url) as ws:
        await initialise(ws, tenant.token("approver"))
        first = await receive(ws, timeout=10, skip_control=False)  # keep_alive_seconds=1.0
        assert first == {"type": "ping"}
        await send(ws, {"type": "pong"})
        second = await receive(ws, timeout=10, skip_control=False)
        assert second == {"type": "ping"}


async def test_the_server_keeps_an_idle_legacy_connection_alive(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    async with raw_socket(server.ws_url, subprotocol=LEGACY_WS) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(tenant.token("approver"))})
        assert (await receive(ws, skip_control=False))["type"] == "connection_ack"
        kinds = [(await receive(ws, timeout=10, skip_control=False))["type"] for _ in range(2)]
    assert kinds == ["ka", "ka"]


async def test_a_websocket_from_a_disallowed_origin_is_refused_and_an_allowed_one_works(
    db: Database, services: Services
) -> None:
    tenant = await ready_tenant(services)
    settings = server_settings_for(db.url, allowed_origins=(ALLOWED_ORIGIN,))
    async with live_server(settings) as running:
        with pytest.raises(InvalidStatus) as refused:
            async with raw_socket(running.ws_url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403

        async with raw_socket(running.ws_url, origin=ALLOWED_ORIGIN) as ws:
            await initialise(ws, tenant.token("approver"))
            after = await latest_sequence(services, tenant.company_id)
            await subscribe(ws, "1", SUBSCRIPTION, {"projectId": tenant.project_id, "after": after})
            await tenant.ok("admin", SEND, b=tenant.budget_id)
            message = await receive(ws, timeout=10)
        assert message["type"] == "next", message
        assert message["payload"]["data"]["exportStatusChanged"]["status"] == "PENDING_ACCEPTANCE"


# --- listeners are released ---------------------------------------------------------------------------


async def test_every_listener_is_released_when_the_subscribers_go_away(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    live = server.app.state.runtime.live
    assert live.listener_count == 0
    async with (
        Collector(server, tenant.token("approver")),
        Collector(server, tenant.token("reader"), projectId=tenant.project_id),
        LegacyCollector(server, tenant.token("admin")),
        raw_socket(server.ws_url) as polite,
        raw_socket(server.ws_url) as abrupt,
    ):
        await initialise(polite, tenant.token("approver"))
        await initialise(abrupt, tenant.token("approver"))
        for operation_id in ("1", "2"):
            await subscribe(polite, operation_id, SUBSCRIPTION)
            await subscribe(abrupt, operation_id, SUBSCRIPTION)
        await listeners(server, 7)

        await send(polite, {"id": "1", "type": "complete"})  # one operation ends, its connection stays
        await listeners(server, 6)

        abrupt.transport.abort()  # no close frame: the server only sees the TCP connection drop
        await listeners(server, 4)

        await tenant.ok("admin", SEND, b=tenant.budget_id)
        assert (await receive(polite, timeout=10))["id"] == "2"  # the survivors still deliver
    await listeners(server, 0)


async def test_listeners_are_released_when_a_subscriber_disconnects_in_the_middle_of_a_burst(
    services: Services, server: LiveServer
) -> None:
    """Clients that vanish while events are being sent to them (the generator suspended at a yield, not
    waiting for a wake-up) must release their listener too."""
    tenant = await ready_tenant(services)
    for _ in range(3):  # a replay backlog: every subscriber below is busy yielding when it goes away
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    # When a client vanishes while graphql-core resolves an event's nested fields, the operation is cancelled
    # after the field resolvers' coroutines were created and before they were awaited: Python warns "coroutine
    # ... was never awaited" when they are freed, which fails whichever test is running then (warnings are
    # errors). That is the cancellation this test causes on purpose, so it is ignored here, and the garbage is
    # collected before the test ends so that it cannot surface in a later test.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"coroutine '.*_async_resolver' was never awaited",
                                category=RuntimeWarning)
        for _ in range(3):
            async with contextlib.AsyncExitStack() as sockets:  # closed even when the test fails half-way
                opened = [await sockets.enter_async_context(raw_socket(server.ws_url)) for _ in range(5)]
                for ws in opened:
                    await initialise(ws, tenant.token("approver"))
                    await subscribe(ws, "1", SUBSCRIPTION, {"after": "0"})
                for ws in opened:
                    ws.transport.abort()
        await listeners(server, 0)
        gc.collect()

