"""The approver dashboard in a real browser: the queue, live updates between two people's browsers, reject
with a reason, blockers before the click, version conflicts, resuming after a dropped connection, keyboard
and phone width. Every wait is on the DOM (or a frame) showing what it waits for, never on the clock."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tests.browser.conftest import OpenTab, Tab, expect
from tests.browser.support import (
    CREATE_LINE,
    DECIDE,
    LIVE_TIMEOUT_MS,
    SEND,
    Company,
    graphql_body,
    over_http,
)
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.async_api import Request, WebSocketRoute

ROWS = "#queue-panel tbody tr"
HISTORY_HEAD = "query($id: ID!) { budget(id: $id) { history(first: 1) { edges { node { sequence } } } } }"


def mutation_named(name: str) -> Any:
    def matches(request: Request) -> bool:
        return request.method == "POST" and request.url.endswith("/graphql") and name in (request.post_data or "")

    return matches


async def latest_sequence(company: Company, key: str) -> str:
    data = await company.ok("pm", HISTORY_HEAD, id=company.budgets[key])
    sequence: str = data["budget"]["history"]["edges"][0]["node"]["sequence"]
    return sequence


async def test_the_approver_sees_the_queue_by_status(open_tab: OpenTab, server: LiveServer, company: Company) -> None:
    for key in ("mesa", "harbor", "riverside"):
        await company.ready_to_send(key)
        await company.send(key)
    await company.ok(
        "approver",
        DECIDE,
        i={"erpRequestId": (await queue_ids(company))["mesa"], "decision": "REJECT", "reason": "Split the HVAC line"},
    )
    tab = await open_tab(width=1200, height=560)
    await tab.sign_in(company.token("approver"))
    page = tab.page

    ready = page.get_by_role("tab", name=re.compile("^Ready to export"))
    await expect(ready).to_have_attribute("aria-selected", "true")
    rows = page.locator(ROWS)
    await expect(rows).to_have_count(2)
    # Newest first, with sender, totals and status.
    await expect(rows.nth(0)).to_contain_text("Riverside Medical Office Building")
    await expect(rows.nth(0)).to_contain_text("Pat Morgan")
    await expect(rows.nth(0)).to_contain_text("$1,238,950.00")
    await expect(rows.nth(1)).to_contain_text("Harbor Point Parking Structure")
    await expect(page.get_by_role("tab", name=re.compile("^Rejected"))).to_contain_text("1")

    path = await tab.screenshot("dashboard-queue")
    assert Path(path).stat().st_size > 20_000

    # The Rejected tab, by keyboard: arrow keys move along the tabs (WAI-ARIA tabs pattern).
    await ready.focus()
    for _ in range(5):
        await page.keyboard.press("ArrowRight")
    rejected = page.get_by_role("tab", name=re.compile("^Rejected"))
    await expect(rejected).to_have_attribute("aria-selected", "true")
    await expect(rejected).to_be_focused()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Mesa Verde Elementary School")
    await expect(rows.first).to_contain_text("Split the HVAC line")
    assert page.url.endswith("/?status=REJECTED")

    # The request's detail: project, sender, lines with totals, the budget's history.
    await rows.first.get_by_role("link", name="Mesa Verde Elementary School").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Mesa Verde Elementary School — request #1")
    await expect(page.locator(".facts")).to_contain_text("Pat Morgan")
    lines = page.locator("table.lines tbody tr")
    await expect(lines).to_have_count(3)
    await expect(lines.first).to_contain_text("03-300")
    await expect(page.locator("table.lines tfoot")).to_contain_text("$715,200.00")
    await expect(page.locator(".history")).to_contain_text("Export rejected")
    await expect(page.locator(".history")).to_contain_text("Budget sent to ERP")
    await expect(page.get_by_role("heading", level=1)).to_be_focused()  # focus follows the navigation
    tab.assert_clean()


async def queue_ids(company: Company) -> dict[str, str]:
    data = await company.ok("approver", "{ erpRequests(first: 50) { edges { node { id project { id } } } } }")
    by_project = {edge["node"]["project"]["id"]: edge["node"]["id"] for edge in data["erpRequests"]["edges"]}
    return {key: by_project[project_id] for key, project_id in company.projects.items() if project_id in by_project}


async def test_a_request_the_pm_sends_appears_on_the_approvers_page_within_seconds(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ready_to_send("riverside")
    approver = await open_tab()
    await approver.sign_in(company.token("approver"))
    await expect(approver.page.locator("#queue-panel")).to_contain_text("Nothing is waiting for a decision.")
    await approver.page.evaluate("() => { window.sameDocument = true; }")

    pm = await open_tab()
    await pm.sign_in(company.token("pm"), f"/budgets/{company.budgets['riverside']}")
    send = pm.page.get_by_role("button", name="Send to ERP")
    await expect(send).not_to_have_attribute("aria-disabled", "true")
    version = await company.version("riverside")

    async with pm.page.expect_request(mutation_named("sendToERP")) as sent:
        await send.click()
        clicked = time.monotonic()
    variables = graphql_body((await sent.value).post_data)["variables"]["input"]
    assert variables["budgetId"] == company.budgets["riverside"]
    assert variables["expectedVersion"] == version
    assert UUID(variables["idempotencyKey"]).version == 4

    row = approver.page.locator(ROWS, has_text="Riverside Medical Office Building")
    await expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    seen_after = time.monotonic() - clicked
    assert seen_after < 5, f"the approver saw the request {seen_after:.1f} s after the click"
    await expect(row).to_contain_text("Pat Morgan")
    await expect(approver.page.get_by_role("tab", name=re.compile("^Ready to export"))).to_contain_text("1")
    await expect(approver.page.get_by_role("status").last).to_contain_text(
        "Budget sent to ERP: Riverside Medical Office Building request #1 by Pat Morgan"
    )
    assert await approver.page.evaluate("() => window.sameDocument === true"), "the approver's page was reloaded"

    await expect(pm.page.locator(".notice.success")).to_contain_text("Sent to the ERP")
    await expect(pm.page.locator(".requests")).to_contain_text("Ready to export")
    await expect(pm.page.locator("#unlock-blockers")).to_contain_text(
        "Cannot unlock while the ERP request is PENDING_ACCEPTANCE."
    )
    approver.assert_clean()
    pm.assert_clean()


async def test_a_rejection_with_its_reason_appears_live_on_the_pms_page(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ready_to_send("harbor")
    request_id = await company.send("harbor")
    pm = await open_tab()
    await pm.sign_in(company.token("pm"), f"/budgets/{company.budgets['harbor']}")
    item = pm.page.locator(f'.requests li[data-request-id="{request_id}"]')
    await expect(item).to_contain_text("Ready to export")
    await pm.page.evaluate("() => { window.sameDocument = true; }")

    approver = await open_tab()
    await approver.sign_in(company.token("approver"), f"/requests/{request_id}")
    page = approver.page
    decisions: list[str] = []
    page.on("request", lambda r: decisions.append(r.post_data or "") if mutation_named("decideExport")(r) else None)

    # The reason is required: the form says so and sends nothing.
    reject = page.get_by_role("button", name="Reject")
    await reject.click()
    reason_box = page.get_by_label("Reason for rejecting")
    await expect(page.locator("#reject-reason-error")).to_have_text(
        "Enter a reason: the project team reads it to fix the budget."
    )
    await expect(reason_box).to_have_attribute("aria-invalid", "true")
    await expect(reason_box).to_be_focused()
    assert decisions == []

    reason = "Stair towers are priced twice; resubmit without line 05-120."
    await reason_box.fill(reason)
    await reject.click()
    await expect(page.locator(".status-line")).to_contain_text("Rejected")
    await expect(page.locator(".notice.success")).to_contain_text("Request #1 rejected.")
    (decision,) = decisions
    sent = json.loads(decision)["variables"]["input"]
    assert sent["decision"] == "REJECT" and sent["reason"] == reason
    assert UUID(sent["idempotencyKey"]).version == 4

    await expect(item).to_contain_text("Rejected", timeout=LIVE_TIMEOUT_MS)
    await expect(item).to_contain_text(reason)
    await expect(item).to_contain_text("Alex Rivera")
    await expect(pm.page.get_by_role("status").last).to_contain_text("Export rejected")
    assert await pm.page.evaluate("() => window.sameDocument === true"), "the PM's page was reloaded"
    pm.assert_clean()
    approver.assert_clean()


async def test_blockers_are_plain_sentences_before_anyone_clicks(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    pm = await open_tab()
    await pm.sign_in(company.token("pm"), f"/budgets/{company.budgets['mesa']}")
    page = pm.page
    send = page.get_by_role("button", name="Send to ERP")
    blockers = page.locator("#send-blockers")

    # Nothing clicked yet: the reasons are on the page, and the button points at them for screen readers.
    await expect(send).to_have_attribute("aria-disabled", "true")
    await expect(send).to_have_attribute("aria-describedby", "send-why")
    await expect(page.locator("#send-why")).to_contain_text("Send is not possible yet:")
    await expect(blockers).to_contain_text("Lock the budget before sending it to the ERP.")
    await expect(blockers).to_contain_text("The project is not synced with the ERP as a job.")
    # A pending-export preview of what a send would contain.
    await expect(page.locator("table.lines").first).to_contain_text("Foundations and slab on grade")

    # The inactive button does nothing (force: Playwright itself waits for aria-disabled buttons to enable).
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.post_data or "") if r.method == "POST" else None)
    await send.click(force=True)
    assert not any("sendToERP" in body for body in requests)

    # Locking removes that blocker; the others stay until the project is synced.
    await page.get_by_role("button", name="Lock budget").click()
    await expect(page.locator(".notice.success")).to_contain_text("Budget locked.")
    await expect(blockers).not_to_contain_text("Lock the budget")
    await expect(blockers).to_contain_text("The project is not synced with the ERP as a job.")
    await expect(page.locator("#unlock-why")).to_contain_text("Unlocking lets original amounts be edited again.")
    pm.assert_clean()


async def test_a_version_conflict_reloads_the_budget_and_says_so(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    pm = await open_tab()
    await pm.sign_in(company.token("pm"), f"/budgets/{company.budgets['riverside']}")
    page = pm.page
    await expect(page.locator("table.lines").last).not_to_contain_text("Touch-up painting")

    # Someone else adds a line while the page is open (no status change: the page does not know).
    await company.ok(
        "pm",
        CREATE_LINE,
        i={
            "budgetId": company.budgets["riverside"],
            "item": {
                "costCodeId": company.tenant.cost_codes["09-900"],
                "costTypeId": company.tenant.cost_types["L"],
                "description": "Touch-up painting",
                "originalAmount": "4800.00",
            },
        },
    )
    async with page.expect_request(mutation_named("lockBudget")) as first:
        await page.get_by_role("button", name="Lock budget").click()
    stale = graphql_body((await first.value).post_data)["variables"]["input"]
    notice = page.locator(".notice.warning")
    await expect(notice).to_contain_text("Someone changed this while you were looking at it, so nothing was done.")
    await expect(notice).to_contain_text("It has been reloaded")
    await expect(page.locator("table.lines").last).to_contain_text("Touch-up painting")
    await expect(page.locator(".status-line")).to_contain_text("Not locked")

    # The second click carries the new version and a new key, and succeeds.
    async with page.expect_request(mutation_named("lockBudget")) as second:
        await page.get_by_role("button", name="Lock budget").click()
    fresh = graphql_body((await second.value).post_data)["variables"]["input"]
    assert fresh["expectedVersion"] == stale["expectedVersion"] + 1
    assert fresh["idempotencyKey"] != stale["idempotencyKey"]
    await expect(page.locator(".notice.success")).to_contain_text("Budget locked.")
    await expect(page.locator(".status-line")).to_contain_text("Locked by Pat Morgan")
    pm.assert_clean()


async def test_after_a_dropped_connection_the_queue_resumes_with_after(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ready_to_send("riverside")
    await company.ready_to_send("harbor")
    approver = await open_tab()
    sockets: list[WebSocketRoute] = []
    held: list[str | bytes] = []  # what the page sent on the second connection
    gate = asyncio.Event()

    async def route(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        if len(sockets) == 1:
            ws.connect_to_server()  # the first connection passes straight through
            return
        # The reconnect: hold it until the test lets it through, and keep what the page sends.
        upstream: list[WebSocketRoute] = []

        def from_page(message: str | bytes) -> None:
            held.append(message)
            if upstream:
                upstream[0].send(message)

        ws.on_message(from_page)
        await gate.wait()
        upstream.append(ws.connect_to_server())
        for message in held:
            upstream[0].send(message)

    await approver.page.route_web_socket(re.compile(r"/graphql$"), route)
    await approver.sign_in(company.token("approver"))
    await over_http(server, company.token("pm"), SEND, i={"budgetId": company.budgets["riverside"]})
    await expect(approver.page.locator(ROWS, has_text="Riverside")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    seen = await latest_sequence(company, "riverside")

    # The connection drops; the page reconnects, and the PM sends while it is away.
    await sockets[0].close(code=1012, reason="server restart")
    await expect(approver.page.locator(".live-state")).to_have_attribute("data-state", "reconnecting")
    await over_http(server, company.token("pm"), SEND, i={"budgetId": company.budgets["harbor"]})
    gate.set()

    await expect(approver.page.locator(ROWS, has_text="Harbor Point")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    await approver.wait_live()
    subscribe = next(json.loads(m) for m in held if json.loads(m)["type"] == "subscribe")
    assert subscribe["payload"]["variables"] == {"after": seen}
    # The missed event was replayed (announced like any live event), not only picked up by a reload.
    await expect(approver.page.get_by_role("status").last).to_contain_text(
        "Budget sent to ERP: Harbor Point Parking Structure request #1"
    )
    approver.assert_clean()


async def test_keyboard_and_phone_width(open_tab: OpenTab, server: LiveServer, company: Company) -> None:
    await company.ready_to_send("riverside")
    await company.send("riverside")
    tab = await open_tab(width=390, height=844, is_mobile=True, has_touch=True)
    page = tab.page
    await page.goto(tab.url("/"))

    # Sign in with the keyboard alone: past single sign-on (first, for people) to the token.
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Work email")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Continue with single sign-on")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Access token")).to_be_focused()
    await page.keyboard.insert_text(company.token("approver"))
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")
    await tab.wait_live()

    # Landmarks and the live region are there for screen readers.
    await expect(page.get_by_role("banner")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    await expect(page.get_by_role("main")).to_be_visible()
    await expect(page.locator('[role="status"][aria-live="polite"]')).to_have_count(1)

    # The skip link is the first stop and moves focus into the main content.
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # Readable at phone width: nothing wider than the screen, the queue as cards.
    row = page.locator(ROWS, has_text="Riverside Medical Office Building")
    await expect(row).to_be_visible()
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    await tab.screenshot("dashboard-phone", full_page=True)

    # Into the request and back, by keyboard.
    await row.get_by_role("link").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_be_focused()
    await expect(page.get_by_role("button", name="Accept and export")).to_be_visible()
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the request page is {overflow}px wider than a phone screen"
    await page.go_back()
    await expect(page.get_by_role("heading", level=1)).to_have_text("ERP Integrations")
    tab.assert_clean()


async def test_sign_out_forgets_the_token(open_tab: OpenTab, server: LiveServer, company: Company) -> None:
    tab: Tab = await open_tab()
    token = company.token("viewer")
    await tab.sign_in(token)
    page = tab.page
    # A read-only project user has no queue: the start page is their budgets.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Budgets")
    await expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("ERP Integrations")
    assert await page.evaluate("() => sessionStorage.getItem('budgetbridge.token')") == token
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to BudgetBridge")
    assert await page.evaluate("() => sessionStorage.getItem('budgetbridge.token')") is None
    await page.reload()
    await expect(page.get_by_label("Access token")).to_be_visible()

    # A bad token is refused on the form and never stored.
    await page.get_by_label("Access token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("This token is not valid here")
    assert await page.evaluate("() => sessionStorage.getItem('budgetbridge.token')") is None
    # The refusal is HTTP 401 (GraphQL-over-HTTP, application/graphql-response+json), which the browser
    # reports in its console; nothing else may be logged.
    refused = [e for e in tab.errors if "status of 401" in e]
    assert refused, tab.errors
    tab.errors[:] = [e for e in tab.errors if e not in refused]

    # A link with the token in its fragment (never sent to the server) signs in and drops it from the address.
    await page.goto(tab.url(f"/budgets#token={token}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Budgets")
    await tab.wait_live()
    assert page.url == tab.url("/budgets")
    tab.assert_clean()
