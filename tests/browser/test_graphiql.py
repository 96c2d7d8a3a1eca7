"""GraphiQL from the package's own files: it loads with nothing but the server, runs a query over HTTP and a
subscription over graphql-transport-ws with the token from its Headers pane in connection_init."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from tests.browser.conftest import OpenTab, expect
from tests.browser.support import LIVE_TIMEOUT_MS, SEND, Company, over_http
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.async_api import Page, WebSocket

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


async def editor_value(page: Page, selector: str) -> str:
    value: str = await page.locator(selector).evaluate("(el) => el.CodeMirror.getValue()")
    return value


async def set_editor(page: Page, selector: str, text: str) -> None:
    await page.locator(selector).evaluate("(el, text) => el.CodeMirror.setValue(text)", text)


async def test_graphiql_works_offline_and_runs_a_query_and_a_subscription(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ready_to_send("riverside")
    tab = await open_tab()
    page = tab.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    frames_sent: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    def watch(socket: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            message = json.loads(payload)
            frames_sent.append(message)
            if message.get("type") == "subscribe":
                subscribed.set()

        socket.on("framesent", sent)

    page.on("websocket", watch)

    # GraphiQL is ready once it has the schema (introspection without a token: the placeholder is not sent).
    async with page.expect_response(lambda r: "IntrospectionQuery" in (r.request.post_data or "")) as schema:
        await page.goto(tab.url("/graphql"), wait_until="load")
    assert (await schema.value).ok
    await expect(page.locator(QUERY_EDITOR)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Everything came from the server itself, GraphiQL's code from /graphql/assets/.
    assert tab.url("/graphql/assets/vendor/graphiql-4.1.2/graphiql.min.js") in requested
    assert tab.url("/graphql/assets/vendor/react-18.3.1/react.production.min.js") in requested
    assert all(url.startswith(tab.origin + "/") for url in requested), requested

    # The default query says how to authenticate.
    default_query = await editor_value(page, QUERY_EDITOR)
    assert '{"Authorization": "Bearer <token>"}' in default_query
    assert "budgetbridge token --user" in default_query
    assert "connection_init" in default_query

    # A query over HTTP with the token from the Headers pane.
    token = company.token("approver")
    await set_editor(page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
    await set_editor(page, QUERY_EDITOR, "query Me { viewer { name company { name } } }")
    # GraphiQL has parsed the new operation (clicking earlier would run the old one's name).
    await expect(page.get_by_role("tab", name="Me", exact=True)).to_be_visible()
    async with page.expect_request(lambda r: "query Me" in (r.post_data or "")) as query:
        await page.locator(".graphiql-execute-button").click()
    assert (await query.value).headers["authorization"] == f"Bearer {token}"
    result = page.locator(".result-window")
    await expect(result).to_contain_text("Summit Ridge Builders", timeout=LIVE_TIMEOUT_MS)
    await expect(result).to_contain_text("Alex Rivera")

    # A subscription over graphql-transport-ws: the same header travels in connection_init.
    await set_editor(
        page,
        QUERY_EDITOR,
        "subscription Changes { exportStatusChanged { type status project { name } } }",
    )
    await expect(page.get_by_role("tab", name="Changes", exact=True)).to_be_visible()
    await page.locator(".graphiql-execute-button").click()
    await asyncio.wait_for(subscribed.wait(), LIVE_TIMEOUT_MS / 1000)
    init = next(frame for frame in frames_sent if frame["type"] == "connection_init")
    assert init["payload"].get("Authorization") == f"Bearer {token}"

    # The PM sends the budget through the server; the event appears in GraphiQL's result pane.
    await over_http(server, company.token("pm"), SEND, i={"budgetId": company.budgets["riverside"]})
    await expect(result).to_contain_text("BudgetSentToErp", timeout=LIVE_TIMEOUT_MS)
    await expect(result).to_contain_text("PENDING_ACCEPTANCE")
    await expect(result).to_contain_text("Riverside Medical Office Building")

    await tab.screenshot("graphiql-subscription")
    tab.assert_clean()
    assert all(socket.url == server.ws_url for socket in tab.sockets)
