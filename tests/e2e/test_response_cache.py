"""The query response cache (app.response_cache) never answers differently from a fresh execution.

Two apps share the suite's database, as two server processes would: `cached` with the cache on (it runs the
export worker), `fresh` with it off. Every probe is answered by both after every kind of change; the cached
app's answer must be byte-for-byte the fresh one, and every change must have changed some probe's answer
(otherwise the step would prove nothing). Most changes are made through the fresh app or the admin's
functions on the database, so the cached app learns of them only through the shared validator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from app import admin, api_tokens
from app.errors import GRAPHQL_RESPONSE_JSON
from app.main import Runtime, create_app
from app.response_cache import ENTRY_OVERHEAD, ResponseCache
from app.settings import Settings
from domain.permissions import PermissionLevel
from persistence.database import Database
from resolvers.context import Services
from tests.e2e.conftest import (
    CONFIRM_POSTING,
    CREATE_COST_CODE,
    CREATE_LINE,
    CREATE_MODIFICATION,
    DECIDE,
    GENEROUS_RATE_LIMITS,
    IMPORT_LINES,
    LOCK,
    RETRIEVE,
    SEND,
    SYNC_PROJECT,
    UNLOCK,
    UPDATE_LINE,
    line_fields,
    ok,
    wait_for_commit,
)
from tests.live_server import reap_runtime
from tests.support import JWT_SECRET, Tenant, make_tenant

PROJECTS = """{ projects { totalCount edges { node { id name number erpJobId erpSynced viewerPermission
  budget { id exportStatus locked version viewerCan { editLines createModification lock unlock send retrieve } }
} } } }"""
VIEWER = """{ viewer { id name email isAccountingApprover erpIntegrationsPermission company { id name currency }
  notificationSettings { requestArrived requestRejected exportFailed postingReminder requestSynced dailyDigest } } }"""
BUDGET = """query($id: ID!) { budget(id: $id) {
  id locked lockedAt version exportStatus originalBudgetTotal modificationsTotal revisedBudgetTotal lineItemCount
  lockedBy { id name } lastErpRequest { id status }
  sendBlockers { code message } unlockBlockers { code message }
  lineItems(first: 50) { totalCount edges { cursor node {
    id costCode { code erpSynced } costType { code } subJob description originalAmount modificationsAmount
    revisedAmount quantity unitOfMeasure unitCost erpSynced } } }
  modifications { id number amount notes erpSynced fromLineItem { id } toLineItem { id } createdBy { id } }
  pendingExport { costCode costType subJob originalBudget budgetChanges revisedEstimate isNewLine }
  reconciliation { balanced totals { revisedAmount exported posted pending unsent difference } }
  history(first: 100) { totalCount edges { node { sequence type previousStatus status reason actor { id } } } }
} }"""
QUEUE = """{ erpRequests(first: 4) { totalCount edges { node {
  id sequence kind status sentAt decidedAt rejectionReason retrievedAt exportedAt postedAt erpReference
  failureMessage entryCount entriesTotal totalOriginalBudget totalBudgetChanges
  entries { kind costCode amount posted postedAt } sentBy { id } decidedBy { id }
  viewerCan { accept reject retrieve retryExport confirmPosting }
} } } }"""
COMPANY = """{ costCodes { id code description erpSynced } costTypes { id code name erpSynced }
  erpConnection { connector displayName capabilities { exportsBudget requiresPosting supportsSubJobs } } }"""
NOTIFICATIONS = """mutation($i: UpdateNotificationSettingsInput!) {
  updateNotificationSettings(input: $i) { notificationSettings { requestArrived } userErrors { code } } }"""
DELETE_LINE = """mutation($id: ID!) { deleteBudgetLineItem(id: $id) { budget { id } userErrors { code } } }"""
CREATE_PROJECT = """mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id } userErrors { code } } }"""
CREATE_COST_TYPE = """mutation($i: CreateCostTypeInput!) {
  createCostType(input: $i) { costType { id } userErrors { code } } }"""

ROLES = ("admin", "reader", "standard", "outsider", "approver", "integrator")


@dataclass
class Apps:
    cached: httpx.AsyncClient
    fresh: httpx.AsyncClient
    runtime: Runtime  # the cached app's


def _settings(db: Database, cache_bytes: int, **more: Any) -> Settings:
    return Settings(database_url=db.url, jwt_secret=JWT_SECRET, export_poll_seconds=0.05,
                    response_cache_bytes=cache_bytes, **GENEROUS_RATE_LIMITS, **more)


@pytest.fixture
async def apps(db: Database) -> AsyncIterator[Apps]:
    cached_app = create_app(_settings(db, 8_000_000), run_worker=True)
    fresh_app = create_app(_settings(db, 0), run_worker=False)
    try:
        async with (
            LifespanManager(cached_app, startup_timeout=30, shutdown_timeout=30) as cached,
            LifespanManager(fresh_app, startup_timeout=30, shutdown_timeout=30) as fresh,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=cached.app), base_url="http://test") as one,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=fresh.app), base_url="http://test") as two,
        ):
            yield Apps(one, two, cached_app.state.runtime)
    finally:
        await reap_runtime(getattr(cached_app.state, "runtime", None), "the cached app")
        await reap_runtime(getattr(fresh_app.state, "runtime", None), "the fresh app")


async def get(client: httpx.AsyncClient, token: str, query: str, accept: str | None = None,
              etag: str | None = None, **variables: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if accept is not None:
        headers["Accept"] = accept
    if etag is not None:
        headers["If-None-Match"] = etag
    params = {"query": query}
    if variables:
        params["variables"] = orjson.dumps(variables).decode()
    return await client.get("/graphql", params=params, headers=headers)


def comparable(response: httpx.Response) -> tuple[int, Any]:
    """Status and body; an error's requestId names the request, so it is left out."""
    body = response.json()
    for error in body.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
    return response.status_code, body


