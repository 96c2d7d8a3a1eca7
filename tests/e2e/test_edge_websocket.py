"""The request edge on WebSockets: a cap on message size, rate limits on subscribe, failed authentications."""

from __future__ import annotations

import pytest

from app import auth
from persistence.database import Database
from resolvers.context import Services
from tests.live_server import live_server, server_settings_for
from tests.support import make_tenant
from tests.ws_support import LEGACY_WS, TRANSPORT_WS, init_payload, raw_socket, receive, send, until_closed

SUBSCRIBE = "subscription { exportStatusChanged { sequence } }"


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscribes_over_the_users_operation_limit_get_a_rate_limited_error(
    db: Database, services: Services, subprotocol: str
) -> None:
    tenant = await make_tenant(services)
    settings = server_settings_for(db.url, rate_limit_operations="2/minute", max_subscriptions_per_connection=10)
    start = "subscribe" if subprotocol == TRANSPORT_WS else "start"
    async with live_server(settings) as server, raw_socket(server.ws_url, subprotocol=subprotocol) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(tenant.token("reader"))})
        assert (await receive(ws))["type"] == "connection_ack"
        for operation_id in ("1", "2"):
            await send(ws, {"id": operation_id, "type": start, "payload": {"query": SUBSCRIBE}})
        await send(ws, {"id": "3", "type": start, "payload": {"query": SUBSCRIBE}})
        message = await receive(ws)
        assert message["type"] == "error" and message["id"] == "3", message
        payload = message["payload"]
        error = payload[0] if isinstance(payload, list) else payload
        assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] >= 1


async def test_a_message_over_the_limit_closes_the_socket_with_1009(db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    settings = server_settings_for(db.url, max_websocket_message_bytes=2048)
    async with live_server(settings) as server, raw_socket(server.ws_url) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(tenant.token("reader"))})
        assert (await receive(ws))["type"] == "connection_ack"
        padding = " " * 4096
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE + padding}})
        code, messages = await until_closed(ws)
        assert code == 1009 and messages == []


async def test_failed_authentications_on_websockets_count_per_address(db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    forged = auth.issue_token("another-secret-" + "y" * 40, tenant.users["reader"], tenant.company_id)
    settings = server_settings_for(db.url, rate_limit_failed_auth="2/minute")
    async with live_server(settings) as server:
        for token in (forged, forged, tenant.token("reader")):  # the third, valid, waits with its address
            async with raw_socket(server.ws_url) as ws:
                await send(ws, {"type": "connection_init", "payload": init_payload(token)})
                code, _ = await until_closed(ws)
                assert code == 4403
