"""The API for SPAs over HTTP, against the running app: `viewerCan` agrees with what the mutations then do,
the queue filters and orders, and every connection's keyset cursors keep pages stable while rows are added
(or removed) between fetches."""

from __future__ import annotations

from typing import Any

import httpx

from resolvers.context import Services
from tests.e2e.conftest import (
    DECIDE,
    SEND,
    UNLOCK,
    add_line,
    gql,
    line_fields,
    ok,
    ready_to_send,
    refused,
)
from tests.support import Tenant, make_tenant, snapshot

BUDGET_CAN = """query($b: ID!) { budget(id: $b) { viewerCan { editLines createModification lock unlock send retrieve }
  sendBlockers { code } unlockBlockers { code } } }"""
REQUEST_CAN = """query($r: ID!) { erpRequest(id: $r) {
  viewerCan { accept reject retrieve retryExport confirmPosting } } }"""
QUEUE = """query($filter: ErpRequestFilter, $orderBy: ErpRequestOrder, $first: Int, $after: String, $projectId: ID) {
  erpRequests(filter: $filter, orderBy: $orderBy, first: $first, after: $after, projectId: $projectId) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id totalOriginalBudget project { id } } } } }"""
PROJECT = """mutation($n: String!) { createProject(input: {name: "Tower", number: $n}) {
  project { id budget { id } } userErrors { code } } }"""
CREATE_LINE = """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) {
  lineItem { id } userErrors { code } } }"""
SYNC = "mutation($p: ID!) { syncProjectToERP(projectId: $p) { userErrors { code } } }"
LOCK = "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { userErrors { code } } }"
SEND_BUDGET = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id } userErrors { code } } }"
DELETE_LINE = "mutation($id: ID!) { deleteBudgetLineItem(id: $id) { userErrors { code } } }"
LINES = """query($b: ID!, $after: String) { budget(id: $b) { lineItems(first: 2, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }"""
HISTORY = """query($b: ID!, $after: String) { budget(id: $b) { history(first: 2, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { sequence } } } } }"""
PROJECTS = """query($after: String) { projects(first: 1, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }"""


async def test_viewer_can_over_http_agrees_with_what_the_mutations_do(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await ready_to_send(client, tenant)
    flags = {}
    for role in ("admin", "standard", "sender", "reader", "approver"):
        data = await ok(client, tenant.token(role), BUDGET_CAN, b=tenant.budget_id)
        flags[role] = data["budget"]["viewerCan"]
    assert {role for role, can in flags.items() if can["send"]} == {"admin", "sender"}
    before = await snapshot(tenant.services.db, tenant.company_id)
    for role in ("standard", "reader", "approver"):
        assert await refused(client, tenant.token(role), SEND, i={"budgetId": tenant.budget_id})
    assert await snapshot(tenant.services.db, tenant.company_id) == before
    sent = await ok(client, tenant.token("sender"), SEND, i={"budgetId": tenant.budget_id})
    request_id = sent["sendToERP"]["erpRequest"]["id"]

    # Pending acceptance: nobody may unlock, only the approver may decide.
    admin = await ok(client, tenant.token("admin"), BUDGET_CAN, b=tenant.budget_id)
    assert admin["budget"]["viewerCan"]["unlock"] is False and admin["budget"]["unlockBlockers"]
    assert await refused(client, tenant.token("admin"), UNLOCK, i={"budgetId": tenant.budget_id})
    accepts = {}
    for role in ("approver", "standard", "erp_reader", "integrator"):
        data = await ok(client, tenant.token(role), REQUEST_CAN, r=request_id)
        accepts[role] = data["erpRequest"]["viewerCan"]["accept"]
    assert accepts == {"approver": True, "standard": False, "erp_reader": False, "integrator": False}
    before = await snapshot(tenant.services.db, tenant.company_id)
    for role in ("standard", "erp_reader", "integrator"):
        assert await refused(client, tenant.token(role), DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})
    assert await snapshot(tenant.services.db, tenant.company_id) == before
    await ok(client, tenant.token("approver"), DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})


async def sent_project(client: httpx.AsyncClient, tenant: Tenant, number: str, amount: str) -> tuple[str, str]:
    """A new project of the tenant with one line of `amount`, sent: (project id, request id)."""
    admin = tenant.token("admin")
    created = await ok(client, admin, PROJECT, n=number)
    project_id = created["createProject"]["project"]["id"]
    budget_id = created["createProject"]["project"]["budget"]["id"]
    await ok(client, admin, CREATE_LINE, i={"budgetId": budget_id, "item": line_fields(tenant, "03-300", "L", amount)})
    await ok(client, admin, SYNC, p=project_id)
    await ok(client, admin, LOCK, b=budget_id)
    sent = await ok(client, admin, SEND_BUDGET, b=budget_id)
    return project_id, sent["sendToERP"]["erpRequest"]["id"]


async def pages(client: httpx.AsyncClient, token: str, **variables: Any) -> list[dict[str, Any]]:
    data = await ok(client, token, QUEUE, **variables)
    return [edge["node"] for edge in data["erpRequests"]["edges"]]


