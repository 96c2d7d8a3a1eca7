"""deploy/nginx/budgetbridge.conf, run by Debian's nginx in front of a real server: TLS with a certificate made
here, a query, a subscription through the WebSocket upgrade (keep-alive pings included), X-Request-ID passed
through or generated, the body limit refused at the proxy, and the plain-HTTP redirect.

nginx runs as a non-daemon child with its own prefix, pid file and error log in the test's directory. Without
nginx the test skips locally and fails under CI=true (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import re
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from app.main import create_app
from app.settings import Settings
from persistence.database import Database
from resolvers.context import Services
from tests.e2e.conftest import SEND, ok, ready_to_send
from tests.e2e.test_scale_out import terminate
from tests.live_server import free_port, reap_runtime, server_settings_for, serving
from tests.support import in_ci, make_tenant
from tests.waiting import eventually
from tests.ws_support import initialise, latest_sequence, receive, subscribe

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "budgetbridge.conf"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id
def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        if in_ci():
            pytest.fail("nginx is not installed (apt-get install -y nginx); CI=true, so this test must run")
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    return found


@dataclass
class Seen:
    """What reached the upstream: each request's path, protocol and headers of interest."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def last(self, path: str) -> dict[str, Any]:
        matching = [r for r in self.requests if r["path"] == path]
        assert matching, f"nothing reached the server at {path}: {self.requests}"
        return matching[-1]


