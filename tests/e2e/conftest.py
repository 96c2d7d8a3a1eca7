"""End-to-end fixtures: the real ASGI app (lifespan, auth, worker) over httpx, sharing the suite's database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from app.main import Runtime, create_app
from app.settings import Settings
from persistence.database import Database
from tests.live_server import reap_runtime
from tests.support import JWT_SECRET, Tenant
from tests.waiting import eventually

# The suite sends many requests per user and from one address; the rate limit tests set small limits.
GENEROUS_RATE_LIMITS: dict[str, Any] = {
    "rate_limit_failed_auth": "100000/minute",
    "rate_limit_operations": "100000/minute",
}

# Nothing a client sees may reveal internals.
LEAK_MARKERS = ("Traceback", "SELECT", "sqlalchemy")


@dataclass
class RunningApp:
    asgi: ASGIApp  # what clients call (the app with its lifespan state)
    runtime: Runtime  # what the lifespan built: the export worker, the live hub, services


@pytest.fixture
async def running_app(db: Database) -> AsyncIterator[RunningApp]:
    settings = Settings(
        database_url=db.url, jwt_secret=JWT_SECRET, export_poll_seconds=0.05, **GENEROUS_RATE_LIMITS
    )
    application = create_app(settings, run_worker=True)
    try:
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
            yield RunningApp(asgi=manager.app, runtime=application.state.runtime)
    finally:
        await reap_runtime(getattr(application.state, "runtime", None), "the app")


@pytest.fixture
async def app(running_app: RunningApp) -> ASGIApp:
    return running_app.asgi


@pytest.fixture
async def client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


def assert_no_leak(text: str, *foreign_ids: str) -> None:
    for marker in (*LEAK_MARKERS, *foreign_ids):
        assert marker not in text, f"response leaks {marker!r}: {text[:500]}"


async def post_graphql(
    client: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any]
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def gql(client: httpx.AsyncClient, token: str | None, query: str, **variables: Any) -> dict[str, Any]:
    """POST a GraphQL request; return the whole JSON body (data and errors), after checking it leaks nothing.
    Every error's `extensions.requestId` is checked against the response's X-Request-ID and then left out, so
    tests compare what else the error says."""
    response = await post_graphql(client, token, query, variables)
    assert_no_leak(response.text)
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        extensions = error.get("extensions") or {}
        assert extensions.pop("requestId") == response.headers["x-request-id"], error
    return body


async def wait_for(
    probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], *, timeout: float = 5.0
) -> Any:
    """Poll `probe` until `done(value)`; fail after `timeout` seconds with the last value seen.

    For an arbitrary probe only polling can tell (tests.waiting.eventually). Where the change comes with a
    committed event, `wait_for_commit` waits on the commit instead."""
    last: list[Any] = []

    async def check() -> bool:
        last[:] = [await probe()]
        return done(last[0])

    await eventually(check, timeout=timeout, what=lambda: f"the probe's answer; last value: {last[0]!r}")
    return last[0]


async def wait_for_commit(
    runtime: Runtime, company_id: str, probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool],
    *, timeout: float = 10.0,
) -> Any:
    """Re-run `probe` after every commit that appends events for the company, until `done(value)`.

    The app rings the hub's listeners after each such commit, the export worker's included. Listening starts
    before the first probe, so a commit between the probe and the wait still rings."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with runtime.live.listen(company_id) as waiter:
        value = await probe()
        while not done(value):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no commit made the probe's answer right within {timeout:g} s: {value!r}")
            await waiter.wait(remaining)  # returns when rung, or at the deadline
            value = await probe()
    return value


async def ok(client: httpx.AsyncClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    """Insist on no top-level errors and no userErrors in any payload; return `data`."""
    body = await gql(client, token, query, **variables)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    for value in data.values():
        if isinstance(value, dict) and "userErrors" in value:
            assert value["userErrors"] == [], value["userErrors"]
    return data


async def refused(client: httpx.AsyncClient, token: str, query: str, **variables: Any) -> list[dict[str, Any]]:
    """Run a mutation expected to be refused; return its userErrors (at least one)."""
    body = await gql(client, token, query, **variables)
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    assert payload["userErrors"], payload
    errors: list[dict[str, Any]] = payload["userErrors"]
    return errors


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e["code"] for e in errors]


USER_ERRORS = "userErrors { code message field }"
BUDGET_FIELDS = """
  id locked version exportStatus originalBudgetTotal modificationsTotal revisedBudgetTotal lineItemCount
  sendBlockers { code message } unlockBlockers { code message }
"""
REQUEST_FIELDS = """
  id sequence kind status rejectionReason erpReference failureMessage exportedAt postedAt
  sentBy { id } decidedBy { id } retrievedBy { id }
  totalOriginalBudget totalBudgetChanges
  lines { lineItem { id } costCode costType subJob originalBudget budgetChanges revisedEstimate isNewLine }
  budget { id exportStatus locked }
"""

