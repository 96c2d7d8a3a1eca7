"""Liveness and readiness: /healthz answers while the process does; /readyz reports each dependency and turns
503 while one is missing, and 200 again by itself when it is back (a Redis of the test's own is stopped and
started again; a database outage is tests/e2e/test_outage.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.main import create_app
from app.settings import Settings
from persistence.database import Database
from tests.e2e.conftest import GENEROUS_RATE_LIMITS, RunningApp
from tests.e2e.test_scale_out import own_redis
from tests.live_server import reap_runtime
from tests.support import JWT_SECRET
from tests.waiting import eventually

ALL_OK = {
    "database": {"status": "ok"},
    "migrations": {"status": "ok"},
    "broadcast": {"status": "ok", "backend": "memory"},
    "exportWorker": {"status": "ok"},
    "notifier": {"status": "ok"},
}


@pytest.fixture
async def app_on(tmp_path: Path) -> AsyncIterator[Any]:
    """Start the app on settings of the test's choosing; yields a function that returns a client."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> httpx.AsyncClient:
        settings = Settings(jwt_secret=JWT_SECRET, **{"database_url": f"sqlite+aiosqlite:///{tmp_path}/ready.db",
                                                      **GENEROUS_RATE_LIMITS, **overrides})
        application = create_app(settings, run_worker=False)
        manager = LifespanManager(application, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        stack.append((application, manager))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test")
        stack.append(client)
        return client

    try:
        yield start
    finally:
        for item in reversed(stack):
            if isinstance(item, httpx.AsyncClient):
                await item.aclose()
            else:
                application, manager = item
                try:
                    await manager.__aexit__(None, None, None)
                finally:
                    await reap_runtime(getattr(application.state, "runtime", None), "the app")


async def test_liveness_is_ok_while_the_process_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readiness_reports_each_check_and_a_stopped_worker_makes_it_503(
    client: httpx.AsyncClient, running_app: RunningApp
) -> None:
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": ALL_OK})

    await running_app.runtime.worker.stop()
    assert running_app.runtime.worker.alive is False
    stopped = await client.get("/readyz")
    assert stopped.status_code == 503 and stopped.headers["retry-after"] == "5"
    assert stopped.json() == {
        "status": "not ready",
        "checks": {**ALL_OK, "exportWorker": {"status": "failing", "error": "stopped"}},
    }
    assert (await client.get("/healthz")).status_code == 200  # alive all the same: no restart needed


async def test_a_worker_running_elsewhere_is_not_checked_here(app_on: Any) -> None:
    client = await app_on(run_export_worker=False)
    response = await client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["exportWorker"] == checks["notifier"] == {"status": "not running here"}


async def test_a_schema_behind_the_code_is_not_ready(app_on: Any, tmp_path: Path) -> None:
    client = await app_on()
    assert (await client.get("/readyz")).status_code == 200
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/ready.db")
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"] == {
            "status": "failing", "error": "the schema is not current: run `budgetbridge migrate`"
        }
        assert response.json()["checks"]["database"] == {"status": "ok"}
    finally:
        await db.dispose()


async def test_readiness_follows_redis_down_and_up(app_on: Any, tmp_path: Path) -> None:
    async with own_redis(tmp_path) as redis:
        client = await app_on(broadcast_url=redis.url)
        last: dict[str, Any] = {}

        async def readiness_is(status: int, broadcast: str) -> bool:
            response = await client.get("/readyz")
            last.update(response.json())
            return bool(response.status_code == status and last["checks"]["broadcast"]["status"] == broadcast)

        await eventually(lambda: readiness_is(200, "ok"), timeout=30, what=lambda: f"ready: {last}")

        await redis.stop()
        await eventually(lambda: readiness_is(503, "failing"), timeout=30, what=lambda: f"not ready: {last}")
        assert last["checks"]["broadcast"] == {"status": "failing", "error": "not connected", "backend": "redis"}
        assert last["checks"]["database"] == {"status": "ok"}  # only what is missing fails

        await redis.start()
        await eventually(lambda: readiness_is(200, "ok"), timeout=30, what=lambda: f"ready again: {last}")
