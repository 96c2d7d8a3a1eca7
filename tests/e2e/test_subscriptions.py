"""exportStatusChanged over a real WebSocket, driven by the gql client library."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from app import admin
from domain.permissions import PermissionLevel
from persistence.database import Database
from resolvers.context import Services
from tests.live_server import LiveServer, ObservedSubscription, live_server, server_settings_for
from tests.support import Tenant, make_tenant
from tests.waiting import Changes

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
CREATE_PROJECT = """mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id budget { id } } userErrors { code message } } }"""
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


CLOSE_SECONDS = 30.0  # gql's own close steps are bounded by 10 s each (close_timeout)


class Collector:
    """Runs one subscription in the background, on a gql session of its own, and collects what it receives.

    Nothing is swallowed: when the subscription fails (an error from the server, a dropped connection), the
    failure is kept and re-raised by `wait_for`, `sync` and on leaving the block, so the test fails with the
    real error instead of a timeout.

    On an in-process server (`server.wakeups`) entering the block waits until the server has started the
    subscription and caught up with the log: from then on every status change is delivered, with or without
    `after`. Enter collectors one at a time (as `async with (A, B)` does): the new subscription is recognised
    as the next one the server starts. A server in another process shows nothing of its subscriptions:
    subscribe there with `after` (then the start does not matter) or wait for a first event.
    """

    def __init__(self, server: LiveServer, token: str, **variables: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.client = Client(transport=transport(server, token))
        self.variables = variables
        self.wakeups = server.wakeups
        self.changes = server.wakeups.changes if server.wakeups is not None else Changes()
        self.session: Any = None
        self.subscription: ObservedSubscription | None = None  # the server's side, when in process
        self.failure: BaseException | None = None
        self.ended = False  # the server completed the subscription
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async with self.client as session:
                self.session = session
                self.changes.notify()
                async for result in session.subscribe(GraphQLRequest(SUBSCRIPTION, variable_values=self.variables)):
                    self.events.append(result["exportStatusChanged"])
                    self.changes.notify()
                self.ended = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # kept for the test, re-raised where it waits
            self.failure = exc
        finally:
            self.changes.notify()

    def check(self) -> None:
        """Raise what the subscription failed with, if it did."""
        if self.failure is not None:
            raise AssertionError(f"the subscription failed: {self.failure!r}") from self.failure

    async def __aenter__(self) -> Collector:
        self.task = asyncio.create_task(self._run(), name="collector")
        try:
            if self.wakeups is None:
                await self.until(lambda: self.session is not None, "the connection to be acknowledged")
            else:
                subscriptions = self.wakeups.subscriptions
                index = len(subscriptions)
                await self.until(lambda: len(subscriptions) > index and subscriptions[index].parked,
                                 "the server to start the subscription and catch up with the log")
                self.subscription = subscriptions[index]
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        stuck = await self._close()
        if exc is None:
            self.check()
            if stuck:
                raise AssertionError(stuck)

    async def _close(self) -> str | None:
        """Cancel the subscription and close the session, within a bound (never trust a client to stop)."""
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=CLOSE_SECONDS)
        return None if done else f"the gql session did not close within {CLOSE_SECONDS:g} s"

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
        def satisfied() -> bool:
            self.check()
            return condition()

        await self.changes.until(satisfied, timeout=timeout, what=what)

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        def enough() -> bool:
            if len(self.events) >= count:
                return True
            if self.ended:
                raise AssertionError(f"the server ended the subscription after {self.events}")
            return False

        await self.until(enough, f"{count} events", timeout)
        return self.events

    async def sync(self, timeout: float = 10) -> None:
        """A round trip on this subscription's connection: once the answer is here, every message the server
        sent on the connection before answering has been received and collected.

        gql reads a connection's messages in order, in one task, queueing each for its operation; the
        subscription's consumer was woken by its queue before the answer woke us (asyncio runs woken tasks in
        the order they were woken), and it collects without awaiting anything else."""
        assert self.session is not None
        await asyncio.wait_for(self.session.execute(GraphQLRequest("{ __typename }")), timeout)
        self.check()


async def confirm_posting(tenant: Tenant, request_id: str) -> None:
    """The integrator confirms the posting, which it first marks in the ERP; the server's worker may see that
    mark and record SYNCED itself meanwhile. On SQLite, this test's writes and the server's are not serialized
    (two Database objects, each with its own write lock), so the two can overlap: the confirmation is then
    refused VERSION_CONFLICT, and a client does what that error asks: it tries again (and is told success)."""
    result = await tenant.execute("integrator", CONFIRM, r=request_id)
    assert result.errors is None, result.errors
    refused = (result.data or {})["confirmJobCostPosting"]["userErrors"]
    if refused:
        assert [e["code"] for e in refused] == ["VERSION_CONFLICT"], refused
        await tenant.ok("integrator", CONFIRM, r=request_id)


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
        await confirm_posting(tenant, request_id)
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


async def project_visible_to(tenant: Tenant, role: str) -> tuple[str, str]:
    """A second project of the tenant's company, ready to send, that `role` may read: (project, budget)."""
    data = await tenant.ok("admin", CREATE_PROJECT, i={"name": "Marker", "number": f"M-{tenant.company_id[-6:]}"})
    project_id: str = data["createProject"]["project"]["id"]
    budget_id: str = data["createProject"]["project"]["budget"]["id"]
    async with tenant.services.db.unit_of_work() as uow:
        await admin.grant(uow, tenant.users[role], project_id, PermissionLevel.READ_ONLY, [])
        await uow.commit()
    await tenant.ok("admin", SETUP, b=budget_id, p=project_id, i={"budgetId": budget_id, "item": {
        "costCodeId": tenant.cost_codes["03-300"], "costTypeId": tenant.cost_types["L"], "originalAmount": "1.00",
    }})
    return project_id, budget_id


