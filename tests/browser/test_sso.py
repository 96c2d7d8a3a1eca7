"""Single sign-on in Chromium: the approver signs in to the dashboard with the company's identity provider
(a real one: npm's `oidc-provider`, tests/oidc/provider.mjs) by Authorization Code + PKCE done in the page,
sees the queue, the access token is refreshed before it expires, and signing out forgets every token.
Every wait is on the DOM or on a request the page makes, never on the clock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
import pytest

from tests.browser.conftest import expect
from tests.browser.support import LIVE_TIMEOUT_MS, Company
from tests.live_server import LiveServer
from tests.oidc.support import AUDIENCE, CLIENT_ID, Provider, running_provider, signing_key

if TYPE_CHECKING:
    from playwright.async_api import Browser, Request, Route

from app import oidc

# Short-lived access tokens, so the page refreshes one a couple of seconds after signing in (a minute early).
ACCESS_TOKEN_TTL = 62


@pytest.fixture
async def provider(tmp_path: Path, server: LiveServer) -> AsyncIterator[Provider]:
    keys = [signing_key("RS256")]
    async with running_provider(tmp_path, keys, redirect_uris=[f"http://127.0.0.1:{server.port}/"],
                                access_token_ttl=ACCESS_TOKEN_TTL) as started:
        yield started


async def test_the_approver_signs_in_with_the_company_account_and_out_again(
    browser: Browser, server: LiveServer, company: Company, provider: Provider
) -> None:
    db = company.tenant.services.db
    async with db.unit_of_work() as uow:
        await oidc.set_sso(uow.connection, company.tenant.company_id, provider.issuer, AUDIENCE, client_id=CLIENT_ID)
        await uow.commit()
    await company.ready_to_send("riverside")
    await company.send("riverside")

    alex = f"alex+{company.tenant.company_id[-8:]}@summit.example"  # the approver's email (support.PEOPLE)
    origin = f"http://127.0.0.1:{server.port}"
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    foreign: list[str] = []
    errors: list[str] = []

    async def guard(route: Route) -> None:
        # The server under test and the identity provider; nothing else (no CDN, no telemetry) from our pages.
        if route.request.url.startswith((origin + "/", provider.issuer + "/")):
            await route.continue_()
            return
        if route.request.frame.url.startswith(origin + "/"):
            foreign.append(route.request.url)  # ours must not; the provider's login page may (its web fonts)
        await route.abort("blockedbyclient")

    await context.route("**/*", guard)
    page = await context.new_page()

    def ours() -> bool:  # the provider's pages are not ours to judge
        return page.url.startswith(origin + "/")

    page.on("console", lambda message: errors.append(message.text) if message.type == "error" and ours() else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}") if ours() else None)
    try:
        await page.goto(origin + "/")
        await page.get_by_label("Work email").fill(alex)
        await page.get_by_role("button", name="Continue with single sign-on").click()

        # The provider's own pages: the password never reaches BudgetBridge.
        await page.wait_for_url(re.compile("^" + re.escape(provider.issuer) + "/interaction/"))
        await page.locator('input[name="login"]').fill(alex)
        await page.locator('input[name="password"]').fill("correct horse battery staple")
        await page.get_by_role("button", name="Sign-in").click()
        await page.get_by_role("button", name="Continue").click()

        # Back on the dashboard: signed in as Alex, the queue shows the request, the live stream runs.
        await page.wait_for_url(origin + "/")
        await expect(page.locator(".user")).to_have_text("Alex Rivera", timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("#queue-panel tbody tr")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("#queue-panel tbody tr").first).to_contain_text(company.names["riverside"])
        await expect(page.locator(".live-state")).to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT_MS)
        assert "code=" not in page.url and "state=" not in page.url
        first = await page.evaluate("sessionStorage.getItem('budgetbridge.token')")
        claims = jwt.decode(first, options={"verify_signature": False})
        assert (claims["iss"], claims["aud"], claims["sub"]) == (provider.issuer, AUDIENCE, alex)

        # A minute before it expires the page trades its refresh token for a new access token.
        def is_refresh(request: Request) -> bool:
            return request.url.startswith(provider.issuer) and "grant_type=refresh_token" in (request.post_data or "")

        async with page.expect_response(lambda r: is_refresh(r.request), timeout=LIVE_TIMEOUT_MS) as refreshed:
            pass
        assert (await refreshed.value).status == 200
        await page.wait_for_function("(first) => sessionStorage.getItem('budgetbridge.token') !== first", arg=first,
                                     timeout=LIVE_TIMEOUT_MS)
        renewed = jwt.decode(await page.evaluate("sessionStorage.getItem('budgetbridge.token')"),
                             options={"verify_signature": False})
        assert renewed["sub"] == alex and renewed["jti"] != claims["jti"]
        await page.reload()
        await expect(page.locator(".user")).to_have_text("Alex Rivera", timeout=LIVE_TIMEOUT_MS)

        # Signing out forgets the access and the refresh token.
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("Work email")).to_be_visible()
        stored = await page.evaluate("Object.keys(sessionStorage).filter((k) => k.startsWith('budgetbridge'))")
        assert stored == []
        assert foreign == [], f"the page reached beyond the server and the identity provider: {foreign}"
        assert errors == [], f"the page logged errors: {errors}"
    finally:
        await context.close()


async def test_an_email_without_single_sign_on_is_told_so_on_the_form(
    browser: Browser, server: LiveServer, company: Company
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await page.get_by_label("Work email").fill("pat@nowhere.example")
        await page.get_by_role("button", name="Continue with single sign-on").click()
        await expect(page.get_by_role("alert")).to_contain_text("single sign-on is not set up for this company")
        await expect(page.get_by_label("Work email")).to_have_attribute("aria-invalid", "true")
    finally:
        await context.close()
