"""Liveness and readiness, for load balancers, orchestrators and operators.

`/healthz` answers while the process serves requests at all (restart it when it does not). `/readyz` says
whether this process can do its work now: the database answers and its schema is current, the broadcast
backend (Redis or PostgreSQL, when configured) is connected, and the export worker and notifier run when they
run in this process. Each check is reported; any failing one makes it HTTP 503 (send no traffic here for
now), and it turns 200 again by itself when the dependency is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.errors import is_database_outage
from persistence.migrate import alembic_config

if TYPE_CHECKING:
    from app.main import Runtime

log = logging.getLogger("budgetbridge.health")

DATABASE_TIMEOUT_SECONDS = 5.0  # an unanswering database host is "not ready", not a hung probe
OK, FAILING, NOT_HERE = "ok", "failing", "not running here"


def _check(ok: bool, error: str, **detail: Any) -> dict[str, Any]:
    return {"status": OK, **detail} if ok else {"status": FAILING, "error": error, **detail}


@functools.cache
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _database(runtime: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The database and migrations checks: one query answers both. (Alembic's own check would log two INFO
    lines per probe.)"""
    not_current = "the schema is not current: run `budgetbridge migrate`"
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS), runtime.db.read() as conn:
            revision = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:
        log.debug("readiness: database check failed: %r", exc)
        if isinstance(exc, TimeoutError) or is_database_outage(exc):
            return _check(False, "cannot be reached"), {"status": "unknown"}
        return _check(True, ""), _check(False, not_current)  # it answered: no alembic_version table
    return _check(True, ""), _check(revision == _head_revision(), not_current)


def _background(alive: bool | None) -> dict[str, Any]:
    if alive is None:
        return {"status": NOT_HERE}
    return _check(alive, "stopped")


async def readiness(runtime: Runtime) -> dict[str, Any]:
    database, migrations = await _database(runtime)
    backend = runtime.settings.broadcast_url.split("://", 1)[0]
    checks = {
        "database": database,
        "migrations": migrations,
        "broadcast": _check(runtime.live.connected.is_set(), "not connected", backend=backend),
        "exportWorker": _background(runtime.worker.alive),
        "notifier": _background(runtime.notifier.alive if runtime.notifier is not None else None),
    }
    ready = all(check["status"] in (OK, NOT_HERE) for check in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    report = await readiness(runtime)
    ready = report["status"] == "ready"
    was_ready = runtime.extra.get("ready", True)
    if ready != was_ready:  # once per change, not once per probe
        failing = sorted(name for name, check in report["checks"].items() if check["status"] == FAILING)
        if ready:
            log.info("ready again")
        else:
            log.warning("not ready: %s", ", ".join(failing), extra={"failing": failing})
        runtime.extra["ready"] = ready
    if ready:
        return JSONResponse(report)
    return JSONResponse(report, status_code=503, headers={"retry-after": str(runtime.settings.retry_after_seconds)})


def routes() -> list[BaseRoute]:
    return [Route("/healthz", healthz), Route("/readyz", readyz)]
