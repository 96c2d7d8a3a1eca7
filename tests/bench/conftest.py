"""The benches compare against raw asyncpg, so their smoke tests need PostgreSQL: the database named by
BUDGETBRIDGE_BENCH_DATABASE_URL (WIPED), else `budgetbridge_bench_<pid>` created on the server of
BUDGETBRIDGE_TEST_POSTGRES_URL for the session and dropped after. Without PostgreSQL they skip locally; under
CI=true they fail."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bench.measure import BENCH_DATABASE_ENV
from tests.support import in_ci, on_maintenance_db, postgres_server_url

BENCH_DB = f"budgetbridge_bench_{os.getpid()}"


@pytest.fixture(scope="session")
async def bench_database_url() -> AsyncIterator[str]:
    given = os.environ.get(BENCH_DATABASE_ENV)
    if given:
        yield given
        return
    try:
        await on_maintenance_db(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await on_maintenance_db(f'CREATE DATABASE "{BENCH_DB}"')
    except OSError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable ({exc}); CI runs these")
    yield postgres_server_url(BENCH_DB).render_as_string(hide_password=False)
    await on_maintenance_db(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