class Probes:
    """Every probe, answered by both apps; remembers the last answers to tell that a change was visible."""

    def __init__(self, apps: Apps, tenant: Tenant) -> None:
        self.apps, self.tenant = apps, tenant
        self.last: dict[tuple[str, str], Any] = {}

    def probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        found: list[tuple[str, str, dict[str, Any]]] = []
        for role in ROLES:
            found += [(role, PROJECTS, {}), (role, VIEWER, {}), (role, BUDGET, {"id": self.tenant.budget_id})]
        found += [(role, QUEUE, {}) for role in ("admin", "approver", "integrator", "reader")]
        found += [(role, COMPANY, {}) for role in ("admin", "reader")]
        return found

    async def check(self, step: str, visible: bool = True, complete: bool = True) -> None:
        changed = []
        for role, query, variables in self.probes():
            token = self.tenant.token(role)
            for _ in range(2):  # the second is served from the cache when the first stored it
                cached = await get(self.apps.cached, token, query, **variables)
                fresh = await get(self.apps.fresh, token, query, **variables)
                assert comparable(cached) == comparable(fresh), (step, role, query[:60])
                if cached.status_code == 200 and "errors" not in cached.json():
                    assert cached.content == fresh.content, (step, role, query[:60])
                    assert "etag" in cached.headers and "etag" not in fresh.headers
            if complete:  # every probe is a complete answer, so each one is a cacheable one
                assert cached.status_code == 200 and "errors" not in cached.json(), (step, role, cached.text[:300])
            key = (role, query)
            if key in self.last and self.last[key] != cached.content:
                changed.append(key)
            self.last[key] = cached.content
        if visible:
            assert changed, f"{step}: no probe saw the change, so this step proves nothing"


