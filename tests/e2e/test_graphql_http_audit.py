"""GraphQL-over-HTTP conformance: the graphql-http server audit (npm `graphql-http`, `auditServer`) against a
real server passes with no warnings. It runs when Node.js is present, and always under CI (which installs
Node.js and npm when missing); the audit's npm packages are installed into tests/e2e/audit at test time."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from persistence.database import Database
from resolvers.context import Services
from tests.live_server import live_server, server_settings_for
from tests.support import in_ci, make_tenant

AUDIT_DIR = Path(__file__).parent / "audit"


async def run(*command: str, cwd: Path, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture(scope="session")
async def audit_installed() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if in_ci():
            pytest.fail("Node.js and npm are needed for the graphql-http audit (.ci/run installs them)")
        pytest.skip("Node.js is not installed")
    if not (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        code, output = await run(npm, "install", "--no-audit", "--no-fund", "--loglevel=error", cwd=AUDIT_DIR,
                                 timeout=240)
        assert code == 0, output
    return AUDIT_DIR


async def test_the_graphql_http_audit_passes_without_warnings(
    audit_installed: Path, db: Database, services: Services
) -> None:
    tenant = await make_tenant(services)
    async with live_server(server_settings_for(db.url)) as server:
        code, output = await run("node", "audit.mjs", server.http_url, tenant.token("reader"),
                                 cwd=audit_installed, timeout=120)
    print(output)  # the summary, with -s
    assert code == 0, output
    assert output.strip().splitlines()[-1].endswith('"warn":0,"error":0}'), output
