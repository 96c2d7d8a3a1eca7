"""Persistence tests run on both engines, each on a database of its own: SQLite in a temp file and
PostgreSQL in `budgetbridge_persistence` (created on the server of BUDGETBRIDGE_TEST_POSTGRES_URL).
Without PostgreSQL they skip locally; under CI=true they fail, because CI must prove both engines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest

from persistence.database import Database
from tests.support import fresh_database, in_ci, on_maintenance_db, postgres_server_url

# One database per test session, so two suites running at once (a developer and CI) never drop each
# other's schema; dropped again when the session ends.
PERSISTENCE_DB = f"budgetbridge_persistence_{os.getpid()}"


async def _postgres_persistence_url() -> str:
    await on_maintenance_db(f'DROP DATABASE IF EXISTS "{PERSISTENCE_DB}" WITH (FORCE)')
    await on_maintenance_db(f'CREATE DATABASE "{PERSISTENCE_DB}"')
    return postgres_server_url(PERSISTENCE_DB).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def postgres_persistence_url() -> AsyncIterator[str | OSError]:
    try:
        url: str | OSError = await _postgres_persistence_url()
    except OSError as exc:
        url = exc
    yield url
    if isinstance(url, str):
        await on_maintenance_db(f'DROP DATABASE IF EXISTS "{PERSISTENCE_DB}" WITH (FORCE)')


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
