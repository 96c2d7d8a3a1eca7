"""Pooled PostgreSQL connections are pinged only after sitting idle: a request on a busy server costs no
ping round trip, and a connection that died while idle (a database restart, a dropped connection) is
replaced before use instead of failing the request."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bench.measure import counting
from persistence import database
from persistence.database import Database
from tests.support import in_ci


async def pg_database(url: str | OSError) -> Database:
    if isinstance(url, OSError):
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {url}")
        pytest.skip(f"PostgreSQL not reachable ({url}); CI runs these")
    return Database(url)


async def round_trips_of_reads(db: Database, reads: int) -> tuple[int, int]:
    with counting(db.engine.sync_engine) as tally:
        for _ in range(reads):
            async with db.read() as conn:
                await conn.execute(text("SELECT 1"))
    return tally.statements, tally.round_trips


async def test_a_connection_in_steady_use_is_not_pinged(
    postgres_persistence_url: str | OSError, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await pg_database(postgres_persistence_url)
    try:
        await round_trips_of_reads(db, 1)  # the pool's connection, its statement prepared
        # Per read: BEGIN, the statement, and the ROLLBACK when the connection goes back; no ping.
        assert await round_trips_of_reads(db, 3) == (3, 3 * 3)
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # as if idle each time: pinged each time
        statements, round_trips = await round_trips_of_reads(db, 3)
        assert statements == 3 and round_trips >= 3 * 4
    finally:
        await db.dispose()


async def test_a_connection_that_died_while_idle_is_replaced_before_use(
    postgres_persistence_url: str | OSError, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await pg_database(postgres_persistence_url)
    try:
        async with db.read() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killer = Database(db.url)  # another pool: the kill comes from outside, as a restart would
        try:
            async with killer.read() as other:
                assert (await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
        finally:
            await killer.dispose()
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle now
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await db.dispose()
