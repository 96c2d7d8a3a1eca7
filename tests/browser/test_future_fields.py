"""The dashboard uses the contract's second-wave fields (`Budget.viewerCan`, `ErpRequest.viewerCan`,
`Blocker.lineItem`/`field`, `erpRequests(filter:, orderBy:)`) as soon as the schema has them, and works
without them today. Until the server has them, a shim in front of it plays the server of the future:
introspection says they exist, the real server answers the rest, and the shim adds their values."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from tests.browser.conftest import OpenTab, expect
from tests.browser.support import Company
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.async_api import Route

FUTURE_TYPES: dict[str, Any] = {
    "erpRequest": {"fields": [{"name": n} for n in ("id", "status", "viewerCan", "entryCount", "entriesTotal")]},
    "budget": {"fields": [{"name": n} for n in ("id", "sendBlockers", "viewerCan")]},
    "blocker": {"fields": [{"name": n} for n in ("code", "message", "lineItem", "field")]},
    "budgetActions": {"fields": [{"name": n} for n in ("lock", "unlock", "send", "retrieve")]},
    "requestActions": {
        "fields": [{"name": n} for n in ("accept", "reject", "retrieve", "retryExport", "confirmPosting")]
    },
    "query": {
        "fields": [{"name": "erpRequests", "args": [{"name": n} for n in ("status", "projectId", "filter", "orderBy")]}]
    },
    "decideInput": {"inputFields": [{"name": n} for n in ("erpRequestId", "decision", "reason", "idempotencyKey")]},
    "requestActionInput": {"inputFields": [{"name": n} for n in ("erpRequestId", "erpReference", "idempotencyKey")]},
}
BUDGET_VIEWER_CAN = "viewerCan { lock unlock send retrieve }"
BLOCKER_EXTRAS = "field lineItem { id subJob costCode { code } costType { code } }"


async def test_the_dashboard_uses_viewer_can_and_blocker_cells_once_the_schema_has_them(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    tab = await open_tab()
    budget_queries: list[str] = []

    async def future_server(route: Route) -> None:
        request = route.request
        body = json.loads(request.post_data or "{}") if request.method == "POST" else {}
        query: str = body.get("query", "")
        if "DashboardCapabilities" in query:
            await route.fulfill(json={"data": FUTURE_TYPES})
            return
        if "query Budget(" not in query:
            await route.continue_()
            return
        budget_queries.append(query)
        # Today's server answers the query without the new fields; the shim adds what tomorrow's would say.
        body["query"] = query.replace(BUDGET_VIEWER_CAN, "").replace(BLOCKER_EXTRAS, "")
        response = await route.fetch(post_data=json.dumps(body))
        data = await response.json()
        budget = data["data"]["budget"]
        budget["viewerCan"] = {"lock": False, "unlock": False, "send": False, "retrieve": False}
        line = next(e["node"] for e in budget["lineItems"]["edges"] if e["node"]["subJob"] == "BLDG-A")
        for blocker in budget["sendBlockers"] + budget["unlockBlockers"]:
            blocker.update(field=None, lineItem=None)
        budget["sendBlockers"].append(
            {
                "code": "SUB_JOB_NOT_SUPPORTED",
                "message": "line 03-300/M/BLDG-A has a sub job, which the ERP does not support",
                "field": ["subJob"],
                "lineItem": {
                    "id": line["id"],
                    "subJob": "BLDG-A",
                    "costCode": {"code": line["costCode"]["code"]},
                    "costType": {"code": line["costType"]["code"]},
                },
            }
        )
        await route.fulfill(response=response, json=data)

    await tab.page.route(re.compile(r"/graphql$"), future_server)
    await tab.sign_in(company.token("pm"), f"/budgets/{company.budgets['riverside']}")
    page = tab.page

    await expect(page.locator("#send-blockers")).to_contain_text("Line 03-300/M/BLDG-A has a sub job")
    (query,) = budget_queries
    assert BUDGET_VIEWER_CAN in query and query.count(BLOCKER_EXTRAS) == 2

    # viewerCan decides: the PM is a company admin and the budget is unlocked, yet the server says no.
    lock = page.get_by_role("button", name="Lock budget")
    await expect(lock).to_have_attribute("aria-disabled", "true")
    await expect(page.locator("#lock-hint")).to_contain_text("You cannot lock this budget")

    # A blocker that names a line links to it.
    link = page.locator("#send-blockers").get_by_role("link", name=re.compile("^Go to line 03-300 · M · BLDG-A"))
    await link.click()
    assert re.search(r"#line-[^/]+$", page.url), page.url
    await expect(page.locator("table.lines").last.locator("tr:target")).to_contain_text("Ready-mix concrete")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Riverside Medical Office Building — budget")
    tab.assert_clean()


async def test_the_queue_orders_and_filters_once_the_schema_can(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ready_to_send("riverside")
    await company.send("riverside")
    tab = await open_tab()
    queue_queries: list[dict[str, Any]] = []

    async def future_server(route: Route) -> None:
        request = route.request
        body = json.loads(request.post_data or "{}") if request.method == "POST" else {}
        query: str = body.get("query", "")
        if "DashboardCapabilities" in query:
            await route.fulfill(json={"data": FUTURE_TYPES})
            return
        if "query Queue(" not in query:
            await route.continue_()
            return
        queue_queries.append(json.loads(request.post_data or "{}"))  # as the page sent it
        body["query"] = (
            query.replace(", $orderBy: ErpRequestOrder", "")
            .replace(", orderBy: $orderBy", "")
            .replace("filter: {status: $status, projectId: $projectId}", "status: $status, projectId: $projectId")
        )
        body["variables"].pop("orderBy", None)
        await route.continue_(post_data=json.dumps(body))

    await tab.page.route(re.compile(r"/graphql$"), future_server)
    await tab.sign_in(company.token("approver"))
    page = tab.page
    await expect(page.locator("#queue-panel tbody tr")).to_have_count(1)
    first = queue_queries[-1]
    assert "filter: {status: $status, projectId: $projectId}" in first["query"]
    assert first["variables"]["orderBy"] == {"field": "SENT_AT", "direction": "DESC"}

    # The rows already number one before the reordered query is sent: wait for the query itself.
    async with page.expect_request(lambda r: "query Queue(" in (r.post_data or "")) as reordered:
        await page.get_by_label("Order").select_option(label="Largest total first")
    sent = json.loads((await reordered.value).post_data or "{}")
    assert sent["variables"]["orderBy"] == {"field": "TOTAL_ORIGINAL_BUDGET", "direction": "DESC"}
    await expect(page).to_have_url(re.compile(r"\?order=largest$"))
    await expect(page.locator("#queue-panel tbody tr")).to_have_count(1)
    tab.assert_clean()
