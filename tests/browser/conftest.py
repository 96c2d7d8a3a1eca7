"""Real-browser tests: Playwright for Python drives the system Chromium (Debian's `chromium` package; browser
downloads are not reachable) against a real uvicorn server on a free port.

Under CI=true a missing Playwright or Chromium fails these tests; elsewhere they skip and say why. Every page
runs behind a guard that aborts (and records) any request not addressed to the server under test, and every
test ends by checking that nothing was attempted and that the page logged no error.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from persistence.database import Database
from resolvers.context import Services
from tests.browser.support import ARTIFACTS, CHROMIUM, LIVE_TIMEOUT_MS, Company, make_company
from tests.live_server import LiveServer, live_server, server_settings_for
from tests.support import in_ci

try:
    from playwright.async_api import async_playwright
    from playwright.async_api import expect as expect  # re-exported for the tests

    PLAYWRIGHT_MISSING: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the environment
    PLAYWRIGHT_MISSING = f"Playwright for Python is not installed ({exc}): pip install -e '.[dev]'"
    async_playwright = expect = None  # type: ignore[assignment]  # the `browser` fixture skips or fails first

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Route, WebSocket


def browser_unavailable() -> str | None:
    if PLAYWRIGHT_MISSING:
        return PLAYWRIGHT_MISSING
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set BUDGETBRIDGE_CHROMIUM)"
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    reason = browser_unavailable()
    if reason is not None:
        if in_ci():
            pytest.fail(f"browser tests cannot run under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-dev-shm-usage"])
        yield launched
        await launched.close()


@pytest.fixture
async def server(db: Database) -> AsyncIterator[LiveServer]:
    async with live_server(server_settings_for(db.url)) as running:
        yield running


@pytest.fixture
async def company(services: Services) -> Company:
    return await make_company(services)


@dataclass
class Tab:
    """One browser context (one person) with one page, behind the offline guard."""

    origin: str
    context: BrowserContext
    page: Page
    foreign: list[str] = field(default_factory=list)  # requests to anything but the server: aborted
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    sockets: list[WebSocket] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path

    async def sign_in(self, token: str, path: str = "/") -> None:
        """Sign in through the form, then wait until the live stream is connected."""
        await self.page.goto(self.url(path))
        await self.page.get_by_label("Access token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.wait_live()

    async def wait_live(self) -> None:
        await expect(self.page.locator(".live-state")).to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT_MS)

    def assert_clean(self) -> None:
        assert self.foreign == [], f"the page reached beyond the server: {self.foreign}"
        assert self.errors == [], f"the page logged errors: {self.errors}"
        for socket in self.sockets:
            assert socket.url.startswith(self.origin.replace("http", "ws", 1) + "/"), socket.url

    async def screenshot(self, name: str, *, full_page: bool = False) -> str:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return str(path)


OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def open_tab(browser: Browser, server: LiveServer) -> AsyncIterator[OpenTab]:
    origin = f"http://127.0.0.1:{server.port}"
    tabs: list[Tab] = []

    async def open_one(*, width: int = 1280, height: int = 860, **options: Any) -> Tab:
        context = await browser.new_context(viewport={"width": width, "height": height}, **options)
        page = await context.new_page()
        tab = Tab(origin=origin, context=context, page=page)

        async def guard(route: Route) -> None:
            if route.request.url.startswith(origin + "/"):
                await route.continue_()
            else:
                tab.foreign.append(route.request.url)
                await route.abort("blockedbyclient")

        await context.route("**/*", guard)
        page.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
        page.on("websocket", lambda socket: tab.sockets.append(socket))
        tabs.append(tab)
        return tab

    yield open_one
    for tab in tabs:
        await tab.context.close()
