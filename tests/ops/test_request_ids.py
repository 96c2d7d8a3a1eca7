"""Request ids: kept when a proxy or client sends a valid one, made up otherwise, echoed in the response, in
every GraphQL error's `extensions.requestId` and in the log; each WebSocket operation gets its own, derived
from the connection's."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from persistence.database import Database
from tests.live_server import LiveServer, live_server, server_settings_for
from tests.ops.conftest import CapturedLog
from tests.support import Tenant
from tests.waiting import LogRecords, watching
from tests.ws_support import LEGACY_WS, TRANSPORT_WS, initialise, receive, send, subscribe

GENERATED = re.compile(r"[0-9a-f]{32}")
ME = "query Me { viewer { id } }"


async def test_a_valid_incoming_id_is_kept_and_echoed(client: httpx.AsyncClient) -> None:
    for incoming in ("a", "proxy-7f3a:2.b_C", "x" * 128):
        response = await client.get("/healthz", headers={"x-request-id": incoming})
        assert response.status_code == 200 and response.headers["x-request-id"] == incoming


async def test_an_invalid_or_missing_id_is_replaced_by_a_new_one(client: httpx.AsyncClient) -> None:
    seen = set()
    for incoming in ("x" * 129, "bad id", "semi;colon", "quote\"", None):
        headers = {"x-request-id": incoming} if incoming is not None else {}
        echoed = (await client.get("/healthz", headers=headers)).headers["x-request-id"]
        assert GENERATED.fullmatch(echoed) and echoed != incoming
        seen.add(echoed)
    assert len(seen) == 5  # a new one each time


async def test_every_graphql_error_names_the_request(client: httpx.AsyncClient, tenant: Tenant) -> None:
    token = {"authorization": f"Bearer {tenant.token('reader')}"}
    answers = {
        "edge refusal": await client.post("/graphql", json={"query": ME}),
        "validation": await client.post("/graphql", json={"query": "{ viewr { id } }"}, headers=token),
        "bad request": await client.post("/graphql", content=b"{not json",
                                         headers={**token, "content-type": "application/json"}),
        "body too large": await client.post("/graphql", content=b"x" * 1_100_000,
                                            headers={**token, "content-type": "application/json"}),
        "kept id": await client.post("/graphql", json={"query": "{ viewr { id } }"},
                                     headers={**token, "x-request-id": "client-chosen-1"}),
    }
    for what, response in answers.items():
        errors = response.json()["errors"]
        assert errors, what
        for error in errors:
            assert error["extensions"]["requestId"] == response.headers["x-request-id"], (what, response.text)
    assert answers["kept id"].json()["errors"][0]["extensions"]["requestId"] == "client-chosen-1"
    assert answers["body too large"].status_code == 413 and answers["bad request"].status_code == 400


async def test_the_access_line_has_the_echoed_id(
    client: httpx.AsyncClient, tenant: Tenant, captured_log: CapturedLog
) -> None:
    response = await client.post("/graphql", json={"query": ME},
                                 headers={"authorization": f"Bearer {tenant.token('reader')}"})
    (line,) = captured_log.access(response.headers["x-request-id"])
    assert line["operation"] == "Me"


# --- WebSocket ------------------------------------------------------------------------------------------

SUBSCRIPTION = "subscription Changes($p: ID) { exportStatusChanged(projectId: $p) { sequence } }"


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    async with live_server(server_settings_for(db.url)) as running:
        yield running


def finished(records: LogRecords, request_id: str) -> list[logging.LogRecord]:
    return [r for r in records.records if getattr(r, "request_id", None) == request_id
            and getattr(r, "outcome", None) is not None]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_each_websocket_operation_gets_an_id_derived_from_the_connections(
    server: LiveServer, tenant: Tenant, captured_log: CapturedLog, protocol: str
) -> None:
    stop = "complete" if protocol == TRANSPORT_WS else "stop"
    with watching("budgetbridge.access") as access:
        async with connect(
            server.ws_url, subprotocols=[Subprotocol(protocol)], additional_headers={"X-Request-ID": "ws-conn-1"},
            proxy=None, open_timeout=10, close_timeout=2, ping_interval=None,
        ) as ws:
            assert ws.response is not None and ws.response.headers["x-request-id"] == "ws-conn-1"
            await initialise(ws, tenant.token("reader"))

            # A refused operation: its error names it.
            await subscribe(ws, "bad", "subscription { nope }", subprotocol=protocol)
            refused = await receive(ws)
            assert (refused["type"], refused["id"]) == ("error", "bad")
            errors: list[Any] = refused["payload"] if isinstance(refused["payload"], list) else [refused["payload"]]
            assert [e["extensions"]["requestId"] for e in errors] == ["ws-conn-1.1"]

            # A running subscription, then stopped by the client.
            await subscribe(ws, "live", SUBSCRIPTION, {"p": tenant.project_id}, subprotocol=protocol)
            assert server.wakeups is not None
            await server.wakeups.until(
                lambda: any(s.parked and s.company_id == tenant.company_id for s in server.wakeups.subscriptions),
                what="the subscription to run",
            )
            await send(ws, {"id": "live", "type": stop})
            await access.until(lambda _: bool(finished(access, "ws-conn-1.2")), timeout=10,
                               what="the subscription's access line")

    lines = [line for line in captured_log.lines() if str(line.get("request_id", "")).startswith("ws-conn-1.")]
    started = [line for line in lines if line["message"] == "websocket operation started"]
    assert [(line["request_id"], line["connection_request_id"]) for line in started] == [
        ("ws-conn-1.1", "ws-conn-1"), ("ws-conn-1.2", "ws-conn-1")
    ]
    assert all(line["user_id"] == tenant.users["reader"] for line in lines)
    ended = {line["request_id"]: line for line in lines if "outcome" in line}
    assert ended["ws-conn-1.1"]["outcome"] == "GRAPHQL_VALIDATION_FAILED"
    assert (ended["ws-conn-1.2"]["operation"], ended["ws-conn-1.2"]["operation_type"]) == ("Changes", "subscription")
    assert (ended["ws-conn-1.2"]["outcome"], ended["ws-conn-1.2"]["transport"]) == ("ok", "websocket")
