"""exportStatusChanged over a real WebSocket, driven by the gql client library."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from persistence.database import Database
from resolvers.context import Services
from tests.live_server import LiveServer, live_server, server_settings_for
from tests.support import Tenant, make_tenant

SUBSCRIPTION = """
subscription($projectId: ID, $after: String) {
  exportStatusChanged(projectId: $projectId, after: $after) {
    sequence type previousStatus status reason actor { id } project { id } erpRequest { id status }
  }
}
"""

SETUP = """
mutation($b: ID!, $i: CreateBudgetLineItemInput!, $p: ID!) {
  createBudgetLineItem(input: $i) { userErrors { code message } }
  syncProjectToERP(projectId: $p) { userErrors { code message } }
  lockBudget(input: {budgetId: $b}) { userErrors { code message } }
}
"""
SEND = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id } userErrors { code message } } }"
RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code message } } }"
DECIDE = """mutation($r: ID!, $d: ErpDecision!, $reason: String) {
  decideExport(input: {erpRequestId: $r, decision: $d, reason: $reason}) { userErrors { code message } } }"""
CONFIRM = "mutation($r: ID!) { confirmJobCostPosting(input: {erpRequestId: $r}) { userErrors { code message } } }"


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    async with live_server(server_settings_for(db.url)) as running:
        yield running


async def ready_tenant(services: Services) -> Tenant:
    tenant = await make_tenant(services)
    await tenant.ok(
        "admin",
        SETUP,
        b=tenant.budget_id,
        p=tenant.project_id,
        i={
            "budgetId": tenant.budget_id,
            "item": {
                "costCodeId": tenant.cost_codes["03-300"],
                "costTypeId": tenant.cost_types["L"],
                "originalAmount": "1000.00",
            },
        },
    )
    return tenant


def transport(server: LiveServer, token: str | None, **kwargs: Any) -> WebsocketsTransport:
    payload = {"authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(
        url=server.ws_url, init_payload=payload, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL], **kwargs
    )


class Collector:
    """Runs one subscription in the background and collects what it receives."""

    def __init__(self, server: LiveServer, token: str, **variables: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.client = Client(transport=transport(server, token))
        self.variables = variables
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.client as session:
            self.ready.set()
            async for result in session.subscribe(GraphQLRequest(SUBSCRIPTION, variable_values=self.variables)):
                self.events.append(result["exportStatusChanged"])

    async def __aenter__(self) -> Collector:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 10)
        await asyncio.sleep(0.3)  # the subscribe message is on its way; the server subscribes before replaying
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.events) < count:
                if self.task is not None and self.task.done():
                    self.task.result()
                await asyncio.sleep(0.02)

        await asyncio.wait_for(enough(), timeout)
        return self.events


async def test_every_status_change_is_delivered_live_with_actor_reason_and_sequence(
    services: Services, server: LiveServer
) -> None:
    tenant = await ready_tenant(services)
    async with Collector(server, tenant.token("approver")) as watcher:
        sent = await tenant.ok("admin", SEND, b=tenant.budget_id)
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        sent = await tenant.ok("admin", SEND, b=tenant.budget_id)
        request_id = sent["sendToERP"]["erpRequest"]["id"]
        await tenant.ok("approver", DECIDE, r=request_id, d="REJECT", reason="Wrong cost code on line 1")
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        sent = await tenant.ok(
            "admin", "query($b: ID!) { budget(id: $b) { lastErpRequest { id } } }", b=tenant.budget_id
        )
        request_id = sent["budget"]["lastErpRequest"]["id"]
        await tenant.ok("approver", DECIDE, r=request_id, d="ACCEPT")
        events = await watcher.wait_for(7)  # ... EXPORTING and the worker's AWAITING_POSTING
        await tenant.ok("integrator", CONFIRM, r=request_id)
        events = await watcher.wait_for(8)
    statuses = [(e["previousStatus"], e["status"]) for e in events]
    assert statuses == [
        ("NOT_SENT", "PENDING_ACCEPTANCE"),
        ("PENDING_ACCEPTANCE", "RETRIEVED"),
        ("RETRIEVED", "PENDING_ACCEPTANCE"),
        ("PENDING_ACCEPTANCE", "REJECTED"),
        ("REJECTED", "PENDING_ACCEPTANCE"),
        ("PENDING_ACCEPTANCE", "EXPORTING"),
        ("EXPORTING", "AWAITING_POSTING"),
        ("AWAITING_POSTING", "SYNCED"),
    ]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert events[3]["reason"] == "Wrong cost code on line 1"
    assert events[3]["actor"]["id"] == tenant.users["approver"]
    assert events[0]["actor"]["id"] == tenant.users["admin"]
    assert events[6]["actor"] is None  # the export worker, not a person
    assert events[7]["erpRequest"] == {"id": request_id, "status": "SYNCED"}


async def test_subscribers_see_only_what_they_may_read(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    other = await ready_tenant(services)
    async with (
        Collector(server, tenant.token("reader"), projectId=tenant.project_id) as reader,
        Collector(server, tenant.token("outsider")) as outsider,
        Collector(server, other.token("approver")) as other_company,
        Collector(server, tenant.token("approver"), projectId=other.project_id) as wrong_project,
    ):
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await other.ok("admin", SEND, b=other.budget_id)
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        await reader.wait_for(2)
        await other_company.wait_for(1)
        await asyncio.sleep(1.5)  # a full re-read interval: nothing more may arrive
    assert [e["status"] for e in reader.events] == ["PENDING_ACCEPTANCE", "RETRIEVED"]
    assert {e["project"]["id"] for e in reader.events} == {tenant.project_id}
    assert outsider.events == []
    assert [e["project"]["id"] for e in other_company.events] == [other.project_id]
    assert wrong_project.events == []


async def test_a_reconnecting_client_gets_exactly_the_missed_events_then_live_ones(
    services: Services, server: LiveServer
) -> None:
    tenant = await ready_tenant(services)
    async with Collector(server, tenant.token("approver")) as first:
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        seen = await first.wait_for(1)
    last = seen[-1]["sequence"]
    # Disconnected: three status changes happen.
    await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    async with Collector(server, tenant.token("approver"), after=last) as resumed:
        replayed = await resumed.wait_for(3)
        assert [e["status"] for e in replayed] == ["RETRIEVED", "PENDING_ACCEPTANCE", "RETRIEVED"]
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        events = await resumed.wait_for(4)
        await asyncio.sleep(1.2)
    assert [e["status"] for e in events] == ["RETRIEVED", "PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    assert len(resumed.events) == 4
    assert all(int(e["sequence"]) > int(last) for e in events)