async def test_cached_answers_equal_fresh_ones_after_every_kind_of_change(
    apps: Apps, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    probes = Probes(apps, tenant)
    await probes.check("start", visible=False)
    cache = apps.runtime.response_cache
    assert cache is not None and cache.hits > 0 and len(cache) > 0
    fresh, admin_token = apps.fresh, tenant.token("admin")
    budget_id = tenant.budget_id

    created = await ok(fresh, admin_token, CREATE_COST_CODE, i={"code": "16-100", "description": "Electrical"})
    tenant.cost_codes["16-100"] = created["createCostCode"]["costCode"]["id"]
    await probes.check("createCostCode")
    await ok(fresh, admin_token, CREATE_COST_TYPE, i={"code": "E", "name": "Equipment"})
    await probes.check("createCostType")
    await ok(fresh, admin_token, CREATE_PROJECT, i={"name": "Annex", "number": f"A-{tenant.company_id[-6:]}"})
    await probes.check("createProject")

    made = await ok(fresh, admin_token, CREATE_LINE,
                    i={"budgetId": budget_id, "item": line_fields(tenant, "03-300", "L", "1000.00")})
    concrete = made["createBudgetLineItem"]["lineItem"]["id"]
    await probes.check("createBudgetLineItem")
    made = await ok(fresh, admin_token, CREATE_LINE,
                    i={"budgetId": budget_id, "item": line_fields(tenant, "05-120", "M", "2500.00")})
    steel = made["createBudgetLineItem"]["lineItem"]["id"]
    await ok(fresh, admin_token, UPDATE_LINE, i={"id": concrete, "originalAmount": "1200.00"})
    await probes.check("updateBudgetLineItem")
    await ok(fresh, admin_token, IMPORT_LINES, i={"budgetId": budget_id, "items": [
        line_fields(tenant, "09-900", "S", "300.00"), line_fields(tenant, "16-100", "L", "40.00")]})
    await probes.check("importBudgetLineItems")
    imported = await get(fresh, admin_token, BUDGET, id=budget_id)
    last_line = imported.json()["data"]["budget"]["lineItems"]["edges"][-1]["node"]["id"]
    await ok(fresh, admin_token, DELETE_LINE, id=last_line)
    await probes.check("deleteBudgetLineItem")

    await ok(fresh, admin_token, SYNC_PROJECT, p=tenant.project_id)
    await probes.check("syncProjectToERP")
    await ok(fresh, admin_token, LOCK, i={"budgetId": budget_id})
    await probes.check("lockBudget")
    await ok(fresh, admin_token, CREATE_MODIFICATION,
             i={"budgetId": budget_id, "fromLineItemId": steel, "toLineItemId": concrete, "amount": "500.00"})
    await probes.check("createBudgetModification")

    await ok(fresh, admin_token, SEND, i={"budgetId": budget_id})
    await probes.check("sendToERP")
    await ok(fresh, admin_token, RETRIEVE, i={"budgetId": budget_id})
    await probes.check("retrieveBudget")
    second = (await ok(fresh, admin_token, SEND, i={"budgetId": budget_id}))["sendToERP"]["erpRequest"]
    await ok(fresh, tenant.token("approver"), DECIDE,
             i={"erpRequestId": second["id"], "decision": "REJECT", "reason": "wrong phase"})
    await probes.check("decideExport REJECT")
    await ok(fresh, admin_token, UNLOCK, i={"budgetId": budget_id})
    await probes.check("unlockBudget")
    await ok(fresh, admin_token, LOCK, i={"budgetId": budget_id})
    third = (await ok(fresh, admin_token, SEND, i={"budgetId": budget_id}))["sendToERP"]["erpRequest"]

    # Accepted: the cached app's worker exports in the background (events EXPORT_WRITTEN ...).
    await ok(fresh, tenant.token("approver"), DECIDE, i={"erpRequestId": third["id"], "decision": "ACCEPT"})

    async def status() -> str:
        answer = await get(fresh, tenant.token("approver"), QUEUE)
        assert "data" in answer.json(), answer.text
        return str(answer.json()["data"]["erpRequests"]["edges"][0]["node"]["status"])

    await wait_for_commit(apps.runtime, tenant.company_id, status, lambda s: s == "AWAITING_POSTING")
    await probes.check("decideExport ACCEPT and the export")
    await ok(fresh, tenant.token("integrator"), CONFIRM_POSTING, i={"erpRequestId": third["id"]})
    await probes.check("confirmJobCostPosting")

    # Permissions: a grant and a revocation (the admin CLI's functions) change what the users see.
    async with db.unit_of_work() as uow:
        await admin.grant(uow, tenant.users["outsider"], tenant.project_id, PermissionLevel.READ_ONLY, [])
        await uow.commit()
    await probes.check("grant")
    async with db.unit_of_work() as uow:
        await uow.access.revoke(tenant.users["reader"], tenant.project_id)
        await uow.commit()
    await probes.check("revoke")
    async with db.unit_of_work() as uow:
        await admin.grant(uow, tenant.users["standard"], tenant.project_id, PermissionLevel.ADMIN, [])
        await uow.commit()
    await probes.check("grant changes a level")

    await ok(fresh, tenant.token("reader"), NOTIFICATIONS, i={"requestArrived": False, "dailyDigest": False})
    await probes.check("updateNotificationSettings")

    async with db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, None)
        await uow.commit()
    await probes.check("company ERP connection")

    # Taking access back: the disabled user is refused by both apps (the cache comes after authentication).
    async with db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, tenant.users["standard"], True, datetime.now(UTC))
        await uow.commit()
    await probes.check("user disabled", complete=False)
    refused = await get(apps.cached, tenant.token("standard"), PROJECTS, accept=GRAPHQL_RESPONSE_JSON)
    assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, tenant.users["standard"], False, datetime.now(UTC))
        await uow.commit()
    await probes.check("user enabled")

    # An API token adds its service principal (a User); revoking it changes who may read, not an answer.
    async with db.unit_of_work() as uow:
        _, record = await api_tokens.create(uow.connection, tenant.company_id, "ci", "read", datetime.now(UTC), None)
        await uow.commit()
    await probes.check("api token created", visible=False)
    async with db.unit_of_work() as uow:
        await api_tokens.revoke(uow.connection, record.id, datetime.now(UTC))
        await uow.commit()
    await probes.check("api token revoked", visible=False)