async def test_the_queue_over_http_filters_orders_and_pages_stably(
    client: httpx.AsyncClient, tenant: Tenant, services: Services
) -> None:
    approver = tenant.token("approver")
    sent = {}
    for amount in ("300.00", "100.00", "200.00"):
        sent[amount] = await sent_project(client, tenant, f"T-{amount}", amount)
    largest_first = {"field": "TOTAL_ORIGINAL_BUDGET", "direction": "DESC"}
    pending = {"status": ["PENDING_ACCEPTANCE"]}
    first = (await ok(client, approver, QUEUE, filter=pending, orderBy=largest_first, first=1))["erpRequests"]
    assert [edge["node"]["totalOriginalBudget"] for edge in first["edges"]] == ["300.00"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True

    # A larger request arrives between two page fetches: it sorts before the cursor, so it shifts no page.
    await sent_project(client, tenant, "T-1000", "1000.00")
    seen = [first["edges"][0]["node"]["totalOriginalBudget"]]
    after = first["pageInfo"]["endCursor"]
    while after is not None:
        page = (await ok(client, approver, QUEUE, filter=pending, orderBy=largest_first, first=1, after=after))
        seen += [edge["node"]["totalOriginalBudget"] for edge in page["erpRequests"]["edges"]]
        info = page["erpRequests"]["pageInfo"]
        after = info["endCursor"] if info["hasNextPage"] else None
    assert seen == ["300.00", "200.00", "100.00"]  # none twice, none skipped
    assert page["erpRequests"]["totalCount"] == 4

    smallest_first = await pages(client, approver, orderBy={"field": "TOTAL_ORIGINAL_BUDGET", "direction": "ASC"})
    assert [r["totalOriginalBudget"] for r in smallest_first] == ["100.00", "200.00", "300.00", "1000.00"]
    project_200 = sent["200.00"][0]
    assert [r["id"] for r in await pages(client, approver, filter={"projectId": project_200})] == [sent["200.00"][1]]
    assert await pages(client, tenant.token("reader"), filter={"projectId": project_200}) == []  # not a member

    bad = await gql(client, approver, QUEUE, after="bm90IGEgY3Vyc29y")
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "invalid cursor" in bad["errors"][0]["message"]

    other = await make_tenant(services)
    await ready_to_send(client, other)
    await ok(client, other.token("admin"), SEND, i={"budgetId": other.budget_id})
    ours = {r["id"] for r in await pages(client, approver, first=200)}
    theirs = {r["id"] for r in await pages(client, other.token("approver"), first=200)}
    assert len(ours) == 4 and len(theirs) == 1 and not ours & theirs
    assert await pages(client, approver, filter={"projectId": other.project_id}) == []


async def walk(
    client: httpx.AsyncClient, token: str, query: str, path: str, after: str | None = None, **variables: Any
) -> list[Any]:
    """Every node of a connection from `after` on, page by page."""
    nodes: list[Any] = []
    while True:
        data = await ok(client, token, query, after=after, **variables)
        for key in path.split("."):
            data = data[key]
        nodes += [edge["node"] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["pageInfo"]["endCursor"]


async def test_line_items_history_and_projects_page_by_keyset_over_http(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    admin = tenant.token("admin")
    lines = [await add_line(client, tenant, "03-300", "L", f"{n}.00", sub_job=f"SJ-{n}") for n in range(5)]
    first = (await ok(client, admin, LINES, b=tenant.budget_id))["budget"]["lineItems"]
    assert [edge["node"]["id"] for edge in first["edges"]] == lines[:2]
    # Between two fetches a line before the cursor goes and a new one comes: an offset would skip a line.
    await ok(client, admin, DELETE_LINE, id=lines[0])
    lines.append(await add_line(client, tenant, "03-300", "L", "5.00", sub_job="SJ-5"))
    after = first["pageInfo"]["endCursor"]
    rest = await walk(client, admin, LINES, "budget.lineItems", after=after, b=tenant.budget_id)
    assert [node["id"] for node in rest] == lines[2:]

    newest = (await ok(client, admin, HISTORY, b=tenant.budget_id))["budget"]["history"]
    head = [edge["node"]["sequence"] for edge in newest["edges"]]
    await add_line(client, tenant, "05-120", "M", "7.00")  # a newer event, before the cursor
    after = newest["pageInfo"]["endCursor"]
    following = await walk(client, admin, HISTORY, "budget.history", after=after, b=tenant.budget_id)
    now = [node["sequence"] for node in await walk(client, admin, HISTORY, "budget.history", b=tenant.budget_id)]
    assert now[1:3] == head  # the new event came first
    assert [node["sequence"] for node in following] == now[3:]

    projects_first = (await ok(client, admin, PROJECTS))["projects"]
    assert [edge["node"]["id"] for edge in projects_first["edges"]] == [tenant.project_id]
    created = await ok(client, admin, PROJECT, n="P-NEW")
    after = projects_first["pageInfo"]["endCursor"]
    rest = await walk(client, admin, PROJECTS, "projects", after=after)
    assert [node["id"] for node in rest] == [created["createProject"]["project"]["id"]]
