"""Persistence tests run on both engines, each on a database of its own: SQLite in a temp file and
PostgreSQL in `budgetbridge_persistence` (created on the server of BUDGETBRIDGE_TEST_POSTGRES_URL).
Without PostgreSQL they skip locally; under CI=true they fail, because CI must prove both engines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.database import Database
from tests.support import fresh_database, in_ci, postgres_url

# One database per test session, so two suites running at once (a developer and CI) never drop each
# other's schema; dropped again when the session ends.
PERSISTENCE_DB = f"budgetbridge_persistence_{os.getpid()}"


def _server_url() -> URL:
    return make_url(postgres_url()).set(drivername="postgresql+asyncpg")


async def _on_maintenance_db(statement: str) -> None:
    admin = create_async_engine(_server_url().set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def _postgres_persistence_url() -> str:
    await _on_maintenance_db(f'DROP DATABASE IF EXISTS "{PERSISTENCE_DB}" WITH (FORCE)')
    await _on_maintenance_db(f'CREATE DATABASE "{PERSISTENCE_DB}"')
    return _server_url().set(database=PERSISTENCE_DB).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def postgres_persistence_url() -> AsyncIterator[str | OSError]:
    try:
        url: str | OSError = await _postgres_persistence_url()
    except OSError as exc:
        url = exc
    yield url
    if isinstance(url, str):
        await _on_maintenance_db(f'DROP DATABASE IF EXISTS "{PERSISTENCE_DB}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
async def engine_db(request: pytest.FixtureRequest, postgres_persistence_url: str | OSError) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{os.path.join(tempfile.mkdtemp(prefix='bb-persist-'), 'p.db')}"
    elif isinstance(postgres_persistence_url, OSError):
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {postgres_persistence_url}")
        pytest.skip(f"PostgreSQL not reachable ({postgres_persistence_url}); CI runs these")
    else:
        url = postgres_persistence_url
    db = await fresh_database(url)
    try:
        yield db
    finally:
        await db.dispose()
