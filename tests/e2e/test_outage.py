"""A database that cannot be reached: HTTP 503 with Retry-After and SERVICE_UNAVAILABLE, never a plain-text
500, and the server recovers by itself once the database is back. The test runs its own PostgreSQL (a
private cluster in a temporary directory, on a free port), so it can stop and start it."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from persistence.migrate import migrate
from tests.e2e.conftest import GENEROUS_RATE_LIMITS
from tests.live_server import free_port
from tests.support import JWT_SECRET, fresh_database, in_ci, make_services, make_tenant


@dataclass
class PrivateCluster:
    bin_dir: str
    data_dir: str
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, f"{self.bin_dir}/pg_ctl", "-D", self.data_dir, "-t", "60", *args],
            check=True, capture_output=True, timeout=90,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", f"{self.data_dir}/server.log", "-w", "start")
        self.wait_ready()

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while subprocess.run([f"{self.bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError("the private PostgreSQL did not become ready")
            time.sleep(0.1)


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if in_ci():
            pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are needed for the outage test")
        pytest.skip("no /usr/lib/postgresql/*/bin/initdb")
    root = os.geteuid() == 0
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    work = tempfile.mkdtemp(prefix="budgetbridge-outage-")
    data_dir = str(Path(work) / "data")
    if root:
        shutil.chown(work, "postgres", "postgres")
    subprocess.run([*as_user, f"{bin_dir}/initdb", "-D", data_dir, "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    running = PrivateCluster(bin_dir, data_dir, free_port(), as_user)
    running.start()
    try:
        yield running
    finally:
        with contextlib.suppress(Exception):
            running.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(work, ignore_errors=True)


async def test_an_unreachable_database_answers_503_and_the_server_recovers_by_itself(
    cluster: PrivateCluster,
) -> None:
    db = await fresh_database(cluster.url)
    services = make_services(db)
    tenant = await make_tenant(services)
    await db.dispose()
    settings = Settings(database_url=cluster.url, jwt_secret=JWT_SECRET, retry_after_seconds=7,
                        **GENEROUS_RATE_LIMITS)
    app = create_app(settings, run_worker=False)
    query = {"query": "{ viewer { id } costCodes { code } }"}
    headers = {"Authorization": f"Bearer {tenant.token('reader')}"}
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/graphql", json=query, headers=headers)).json()["data"]["viewer"]

            cluster.stop()
            for accept in ("application/json", "application/graphql-response+json"):
                for _ in range(3):  # the pool's connections are dead, and new ones are refused
                    response = await client.post("/graphql", json=query, headers={**headers, "accept": accept})
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "7"
                    assert response.headers["content-type"].startswith(accept)
                    body = response.json()
                    assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"], body
                    assert "Unexpected error" not in response.text and "asyncpg" not in response.text
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.headers["retry-after"] == "7"
            assert ready.json()["checks"]["database"] == {"status": "failing", "error": "cannot be reached"}
            assert (await client.get("/healthz")).status_code == 200  # alive: waiting is right, not a restart

            cluster.start()
            deadline = time.monotonic() + 30
            while True:  # no restart of ours: the pool reconnects on its own
                response = await client.post("/graphql", json=query, headers=headers)
                if response.status_code == 200:
                    break
                assert response.status_code == 503, response.text
                assert time.monotonic() < deadline, "the server did not recover"
                await asyncio.sleep(0.1)
            assert response.json()["data"]["viewer"] == {"id": tenant.users["reader"]}
            assert (await client.get("/readyz")).status_code == 200


async def test_the_private_cluster_can_be_migrated(cluster: PrivateCluster) -> None:
    """The fixture's own check: what the outage test stands on."""
    from persistence.database import Database

    db = Database(cluster.url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