def recording(app: ASGIApp, seen: Seen) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            seen.requests.append({
                "type": scope["type"], "path": scope["path"], "request_id": headers.get("x-request-id"),
                "forwarded_proto": headers.get("x-forwarded-proto"), "body_length": headers.get("content-length"),
            })
        await app(scope, receive, send)

    return wrapped


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "budgetbridge test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def render_site(upstream: int, https: int, http: int, cert: Path, key: Path) -> str:
    """The shipped site with only its addresses and certificate changed; each change must apply exactly once,
    so a site that drifts from what is tested fails here."""
    text = SITE.read_text(encoding="utf-8")
    changes = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen [::]:443 ssl http2;\n": "",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:80;\n": "",
        "/etc/letsencrypt/live/budgets.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/budgets.example.com/privkey.pem": str(key),
    }
    for old, new in changes.items():
        assert text.count(old) == 1, f"{SITE.name} no longer has {old!r} exactly once"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    https_port: int
    http_port: int
    cert: Path
    error_log: Path

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@contextlib.asynccontextmanager
async def running_nginx(upstream: int, directory: Path) -> AsyncIterator[Nginx]:
    binary = nginx_binary()
    cert, key = self_signed(directory)
    https, http = free_port(), free_port()
    (directory / "site.conf").write_text(render_site(upstream, https, http, cert, key), encoding="utf-8")
    error_log = directory / "error.log"
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would otherwise be `nobody`
    temp = " ".join(f"{kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
    (directory / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {error_log} info;
events {{ worker_connections 128; }}
http {{
    access_log {directory / 'access.log'};
    {temp}
    include {directory / 'site.conf'};
}}
""",
        encoding="utf-8",
    )
    command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(error_log)]
    check = await asyncio.create_subprocess_exec(*command, "-t", stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(check.communicate(), 30)
    assert check.returncode == 0, f"nginx -t refused the site:\n{out.decode()}"
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:

        async def listening() -> bool:
            # nginx announces nothing when it listens; its socket answering is the sign.
            if process.returncode is not None:
                raise AssertionError(f"nginx exited ({process.returncode}):\n{error_log.read_text()[-3000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", https)
            except OSError:
                return False
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True

        await eventually(listening, timeout=15, what="nginx to listen")
        yield Nginx(https_port=https, http_port=http, cert=cert, error_log=error_log)
    finally:
        await terminate(process)


def directive(name: str, text: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, flags=re.MULTILINE)


def test_the_site_matches_the_server_settings() -> None:
    """nginx and the server agree: the same body limit, and nginx waits longer than the keep-alive ping."""
    text = SITE.read_text(encoding="utf-8")
    defaults = Settings()
    assert directive("client_max_body_size", text) == [str(defaults.max_body_bytes)]
    timeouts = directive("proxy_read_timeout", text)
    assert timeouts and all(int(t.rstrip("s")) >= 3 * defaults.keep_alive_seconds for t in timeouts), timeouts
    env_example = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8")
    assert f"BUDGETBRIDGE_MAX_BODY_BYTES={defaults.max_body_bytes}" in env_example


async def test_queries_subscriptions_and_request_ids_through_nginx(
    services: Services, db: Database, tmp_path: Path
) -> None:
    tenant = await make_tenant(services)
    seen = Seen()
    app = create_app(server_settings_for(db.url))
    try:
        async with (
            serving(recording(app, seen), name="upstream") as upstream,
            running_nginx(upstream, tmp_path) as nginx,
            httpx.AsyncClient(base_url=nginx.https, verify=nginx.tls(), timeout=15) as client,
        ):
            # A query with the client's request id: it reaches the server as it was sent.
            await ready_to_send(client, tenant)
            body = {"query": "query Viewer { viewer { id } }"}
            headers = {"Authorization": f"Bearer {tenant.token('admin')}"}
            answer = await client.post("/graphql", json=body, headers={**headers, "X-Request-ID": "client-42.a"})
            assert answer.status_code == 200 and answer.json()["data"]["viewer"]["id"] == tenant.users["admin"]
            upstream_saw = seen.last("/graphql")
            assert upstream_saw["request_id"] == "client-42.a"
            assert upstream_saw["forwarded_proto"] == "https"
            assert answer.headers["x-request-id"] == "client-42.a"  # the server echoes what it received
            # None, or a malformed one (spaces, too long): nginx generates one.
            for given in (None, "not a valid id", "x" * 200):
                extra = {} if given is None else {"X-Request-ID": given}
                answer = await client.post("/graphql", json=body, headers={**headers, **extra})
                assert answer.status_code == 200
                generated = seen.last("/graphql")["request_id"]
                assert generated is not None and GENERATED_ID.fullmatch(generated), (given, generated)
                assert answer.headers["x-request-id"] == generated

            # A body over BUDGETBRIDGE_MAX_BODY_BYTES is refused by nginx and never reaches the server.
            before = len(seen.requests)
            too_big = b'{"query": "' + b"x" * Settings().max_body_bytes + b'"}'
            refused = await client.post("/graphql", content=too_big, headers={"content-type": "application/json"})
            assert refused.status_code == 413
            assert len(seen.requests) == before

            # A subscription through the WebSocket upgrade: pings pass, and an event arrives.
            after = await latest_sequence(services, tenant.company_id)
            async with connect(
                f"wss://127.0.0.1:{nginx.https_port}/graphql", ssl=nginx.tls(),
                subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers={"X-Request-ID": "ws-7"},
                open_timeout=10, close_timeout=2, ping_interval=None, proxy=None,
            ) as ws:
                await initialise(ws, tenant.token("approver"))
                assert seen.last("/graphql")["type"] == "websocket"
                assert seen.last("/graphql")["request_id"] == "ws-7"
                await subscribe(ws, "1", "subscription($a: String) { exportStatusChanged(after: $a) { status } }",
                                {"a": after})
                ping = await receive(ws, skip_control=False)  # the server's keep-alive (1 s here), proxied
                assert ping["type"] == "ping", ping
                await ok(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
                event = await receive(ws)
                assert event["type"] == "next", event
                assert event["payload"]["data"]["exportStatusChanged"]["status"] == "PENDING_ACCEPTANCE"

            # /metrics from this host is let through (the site allows the monitoring network).
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200 and "budgetbridge_http_request_duration_seconds" in scraped.text

            # Plain HTTP is redirected to HTTPS.
            async with httpx.AsyncClient() as plain:
                redirect = await plain.get(f"http://127.0.0.1:{nginx.http_port}/graphql")
            assert redirect.status_code == 301
            assert redirect.headers["location"].startswith("https://")
    finally:
        await reap_runtime(getattr(app.state, "runtime", None), "the server behind nginx")


# --- the other deploy/ files ---------------------------------------------------------------------------------


def _assignments(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value for key, value in pairs}


def test_the_env_example_names_every_setting_and_what_it_sets_is_valid() -> None:
    text = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for item in dataclass_fields(Settings):
        variable = f"BUDGETBRIDGE_{item.name.upper()}"
        assert re.search(rf"^#? ?{variable}=", text, flags=re.MULTILINE), f"{variable} is not in .env.example"
        assert f"`{variable}`" in readme, f"{variable} is not in the README"
    assigned = _assignments(text)
    assert assigned, "the example sets nothing"
    settings = Settings.from_env(assigned)  # the values it sets (secrets left blank) pass the start's checks
    assert settings.broadcast_url.startswith("redis://") and settings.database_url.startswith("postgresql+asyncpg")
    assert settings.jwt_secret is None, "a secret in the example would be used as it is"


@pytest.mark.parametrize("unit", ["budgetbridge.service", "budgetbridge-worker.service"])
def test_the_systemd_units_run_commands_the_cli_has(unit: str) -> None:
    from app.cli import _parser

    text = (ROOT / "deploy" / unit).read_text(encoding="utf-8")
    commands = re.findall(r"^ExecStart(?:Pre)?=(\S+) (.+)$", text, flags=re.MULTILINE)
    assert commands, f"{unit} runs nothing"
    for binary, arguments in commands:
        assert binary.endswith("/budgetbridge"), binary
        _parser().parse_args(arguments.split())  # an unknown command or flag exits (SystemExit fails the test)
    environment = dict(re.findall(r"^Environment=(\w+)=(.*)$", text, flags=re.MULTILINE))
    assert environment["PROMETHEUS_MULTIPROC_DIR"] == "/run/budgetbridge"
    assert "RuntimeDirectory=budgetbridge" in text
    if unit == "budgetbridge.service":  # the export worker runs in its own unit
        assert Settings.from_env(environment).run_export_worker is False
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is not None:  # a syntax check where systemd's tools exist (not required)
        import subprocess

        verify = [systemd_analyze, "verify", "--man=no", "--recursive-errors=no", str(ROOT / "deploy" / unit)]
        result = subprocess.run(verify, capture_output=True, text=True, timeout=60)
        problems = [line for line in result.stderr.splitlines()
                    if "Unknown" in line or "Invalid" in line or "Failed to parse" in line or "bad" in line.lower()]
        assert not problems, result.stderr