async def test_subscribers_see_only_what_they_may_read(services: Services, server: LiveServer) -> None:
    tenant = await ready_tenant(services)
    other = await ready_tenant(services)
    # Granted before the outsider subscribes (a subscription re-reads its grants once per re-read interval):
    # the outsider's marker below.
    outsiders_project, outsiders_budget = await project_visible_to(tenant, "outsider")
    assert server.wakeups is not None
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
        # Each subscription re-reads the log once on its timer, after all of the above: what it may not see
        # is not sent then either.
        await server.wakeups.reread_by_timer()
        # Then one more event each subscriber may see. Anything it should not have been sent would have come
        # before the marker: a subscription sends in sequence order, on one connection.
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await other.ok("admin", RETRIEVE, b=other.budget_id)
        await tenant.ok("admin", SEND, b=outsiders_budget)
        await reader.wait_for(3)
        await other_company.wait_for(2)
        await outsider.wait_for(1)
        # Nothing in the company is for this one (another company's project): no marker can reach it, so a
        # round trip on its connection shows that nothing was sent before it.
        await wrong_project.sync()
    assert [e["status"] for e in reader.events] == ["PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]  # +marker
    assert {e["project"]["id"] for e in reader.events} == {tenant.project_id}
    assert [(e["status"], e["project"]["id"]) for e in outsider.events] == [
        ("PENDING_ACCEPTANCE", outsiders_project)  # the marker only
    ]
    assert [e["project"]["id"] for e in other_company.events] == [other.project_id, other.project_id]
    assert [e["status"] for e in other_company.events] == ["PENDING_ACCEPTANCE", "RETRIEVED"]  # and the marker
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
        # A re-read on the subscription's timer must not send a replayed event again; then a marker: a
        # repeat would have come before it (a subscription sends in sequence order, on one connection).
        assert server.wakeups is not None
        await server.wakeups.reread_by_timer()
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        events = await resumed.wait_for(5)
    expected = ["RETRIEVED", "PENDING_ACCEPTANCE", "RETRIEVED", "PENDING_ACCEPTANCE"]
    assert [e["status"] for e in events] == [*expected, "RETRIEVED"]  # and the marker
    assert len(resumed.events) == len(expected) + 1
    assert all(int(e["sequence"]) > int(last) for e in events)
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences))
