"""The pages and files the browser loads, over HTTP without a browser: content types, caching, the vendored
files as released (hashes), and no way out of the static folders. These run everywhere (no Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app import pages
from app.main import create_app
from app.settings import Settings
from persistence.database import Database
from tests.support import JWT_SECRET

STATIC = Path(pages.__file__).parent / "static"
JS, CSS, TEXT = "text/javascript; charset=utf-8", "text/css; charset=utf-8", "text/plain; charset=utf-8"
YEAR = "public, max-age=31536000, immutable"


@pytest.fixture
async def http(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(Settings(database_url=db.url, jwt_secret=JWT_SECRET), run_worker=False)
    async with (
        LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
    ):
        yield client


def test_vendored_files_are_the_released_files_with_their_licences() -> None:
    manifest = json.loads((STATIC / "vendor.json").read_text())
    assert {entry["name"] for entry in manifest} == {"graphiql", "react", "react-dom", "preact", "htm"}
    for entry in manifest:
        folder = STATIC / entry["folder"]
        assert folder.name == f"{entry['name']}-{entry['version']}"
        assert (folder / "LICENSE").stat().st_size > 500, f"{entry['name']} ships without its licence"
        assert entry["npm_integrity"].startswith("sha512-")
        on_disk = {path.name for path in folder.iterdir()}
        assert on_disk == set(entry["files"]), f"{folder}: files not in vendor.json: {on_disk ^ set(entry['files'])}"
        for name, facts in entry["files"].items():
            data = (folder / name).read_bytes()
            assert len(data) == facts["bytes"], name
            assert hashlib.sha256(data).hexdigest() == facts["sha256"], f"{folder / name} differs from the release"


@pytest.mark.parametrize("template", ["dashboard.html", "graphiql.html"])
def test_pages_load_nothing_from_elsewhere(template: str) -> None:
    page = pages.render_page(template, "")
    assert "://" not in page.html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for url in re.findall(r'(?:src|href)="([^"]+)"', page.html):
        assert url.startswith("/") and not url.startswith("//"), url
    for url in re.findall(r'"(/static/[^"]+)"', page.html):
        assert (STATIC / "dashboard" / url.removeprefix("/static/")).is_file(), url
    for url in re.findall(r'"(/graphql/assets/[^"]+)"', page.html):
        assert (STATIC / "graphiql" / url.removeprefix("/graphql/assets/")).is_file(), url


def test_pages_follow_the_mount_point() -> None:
    page = pages.render_page("dashboard.html", "/budget")
    assert '<meta name="budgetbridge-root" content="/budget" />' in page.html
    assert '"preact": "/budget/static/vendor/preact-11.2.0/preact.mjs"' in page.html
    assert 'src="/budget/static/js/main.js"' in page.html


@pytest.mark.parametrize("path", ["/", "/budgets", "/budgets/bgt_123", "/requests/req_123"])
async def test_the_app_answers_its_deep_links(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert 'type="importmap"' in response.text
    # The import map is the only inline script, allowed by its hash; nothing else inline runs.
    (inline,) = re.findall(r'<script type="importmap">(.*?)</script>', response.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    csp = response.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_graphiql_is_our_page_on_get_with_html(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "/graphql/assets/vendor/graphiql-4.1.2/graphiql.min.js" in response.text
    assert "unpkg.com" not in response.text and "cdn" not in response.text.lower()
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The endpoint itself still answers GraphQL (to an anonymous caller: only that it must authenticate).
    body = (await http.post("/graphql", json={"query": "{ __typename }"})).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        ("/static/js/main.js", JS, "no-cache"),
        ("/static/app.css", CSS, "no-cache"),
        ("/static/favicon.svg", "image/svg+xml", "no-cache"),
        ("/static/vendor/preact-11.2.0/preact.mjs", JS, YEAR),
        ("/static/vendor/htm-3.1.1/LICENSE", TEXT, YEAR),
        ("/graphql/assets/graphiql-setup.js", JS, "no-cache"),
        ("/graphql/assets/vendor/graphiql-4.1.2/graphiql.min.css", CSS, YEAR),
        ("/graphql/assets/vendor/react-dom-18.3.1/react-dom.production.min.js", JS, YEAR),
    ],
)
async def test_assets_have_their_type_and_cache_policy(
    http: httpx.AsyncClient, path: str, content_type: str, cache: str
) -> None:
    response = await http.get(path, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == cache
    assert response.headers["x-content-type-options"] == "nosniff"
    etag = response.headers["etag"]
    again = await http.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_large_assets_are_compressed_for_browsers_that_accept_gzip(http: httpx.AsyncClient) -> None:
    path = "/graphql/assets/vendor/graphiql-4.1.2/graphiql.min.js"
    plain = (STATIC / "graphiql/vendor/graphiql-4.1.2/graphiql.min.js").read_bytes()
    response = await http.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert int(response.headers["content-length"]) < len(plain) / 2
    assert response.content == plain  # httpx decodes: the bytes are the file's


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pages.py",
        "/static/%2e%2e/pages.py",
        "/static/..%2fpages.py",
        "/static/js",
        "/static/js/",
        "/static/nope.js",
        "/static/.hidden",
        "/static/vendor.json",
        "/graphql/assets/../templates/graphiql.html",
        "/graphql/assets/%2e%2e/%2e%2e/main.py",
        "/graphql/assets/vendor/graphiql-4.1.2/graphiql.min.js.map",
        "/nowhere",
        "/requests",
    ],
)
async def test_nothing_outside_the_asset_folders_is_served(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404, (path, response.text[:200])