CREATE_COST_CODE = f"""mutation($i: CreateCostCodeInput!) {{
  createCostCode(input: $i) {{ costCode {{ id code erpSynced }} {USER_ERRORS} }} }}"""
SYNC_PROJECT = f"""mutation($p: ID!) {{
  syncProjectToERP(projectId: $p) {{ project {{ id erpJobId erpSynced }} {USER_ERRORS} }} }}"""
CREATE_LINE = f"""mutation($i: CreateBudgetLineItemInput!) {{
  createBudgetLineItem(input: $i) {{
    lineItem {{ id subJob originalAmount modificationsAmount revisedAmount }} budget {{ id version }} {USER_ERRORS}
  }} }}"""
UPDATE_LINE = f"""mutation($i: UpdateBudgetLineItemInput!) {{
  updateBudgetLineItem(input: $i) {{
    lineItem {{ id originalAmount revisedAmount }} budget {{ id version }} {USER_ERRORS}
  }} }}"""
IMPORT_LINES = f"""mutation($i: ImportBudgetLineItemsInput!) {{
  importBudgetLineItems(input: $i) {{ budget {{ id lineItemCount }} {USER_ERRORS} }} }}"""
CREATE_MODIFICATION = f"""mutation($i: CreateBudgetModificationInput!) {{
  createBudgetModification(input: $i) {{
    modification {{ id number amount notes fromLineItem {{ id }} toLineItem {{ id }} createdBy {{ id }} }}
    budget {{ {BUDGET_FIELDS} }} {USER_ERRORS}
  }} }}"""
LOCK = f"""mutation($i: BudgetActionInput!) {{
  lockBudget(input: $i) {{ budget {{ {BUDGET_FIELDS} }} {USER_ERRORS} }} }}"""
UNLOCK = f"""mutation($i: BudgetActionInput!) {{
  unlockBudget(input: $i) {{ budget {{ {BUDGET_FIELDS} }} {USER_ERRORS} }} }}"""
SEND = f"""mutation($i: BudgetActionInput!) {{
  sendToERP(input: $i) {{ erpRequest {{ {REQUEST_FIELDS} }} budget {{ {BUDGET_FIELDS} }} {USER_ERRORS} }} }}"""
RETRIEVE = f"""mutation($i: BudgetActionInput!) {{
  retrieveBudget(input: $i) {{ erpRequest {{ {REQUEST_FIELDS} }} budget {{ {BUDGET_FIELDS} }} {USER_ERRORS} }} }}"""
DECIDE = f"""mutation($i: DecideExportInput!) {{
  decideExport(input: $i) {{ erpRequest {{ {REQUEST_FIELDS} }} budget {{ {BUDGET_FIELDS} }} {USER_ERRORS} }} }}"""
CONFIRM_POSTING = f"""mutation($i: ErpRequestActionInput!) {{
  confirmJobCostPosting(input: $i) {{
    erpRequest {{ {REQUEST_FIELDS} }} budget {{ {BUDGET_FIELDS} }} {USER_ERRORS}
  }} }}"""
BUDGET = f"""query($id: ID!) {{ budget(id: $id) {{
  {BUDGET_FIELDS}
  lineItems {{ totalCount edges {{ node {{
    id costCode {{ code }} costType {{ code }} subJob originalAmount modificationsAmount revisedAmount erpSynced
  }} }} }}
  erpRequests {{ id status }}
}} }}"""
ERP_REQUEST = f"query($id: ID!) {{ erpRequest(id: $id) {{ {REQUEST_FIELDS} }} }}"


def line_fields(tenant: Tenant, code: str, ctype: str, amount: Any, sub_job: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "costCodeId": tenant.cost_codes[code], "costTypeId": tenant.cost_types[ctype], "originalAmount": amount,
    }
    if sub_job is not None:
        item["subJob"] = sub_job
    return item


async def add_line(
    client: httpx.AsyncClient, tenant: Tenant, code: str, ctype: str, amount: str, sub_job: str | None = None
) -> str:
    data = await ok(client, tenant.token("admin"), CREATE_LINE,
                    i={"budgetId": tenant.budget_id, "item": line_fields(tenant, code, ctype, amount, sub_job)})
    line_id: str = data["createBudgetLineItem"]["lineItem"]["id"]
    return line_id


async def budget_of(client: httpx.AsyncClient, tenant: Tenant, role: str = "admin") -> dict[str, Any]:
    data = await ok(client, tenant.token(role), BUDGET, id=tenant.budget_id)
    budget: dict[str, Any] = data["budget"]
    return budget


async def ready_to_send(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    """Two lines, the project synced and the budget locked: what a send needs. Returns the line ids."""
    lines = {
        "concrete": await add_line(client, tenant, "03-300", "L", "1000.00"),
        "steel": await add_line(client, tenant, "05-120", "M", "2500.00"),
    }
    await ok(client, tenant.token("admin"), SYNC_PROJECT, p=tenant.project_id)
    await ok(client, tenant.token("admin"), LOCK, i={"budgetId": tenant.budget_id})
    return lines
