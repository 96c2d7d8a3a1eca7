"""Caught-up graphql-transport-ws subscriptions are delivered by the live fan-out (resolvers.live_fanout): each
distinct answer executed and encoded once, the same text framed with each operation's id. A subscriber gets
byte for byte what strawberry's own runner would have sent it, only the events it may see, answers with
errors of its own, and a client that goes away holds up no one else.

Mutations go to the server over HTTP, so its subscriptions are woken at once (re-reads and keep-alives are
far away: every frame is an answer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from persistence.database import Database
from resolvers.context import Services
from resolvers.live_fanout import LiveFanout
from tests.erp.workflow import SEND, locked_with_one_line
from tests.live_server import LiveServer, live_server, server_settings_for
from tests.support import Tenant, make_tenant
from tests.ws_support import initialise, latest_sequence, open_raw_socket, send, subscribe

SUBSCRIPTION = """subscription($after: String, $first: Int) { exportStatusChanged(after: $after) {
  sequence previousStatus status reason actor { id name } project { id name viewerPermission }
  budget { id viewerCan { lock unlock send } lineItems(first: $first) { edges { node { id } } } }
  erpRequest { id status }
} }"""
RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code message } } }"


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    settings = server_settings_for(db.url, subscription_reread_seconds=300.0, keep_alive_seconds=300.0,
                                   max_subscriptions_per_connection=10)
    async with live_server(settings) as running:
        yield running


def fanout_of(server: LiveServer) -> LiveFanout:
    fanout: LiveFanout = server.app.state.runtime.services.live_fanout
    return fanout


async def ready(services: Services) -> tuple[Tenant, str]:
    """A tenant whose budget can be sent, and its newest event sequence."""
    tenant = await make_tenant(services)
    await locked_with_one_line(tenant)
    return tenant, await latest_sequence(services, tenant.company_id)


async def change(server: LiveServer, tenant: Tenant, mutation: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(server.http_url, json={"query": mutation, "variables": {"b": tenant.budget_id}},
                                   headers={"Authorization": f"Bearer {tenant.token('admin')}"})
    body = response.json()
    assert "errors" not in body and all(v["userErrors"] == [] for v in body["data"].values()), body


async def connected(server: LiveServer, token: str) -> ClientConnection:
    ws = await open_raw_socket(server.ws_url)
    await initialise(ws, token)
    return ws


async def subscribed(
    server: LiveServer, ws: ClientConnection, operation_id: str, *, parked: bool = True, **variables: Any
) -> None:
    """Subscribe, and wait until the subscription is caught up: parked with the fan-out, or (parked=False)
    waiting on its own."""
    assert server.wakeups is not None
    wakeups = server.wakeups
    if parked:
        fanout = fanout_of(server)
        before = fanout.parked
        await subscribe(ws, operation_id, SUBSCRIPTION, variables)
        await wakeups.until(lambda: fanout.parked == before + 1, what="the subscription to park")
    else:
        waiting = sum(s.parked and s.open for s in wakeups.subscriptions)
        await subscribe(ws, operation_id, SUBSCRIPTION, variables)
        await wakeups.until(lambda: sum(s.parked and s.open for s in wakeups.subscriptions) > waiting,
                            what="the subscription to wait on its own")


async def frames(ws: ClientConnection, count: int) -> list[str]:
    """The next `count` text frames, as sent."""
    received = [await asyncio.wait_for(ws.recv(), 10) for _ in range(count)]
    assert all(isinstance(frame, str) for frame in received)
    return [str(frame) for frame in received]


async def own_runner(server: LiveServer, ws: ClientConnection, operation_id: str, **variables: Any) -> None:
    """A subscription that strawberry's runner delivers, as before the fan-out: the reference."""
    services = server.app.state.runtime.services
    fanout, services.live_fanout = services.live_fanout, None
    try:
        await subscribed(server, ws, operation_id, parked=False, **variables)
    finally:
        services.live_fanout = fanout


def without_request_ids(frame: str) -> Any:
    message = json.loads(frame)
    for error in message.get("payload", {}).get("errors", []):
        error.get("extensions", {}).pop("requestId", None)
    return message


