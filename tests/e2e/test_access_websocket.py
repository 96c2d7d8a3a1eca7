"""Taking access back from open WebSockets: the subscription of a user who is disabled, deleted or whose tokens
are revoked is closed with 4403 at its next re-read of the log (within `subscription_reread_seconds`), on both
protocols, while everyone else's goes on streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import delete, update

from app import admin, auth
from persistence.database import Database
from persistence.tables import users
from resolvers.context import Services, utc_now
from tests.e2e.test_subscriptions import SEND, SUBSCRIPTION, ready_tenant
from tests.live_server import LiveServer, ObservedSubscription, live_server, server_settings_for
from tests.support import JWT_SECRET, Tenant
from tests.ws_support import (
    CONTROL,
    LEGACY_WS,
    TRANSPORT_WS,
    init_payload,
    initialise,
    latest_sequence,
    raw_socket,
    receive,
    send,
    subscribe,
    until_closed,
)


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    async with live_server(server_settings_for(db.url, subscription_reread_seconds=0.5)) as running:
        yield running


async def _disable(db: Database, user_id: str) -> None:
    async with db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, user_id, True, utc_now())
        await uow.commit()


async def _revoke(db: Database, user_id: str) -> None:
    async with db.unit_of_work() as uow:
        await admin.revoke_tokens(uow.connection, user_id, utc_now())
        await uow.commit()


async def _delete(db: Database, user_id: str) -> None:
    async with db.unit_of_work() as uow:
        await uow.connection.execute(delete(users).where(users.c.id == user_id))
        await uow.commit()


TAKE_AWAY: dict[str, Callable[[Database, str], Awaitable[None]]] = {
    "disabled": _disable, "revoked": _revoke, "deleted": _delete,
}


async def _colleague(tenant: Tenant, email: str) -> tuple[str, str]:
    """A company admin of the tenant (sees every project) and a token for them."""
    async with tenant.services.db.unit_of_work() as uow:
        user_id = await admin.create_user(uow, tenant.company_id, email, email, company_admin=True)
        await uow.commit()
    return user_id, auth.issue_token(JWT_SECRET, user_id, tenant.company_id)


async def _started(server: LiveServer, before: int) -> ObservedSubscription:
    """The subscription started after `before` others, once it has caught up with the log."""
    wakeups = server.wakeups
    assert wakeups is not None
    await wakeups.until(lambda: len(wakeups.subscriptions) > before and wakeups.subscriptions[before].parked,
                        what=lambda: f"subscription #{before + 1} caught up")
    return wakeups.subscriptions[before]


def _data_type(protocol: str) -> str:
    return "next" if protocol == TRANSPORT_WS else "data"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("taken", sorted(TAKE_AWAY))
async def test_an_open_subscription_is_closed_with_4403_at_its_next_reread_and_others_go_on(
    services: Services, server: LiveServer, protocol: str, taken: str
) -> None:
    tenant = await ready_tenant(services)
    victim, victim_token = await _colleague(tenant, "leaver@example.com")
    after = await latest_sequence(services, tenant.company_id)
    assert server.wakeups is not None
    async with raw_socket(server.ws_url, subprotocol=protocol) as leaving, \
            raw_socket(server.ws_url, subprotocol=protocol) as staying:
        await initialise(leaving, victim_token)
        await subscribe(leaving, "1", SUBSCRIPTION, {"after": after}, subprotocol=protocol)
        leaving_subscription = await _started(server, len(server.wakeups.subscriptions))
        await initialise(staying, tenant.token("approver"))
        await subscribe(staying, "1", SUBSCRIPTION, {"after": after}, subprotocol=protocol)
        await _started(server, len(server.wakeups.subscriptions))

        position = len(leaving_subscription.journal)
        await TAKE_AWAY[taken](services.db, victim)
        code, messages = await until_closed(leaving, timeout=10)
        assert code == 4403
        assert [m for m in messages if m.get("type") not in CONTROL] == []  # nothing after access was taken back
        # Closed by the first re-read after the change: at most one re-read timer fired in between.
        assert leaving_subscription.journal[position:].count("timer") <= 1, leaving_subscription.journal[position:]
        await server.wakeups.until(lambda: not leaving_subscription.open, what="the closed subscription ended")

        # The colleague's subscription was re-read just as often and still streams.
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        message = await receive(staying)
        assert message["type"] == _data_type(protocol), message
        assert message["payload"]["data"]["exportStatusChanged"]["status"] == "PENDING_ACCEPTANCE"


async def test_a_disabled_user_cannot_open_a_websocket_and_is_told_why_on_the_legacy_protocol(
    services: Services, server: LiveServer
) -> None:
    tenant = await ready_tenant(services)
    victim, token = await _colleague(tenant, "disabled@example.com")
    await _disable(services.db, victim)
    async with raw_socket(server.ws_url) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(token)})
        code, messages = await until_closed(ws)
    assert (code, messages) == (4403, [])
    async with raw_socket(server.ws_url, subprotocol=LEGACY_WS) as ws:
        await send(ws, {"type": "connection_init", "payload": init_payload(token)})
        _, legacy = await until_closed(ws)
    assert legacy == [{"type": "connection_error", "payload": {"message": "this account is disabled"}}]


async def test_a_user_enabled_again_subscribes_with_the_same_token(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    user_id, token = await _colleague(tenant, "back@example.com")
    await _disable(services.db, user_id)
    async with services.db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, user_id, False, utc_now())
        await uow.commit()
    after = await latest_sequence(services, tenant.company_id)
    async with raw_socket(server.ws_url) as ws:
        await initialise(ws, token)
        await subscribe(ws, "1", SUBSCRIPTION, {"after": after})
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        message: dict[str, Any] = await receive(ws)
    assert message["type"] == "next" and message["payload"]["data"]["exportStatusChanged"]["status"] == (
        "PENDING_ACCEPTANCE"
    )


async def test_a_user_who_keeps_access_is_read_afresh_at_each_reread(services: Services, server: LiveServer) -> None:
    """A company admin demoted while subscribed stops seeing the projects they have no grant on."""
    tenant = await ready_tenant(services)
    demoted, token = await _colleague(tenant, "demoted@example.com")
    after = await latest_sequence(services, tenant.company_id)
    assert server.wakeups is not None
    async with raw_socket(server.ws_url) as ws, raw_socket(server.ws_url) as control:
        await initialise(ws, token)
        await subscribe(ws, "1", SUBSCRIPTION, {"after": after})
        await _started(server, len(server.wakeups.subscriptions))
        await initialise(control, tenant.token("approver"))
        await subscribe(control, "1", SUBSCRIPTION, {"after": after})
        await _started(server, len(server.wakeups.subscriptions))

        async with services.db.unit_of_work() as uow:
            await uow.connection.execute(update(users).where(users.c.id == demoted).values(is_company_admin=False))
            await uow.commit()
        await server.wakeups.reread_by_timer()  # the demotion has been read
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        assert (await receive(control))["type"] == "next"
        await server.wakeups.reread_by_timer()  # and the event has been handled by every subscription

        # Frames leave a socket in order: whatever the subscription sent came before the answer to this ping.
        await send(ws, {"type": "ping"})
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != "pong":
            seen.append(await receive(ws, skip_control=False))
    assert [m["type"] for m in seen if m["type"] != "ping"] == ["pong"]


async def test_a_revoked_api_token_s_open_subscription_is_closed_with_4403(
    services: Services, server: LiveServer
) -> None:
    """Issue 14: revoking an API token ends its live subscriptions too (the re-read authenticates it again)."""
    from app import api_tokens
    from domain.permissions import TokenScope

    tenant = await ready_tenant(services)
    async with services.db.unit_of_work() as uow:
        token, record = await api_tokens.create(
            uow.connection, tenant.company_id, "dashboard feed", TokenScope.READ.value, utc_now(), None
        )
        await uow.commit()
    after = await latest_sequence(services, tenant.company_id)
    assert server.wakeups is not None
    async with raw_socket(server.ws_url) as ws:
        await initialise(ws, token)
        await subscribe(ws, "1", SUBSCRIPTION, {"after": after})
        await _started(server, len(server.wakeups.subscriptions))
        async with services.db.unit_of_work() as uow:
            await api_tokens.revoke(uow.connection, record.id, utc_now())
            await uow.commit()
        code, messages = await until_closed(ws, timeout=10)
    assert code == 4403
    assert [m for m in messages if m.get("type") not in CONTROL] == []