async def test_a_change_through_another_app_is_never_served_stale(apps: Apps, services: Services) -> None:
    tenant = await make_tenant(services)
    token = tenant.token("admin")
    first = await get(apps.cached, token, BUDGET, id=tenant.budget_id)
    again = await get(apps.cached, token, BUDGET, id=tenant.budget_id)
    cache = apps.runtime.response_cache
    assert cache is not None and again.content == first.content
    hits = cache.hits
    await ok(apps.fresh, token, CREATE_LINE,
             i={"budgetId": tenant.budget_id, "item": line_fields(tenant, "03-300", "L", "10.00")})
    after = await get(apps.cached, token, BUDGET, id=tenant.budget_id)
    assert after.content == (await get(apps.fresh, token, BUDGET, id=tenant.budget_id)).content
    assert after.json()["data"]["budget"]["lineItemCount"] == 1 and cache.hits == hits


async def test_no_entry_crosses_users_or_companies(apps: Apps, services: Services) -> None:
    one, other = await make_tenant(services), await make_tenant(services)
    cache = apps.runtime.response_cache
    assert cache is not None
    await get(apps.cached, one.token("admin"), PROJECTS)
    hits = cache.hits
    for tenant, role in ((one, "reader"), (one, "outsider"), (other, "admin"), (one, "approver")):
        answer = await get(apps.cached, tenant.token(role), PROJECTS)
        assert answer.content == (await get(apps.fresh, tenant.token(role), PROJECTS)).content
        assert cache.hits == hits, f"{role} of a company was served another viewer's answer"
    outsider = (await get(apps.cached, one.token("outsider"), PROJECTS)).json()
    assert outsider["data"]["projects"]["totalCount"] == 0
    assert cache.hits == hits + 1  # the outsider's own entry


async def test_etag_answers_304_until_the_company_changes(apps: Apps, services: Services) -> None:
    tenant = await make_tenant(services)
    token = tenant.token("admin")
    first = await get(apps.cached, token, BUDGET, id=tenant.budget_id)
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == "private, no-cache"
    assert {"Authorization", "Accept"} <= {v.strip() for v in first.headers["vary"].split(",")}  # CORS adds Origin
    not_modified = await get(apps.cached, token, BUDGET, etag=etag, id=tenant.budget_id)
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    # The validator lives in the database: the other app agrees.
    assert (await get(apps.fresh, token, BUDGET, etag=etag, id=tenant.budget_id)).status_code == 200
    other_viewer = await get(apps.cached, tenant.token("reader"), BUDGET, etag=etag, id=tenant.budget_id)
    assert other_viewer.status_code == 200 and other_viewer.headers["etag"] != etag

    await ok(apps.fresh, token, LOCK, i={"budgetId": tenant.budget_id})
    changed = await get(apps.cached, token, BUDGET, etag=etag, id=tenant.budget_id)
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["data"]["budget"]["locked"] is True
    assert (await get(apps.cached, token, BUDGET, etag=changed.headers["etag"], id=tenant.budget_id)).status_code == 304


