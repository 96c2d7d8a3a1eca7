"""Persistence tests run on both engines, each on a database of its own: SQLite in a temp file and
PostgreSQL in `budgetbridge_persistence` (created on the server of BUDGETBRIDGE_TEST_POSTGRES_URL).
Without PostgreSQL they skip locally; under CI=true they fail, because CI must prove both engines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.database import Database
from tests.support import fresh_database, in_ci, postgres_url

PERSISTENCE_DB = "budgetbridge_persistence"


async def _postgres_persistence_url() -> str:
    server = make_url(postgres_url()).set(drivername="postgresql+asyncpg")
    admin = create_async_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = (await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                         {"n": PERSISTENCE_DB})).first()
            if exists is None:
                await conn.execute(text(f'CREATE DATABASE "{PERSISTENCE_DB}"'))
    finally:
        await admin.dispose()
    return server.set(database=PERSISTENCE_DB).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def engine_db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{os.path.join(tempfile.mkdtemp(prefix='bb-persist-'), 'p.db')}"
    else:
        try:
            url = await _postgres_persistence_url()
        except OSError as exc:
            if in_ci():
                pytest.fail(f"PostgreSQL is required in CI and is not reachable: {exc}")
            pytest.skip(f"PostgreSQL not reachable ({exc}); CI runs these")
    db = await fresh_database(url)
    try:
        yield db
    finally:
        await db.dispose()
