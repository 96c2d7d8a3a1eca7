"""What resolves issue 11: with BUDGETBRIDGE_SMTP_URL set, the demo's approver receives a readable email when the
demo's PM sends, and the PM receives the reason when it is rejected. The real server (uvicorn, the lifespan's
notifier) on the embedded SQLite database `serve --demo` uses, over HTTP, with a real SMTP server."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import httpx

from app import demo
from tests.live_server import live_server, server_settings_for
from tests.notify.smtp_server import Mail, running_smtp
from tests.support import JWT_SECRET, fresh_database, make_services

BUDGET = "{ projects { edges { node { name budget { id version } } } } }"
LOCK = "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { userErrors { code message } } }"
SEND = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id } userErrors { code message } } }"
REJECT = """mutation($r: ID!, $reason: String) {
  decideExport(input: {erpRequestId: $r, decision: REJECT, reason: $reason}) { userErrors { code message } } }"""


async def graphql(http: httpx.AsyncClient, url: str, token: str, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post(url, json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    for payload in body["data"].values():
        if isinstance(payload, dict) and "userErrors" in payload:
            assert payload["userErrors"] == [], payload
    return dict(body["data"])


async def test_the_demo_approver_hears_of_a_send_and_the_pm_of_the_rejection() -> None:
    url = f"sqlite+aiosqlite:///{os.path.join(tempfile.mkdtemp(prefix='bb-demo-mail-'), 'demo.db')}"
    db = await fresh_database(url)
    services = make_services(db)
    try:
        pm, approver, _viewer = await demo.seed(services, JWT_SECRET)
    finally:
        await services.connectors.aclose()
        await db.dispose()

    async with running_smtp() as mail:
        settings = server_settings_for(
            url, smtp_url=mail.url, public_url="http://127.0.0.1:8000", mail_from="BudgetBridge <budgets@demo.test>"
        )
        async with live_server(settings) as server, httpx.AsyncClient(timeout=30) as http:
            projects = await graphql(http, server.http_url, pm.token, BUDGET)
            budget_id = projects["projects"]["edges"][0]["node"]["budget"]["id"]
            await graphql(http, server.http_url, pm.token, LOCK, b=budget_id)
            sent = await graphql(http, server.http_url, pm.token, SEND, b=budget_id)
            request_id = sent["sendToERP"]["erpRequest"]["id"]

            def to(person: demo.DemoUser) -> list[Mail]:
                return [m for m in mail.received if person.email in m.recipients]

            await mail.changes.until(lambda: len(to(approver)) == 1, timeout=30, what="the approver's email")
            await graphql(http, server.http_url, approver.token, REJECT, r=request_id,
                          reason="Split 03-300 concrete by building before we export")
            await mail.changes.until(lambda: len(to(pm)) == 1, timeout=30, what="the PM's email")

    arrived, rejected = to(approver)[0], to(pm)[0]
    assert len(mail.received) == 2
    assert arrived.subject == "Budget waiting for your approval: Riverside Medical Office Building (2026-014)"
    assert "Pat Morgan sent a budget to the ERP Integrations queue of Summit Ridge Builders (demo)." in arrived.text
    assert "Lines             28" in arrived.text
    assert "Original budget   $3,911,800.00" in arrived.text
    assert f"http://127.0.0.1:8000/requests/{request_id}" in arrived.text
    assert rejected.subject == "Budget rejected: Riverside Medical Office Building (2026-014)"
    reason = "Reason:\n  Split 03-300 concrete by building before we export\n"
    assert f"was rejected by Alex Rivera.\n\n{reason}" in rejected.text
    assert f"http://127.0.0.1:8000/budgets/{budget_id}" in rejected.text
