"""The browser's side of the server: the approver dashboard at `/` (a single-page app and its deep links),
its files under `/static/`, and GraphiQL's files under `/graphql/assets/`. Everything ships in the package
(`app/static/`), so neither page needs the internet.

    app/static/dashboard/**   ->  /static/**            (the dashboard's own code and its vendored libraries)
    app/static/graphiql/**    ->  /graphql/assets/**    (GraphiQL, React and our GraphiQL set-up)
    app/static/templates/     ->  the two HTML pages, rendered with the app's root path

Files under a versioned `vendor/<name>-<version>/` folder never change at that URL and are cached for a year;
everything else is revalidated on each use (ETag, 304).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).parent / "static"
DASHBOARD_DIR = STATIC / "dashboard"
GRAPHIQL_DIR = STATIC / "graphiql"
TEMPLATES = STATIC / "templates"

DASHBOARD_PREFIX = "/static"
GRAPHIQL_PREFIX = "/graphql/assets"
GRAPHQL_PATH = "/graphql"

# The single-page app's own routes: the server answers each with the app's HTML, the app shows the view.
APP_PATHS = ("/", "/budgets", "/budgets/{budget_id}", "/requests/{request_id}")

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}
COMPRESSIBLE = (".js", ".mjs", ".css", ".html", ".json", ".map", ".svg", ".txt", ".md", "")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
VERSIONED = re.compile(r"(^|/)vendor/[A-Za-z0-9._-]+-\d+\.\d+\.\d+[A-Za-z0-9.+-]*/")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    cache_control: str


@functools.lru_cache(maxsize=256)
def _load(path: Path, relative: str, mtime_ns: int, size: int) -> _Asset:
    body = path.read_bytes()
    suffix = path.suffix.lower()
    gzipped = gzip.compress(body, 6, mtime=0) if suffix in COMPRESSIBLE and len(body) > 1024 else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    cache = IMMUTABLE if VERSIONED.search(relative) else REVALIDATE
    return _Asset(body, gzipped, etag, CONTENT_TYPES[suffix], cache)


def _resolve(directory: Path, relative: str) -> Path | None:
    """The file under `directory` that `relative` names, or None: no hidden names, no way out, no folders."""
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..") or part.startswith(".") or "\\" in part for part in parts):
        return None
    path = directory.joinpath(*parts)
    if path.suffix.lower() not in CONTENT_TYPES:
        return None
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(directory.resolve()) or not resolved.is_file():
        return None
    return resolved


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def file_response(request: Request, directory: Path, relative: str) -> Response:
    path = _resolve(directory, relative)
    if path is None:
        return PlainTextResponse("Not Found", status_code=404, headers=SECURITY_HEADERS)
    stat = path.stat()
    asset = _load(path, relative, stat.st_mtime_ns, stat.st_size)
    headers = {**SECURITY_HEADERS, "Cache-Control": asset.cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if _etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, headers=headers, media_type=asset.content_type)


async def dashboard_asset(request: Request) -> Response:
    return file_response(request, DASHBOARD_DIR, request.path_params["path"])


async def graphiql_asset(request: Request) -> Response:
    return file_response(request, GRAPHIQL_DIR, request.path_params["path"])


# --- the two pages ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@dataclass(frozen=True)
class RenderedPage:
    html: str
    script_hashes: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def render_page(name: str, root: str) -> RenderedPage:
    """The template with `{{ROOT}}` (the app's mount point) filled in, and the CSP hashes of its inline
    scripts (the dashboard's import map is one)."""
    html = _template(name).replace("{{ROOT}}", root).replace("{{ROOT_JSON}}", json.dumps(root)[1:-1])
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.DOTALL)
    hashes = tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'" for code in inline
    )
    return RenderedPage(html, hashes)


def _page_response(page: RenderedPage, csp: str) -> HTMLResponse:
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": REVALIDATE,
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
    }
    return HTMLResponse(page.html, headers=headers)


async def dashboard_page(request: Request) -> Response:
    from app.sign_in import connect_origins

    page = render_page("dashboard.html", _root(request))
    runtime = getattr(request.app.state, "runtime", None)
    # Single sign-on: the dashboard exchanges and refreshes its tokens at the issuer's token endpoint.
    issuers = await connect_origins(runtime) if runtime is not None else []
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(page.script_hashes),
            "style-src 'self'",
            "img-src 'self' data:",
            " ".join(["connect-src 'self'", *issuers]),  # 'self' covers ws:// and wss:// to this origin
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )
    return _page_response(page, csp)


def graphiql_response(request: Request) -> HTMLResponse:
    """GraphiQL as the GraphQL view serves it on GET /graphql (from app.graphql_view)."""
    page = render_page("graphiql.html", _root(request))
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(page.script_hashes),
            # GraphiQL sets inline styles and ships its fonts and icons as data: URLs.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )
    return _page_response(page, csp)


def routes() -> list[BaseRoute]:
    """Mounted after /graphql, /healthz and the webhook callback, which keep their paths."""
    return [
        *(Route(path, dashboard_page, methods=["GET"]) for path in APP_PATHS),
        Route(DASHBOARD_PREFIX + "/{path:path}", dashboard_asset, methods=["GET"]),
        Route(GRAPHIQL_PREFIX + "/{path:path}", graphiql_asset, methods=["GET"]),
    ]
