"""Migration 0005 adds the users' access columns (disabled, tokens valid after) on both engines, and goes down
and up again cleanly, keeping every user."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from app import admin
from persistence.database import Database
from persistence.migrate import is_current
from persistence.tables import users
from tests.persistence.migrating import migration_to
from tests.support import make_services, make_tenant

ACCESS_COLUMNS = {"disabled_at", "tokens_valid_after"}
AT = datetime(2026, 12, 1, 17, 0, 0, 250_000, tzinfo=UTC)



def _user_columns(connection: Connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("users")}


async def test_the_access_columns_come_and_go_and_the_users_stay(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    user_id = tenant.users["admin"]
    async with engine_db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, user_id, True, AT)
        valid_after = await admin.revoke_tokens(uow.connection, user_id, AT)
        await uow.commit()
    async with engine_db.read() as conn:
        stored = (await conn.execute(select(users.c.disabled_at, users.c.tokens_valid_after)
                                     .where(users.c.id == user_id))).one()
    assert (stored.disabled_at, stored.tokens_valid_after) == (AT, valid_after)
    assert valid_after == datetime(2026, 12, 1, 17, 0, 1, tzinfo=UTC)
    async with engine_db.read() as conn:
        before = set((await conn.execute(select(users.c.id, users.c.email))).all())

    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("0004", down=True))
        assert ACCESS_COLUMNS.isdisjoint(await conn.run_sync(_user_columns))
    assert not await is_current(engine_db)
    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("head", down=False))
        assert await conn.run_sync(_user_columns) >= ACCESS_COLUMNS
    assert await is_current(engine_db)

    async with engine_db.read() as conn:
        assert set((await conn.execute(select(users.c.id, users.c.email))).all()) == before
        again = (await conn.execute(select(users.c.disabled_at, users.c.tokens_valid_after)
                                    .where(users.c.id == user_id))).one()
    assert (again.disabled_at, again.tokens_valid_after) == (None, None)  # access starts afresh: nothing taken back