async def test_each_media_type_is_kept_and_served_as_it_was_sent(apps: Apps, services: Services) -> None:
    tenant = await make_tenant(services)
    token = tenant.token("admin")
    for accept in ("application/json", GRAPHQL_RESPONSE_JSON):
        first = await get(apps.cached, token, PROJECTS, accept=accept)
        second = await get(apps.cached, token, PROJECTS, accept=accept)
        fresh = await get(apps.fresh, token, PROJECTS, accept=accept)
        assert first.headers["content-type"] == second.headers["content-type"] == fresh.headers["content-type"]
        assert first.headers["content-type"].startswith(accept)
        assert first.content == second.content == fresh.content


async def test_errors_and_mutations_are_never_cached(apps: Apps, services: Services) -> None:
    tenant = await make_tenant(services)
    token = tenant.token("admin")
    cache = apps.runtime.response_cache
    assert cache is not None
    bad_cursor = 'query($id: ID!) { budget(id: $id) { id lineItems(after: "nope") { totalCount } } }'
    for _ in range(2):
        answer = await get(apps.cached, token, bad_cursor, id=tenant.budget_id)
        assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "etag" not in answer.headers
    assert len(cache) == 0 and cache.hits == 0
    invalid = await get(apps.cached, token, "{ nope }", accept=GRAPHQL_RESPONSE_JSON)
    assert invalid.status_code == 400 and len(cache) == 0

    # A mutation is never kept, and a GET of one is still refused with 405 once the document is known.
    for _ in range(2):
        made = await apps.cached.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
            "query": CREATE_COST_TYPE, "variables": {"i": {"code": f"X{_}", "name": "x"}}})
        assert "etag" not in made.headers and made.json()["data"]["createCostType"]["userErrors"] == []
    assert len(cache) == 0
    by_get = await get(apps.cached, token, CREATE_COST_TYPE, accept=GRAPHQL_RESPONSE_JSON, i={"code": "Y", "name": "y"})
    assert by_get.status_code == 405
    # Anonymous and rate-limited requests are refused before the cache.
    anonymous = await apps.cached.get("/graphql", params={"query": PROJECTS},
                                      headers={"Accept": GRAPHQL_RESPONSE_JSON})
    assert anonymous.status_code == 401


async def test_the_byte_budget_bounds_the_cache(db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    token = tenant.token("admin")
    small = create_app(_settings(db, 800), run_worker=False)
    try:
        async with (
            LifespanManager(small, startup_timeout=30, shutdown_timeout=30) as running,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=running.app), base_url="http://test") as client,
        ):
            cache = small.state.runtime.response_cache
            big = await get(client, token, BUDGET, id=tenant.budget_id)
            assert len(big.content) + ENTRY_OVERHEAD > 800 and len(cache) == 0  # too large: not kept
            assert "etag" in big.headers  # still validated: a repeated GET answers 304
            assert (await get(client, token, BUDGET, etag=big.headers["etag"], id=tenant.budget_id)).status_code == 304
            small_queries = [f"{{ viewer {{ id }} a{n}: viewer {{ name }} }}" for n in range(20)]
            for query in small_queries:
                await get(client, token, query)
            assert 0 < cache.bytes <= 800 and cache.evicted > 0
            assert len(cache) < len(small_queries)
    finally:
        await reap_runtime(getattr(small.state, "runtime", None), "the small app")


def test_lru_evicts_the_least_recently_used_entry() -> None:
    cache = ResponseCache(3 * (100 + ENTRY_OVERHEAD))
    lookups = [cache.lookup(bytes([n]) * 32, (1, 0)) for n in range(4)]
    for lookup in lookups[:3]:
        assert cache.store(lookup, b"x" * 100)
    assert cache.lookup(lookups[0].key, (1, 0)).entry is not None  # 0 is now the most recently used
    cache.store(lookups[3], b"x" * 100)
    assert cache.lookup(lookups[1].key, (1, 0)).entry is None  # 1 was the least recently used
    assert cache.lookup(lookups[0].key, (1, 0)).entry is not None
    assert cache.lookup(lookups[0].key, (2, 0)).entry is None  # another version: dropped
    assert cache.bytes == 2 * (100 + ENTRY_OVERHEAD) and len(cache) == 2
    assert not cache.store(lookups[1], b"x" * 3 * (100 + ENTRY_OVERHEAD))