async def test_a_parked_subscriber_receives_byte_for_byte_the_frames_strawberry_would_send(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    parked, reference = [await connected(server, tenant.token("approver")) for _ in range(2)]
    await subscribed(server, parked, "op-1", after=after, first=5)
    await own_runner(server, reference, "op-1", after=after, first=5)
    sent = fanout.sent
    await change(server, tenant, SEND)
    await change(server, tenant, RETRIEVE)
    got, expected = await frames(parked, 2), await frames(reference, 2)
    assert got == expected
    assert [json.loads(f)["payload"]["data"]["exportStatusChanged"]["status"] for f in got] == [
        "PENDING_ACCEPTANCE", "RETRIEVED"]
    assert json.loads(got[0])["id"] == "op-1"
    assert fanout.sent == sent + 2  # both by the fan-out
    for ws in (parked, reference):
        await ws.close()


async def test_each_subscriber_gets_its_own_operation_id_in_the_same_answer_encoded_once(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    approvers = [await connected(server, tenant.token("approver")) for _ in range(4)]
    for index, ws in enumerate(approvers):
        await subscribed(server, ws, f"approver-{index}", after=after, first=5)
    second = approvers[0]  # a second subscription on one connection, other variables: another answer
    await subscribed(server, second, "fewer-lines", after=after, first=0)
    executed, encoded, sent = fanout.executed, fanout.encoded, fanout.sent
    await change(server, tenant, SEND)
    received = {ws: [json.loads(f) for f in await frames(ws, 2 if ws is second else 1)] for ws in approvers}
    by_id = {m["id"]: m["payload"] for messages in received.values() for m in messages}
    assert sorted(by_id) == ["approver-0", "approver-1", "approver-2", "approver-3", "fewer-lines"]
    assert len({json.dumps(by_id[f"approver-{i}"]) for i in range(4)}) == 1  # the same answer for all four
    assert by_id["fewer-lines"]["data"]["exportStatusChanged"]["budget"]["lineItems"]["edges"] == []
    assert len(by_id["approver-0"]["data"]["exportStatusChanged"]["budget"]["lineItems"]["edges"]) == 1
    # One event: two distinct answers (two documents' variables), each executed and encoded once, five frames.
    assert (fanout.executed - executed, fanout.encoded - encoded, fanout.sent - sent) == (2, 2, 5)
    for ws in approvers:
        await ws.close()


async def test_subscribers_of_different_visibility_get_their_own_answers_and_only_what_they_may_see(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    roles = ("admin", "reader", "approver", "outsider")
    sockets = {role: await connected(server, tenant.token(role)) for role in roles}
    for ws in sockets.values():
        await subscribed(server, ws, "1", after=after, first=5)
    references = {role: await connected(server, tenant.token(role)) for role in ("admin", "reader")}
    for ws in references.values():
        await own_runner(server, ws, "1", after=after, first=5)
    executed = fanout.executed
    await change(server, tenant, SEND)
    got = {role: (await frames(sockets[role], 1))[0] for role in ("admin", "reader", "approver")}
    for role, ws in references.items():
        assert got[role] == (await frames(ws, 1))[0], role
    permissions = {role: json.loads(frame)["payload"]["data"]["exportStatusChanged"]["project"]["viewerPermission"]
                   for role, frame in got.items()}
    assert permissions == {"admin": "ADMIN", "reader": "READ_ONLY", "approver": "READ_ONLY"}
    assert fanout.executed - executed == 3  # admin, reader and approver differ in rights: three answers
    # The outsider, who cannot see the project, was sent nothing: its next frame answers the next event it
    # may see, which never comes; a ping it asks for is answered at once, so the connection is alive.
    await sockets["outsider"].send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(sockets["outsider"].recv(), 10)) == {"type": "pong"}
    for ws in [*sockets.values(), *references.values()]:
        await ws.close()


async def test_an_answer_with_errors_is_executed_by_the_subscriber_itself_as_before(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    failing, reference, healthy = [await connected(server, tenant.token("approver")) for _ in range(3)]
    await subscribed(server, failing, "1", after=after, first=-1)  # lineItems refuses it when executed
    await own_runner(server, reference, "1", after=after, first=-1)
    await subscribed(server, healthy, "1", after=after, first=5)
    await change(server, tenant, SEND)
    got, expected = (await frames(failing, 1))[0], (await frames(reference, 1))[0]
    assert json.loads(got)["payload"]["errors"], got
    assert without_request_ids(got) == without_request_ids(expected)
    assert "errors" not in json.loads((await frames(healthy, 1))[0])["payload"]
    assert server.wakeups is not None
    await server.wakeups.until(lambda: fanout.parked == 2, what="the failing subscription to park again")
    for ws in (failing, reference, healthy):
        await ws.close()


async def test_a_client_that_goes_away_holds_up_no_one_else_and_drops_out(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    sockets = [await connected(server, tenant.token("approver")) for _ in range(3)]
    for ws in sockets:
        await subscribed(server, ws, "1", after=after, first=5)
    gone, *staying = sockets
    gone.transport.abort()  # no close handshake: the server finds out when it next reads or writes
    await change(server, tenant, SEND)
    for ws in staying:
        assert json.loads((await frames(ws, 1))[0])["payload"]["data"]["exportStatusChanged"]["status"] == (
            "PENDING_ACCEPTANCE")
    assert server.wakeups is not None
    await server.wakeups.until(lambda: fanout.parked == 2, what="the gone client's subscription to end")
    await change(server, tenant, RETRIEVE)
    for ws in staying:
        assert json.loads((await frames(ws, 1))[0])["payload"]["data"]["exportStatusChanged"]["status"] == "RETRIEVED"
        await ws.close()


async def test_a_completed_subscription_is_sent_nothing_more_and_its_id_is_free_again(
    services: Services, server: LiveServer
) -> None:
    tenant, after = await ready(services)
    fanout = fanout_of(server)
    assert server.wakeups is not None
    ws = await connected(server, tenant.token("approver"))
    await subscribed(server, ws, "a", after=after, first=5)
    await subscribed(server, ws, "b", after=after, first=5)
    await send(ws, {"id": "a", "type": "complete"})
    await server.wakeups.until(lambda: fanout.parked == 1, what="the completed subscription to end")
    await change(server, tenant, SEND)
    assert [json.loads(f)["id"] for f in await frames(ws, 1)] == ["b"]  # "a" joined first: it would come first
    await subscribed(server, ws, "a", after=await latest_sequence(services, tenant.company_id), first=5)
    await change(server, tenant, RETRIEVE)
    assert sorted(json.loads(f)["id"] for f in await frames(ws, 2)) == ["a", "b"]
    await ws.close()
