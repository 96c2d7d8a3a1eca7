"""Migration 0008 replaces the lines' (budget_id, position) index with (budget_id, position, id), which the
line pages read along, on both engines, and goes down and up again cleanly, keeping every line."""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from persistence.database import Database
from persistence.migrate import is_current
from persistence.tables import line_items
from tests.erp.workflow import add_line
from tests.persistence.migrating import migration_to
from tests.support import make_services, make_tenant

OLD = ("ix_budget_line_items_budget_position", ["budget_id", "position"])
NEW = ("ix_budget_line_items_budget_position_id", ["budget_id", "position", "id"])



def _line_indexes(connection: Connection) -> set[tuple[str | None, tuple[str | None, ...]]]:
    return {
        (index["name"], tuple(index["column_names"]))
        for index in inspect(connection).get_indexes("budget_line_items")
        if "position" in index["column_names"]
    }


async def test_the_line_page_index_comes_and_goes_and_the_lines_stay(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    for sub_job in ("A", "B", "C"):
        await add_line(tenant, "03-300", "L", "10.00", sub_job)
    async with engine_db.read() as conn:
        before = set((await conn.execute(select(line_items.c.id, line_items.c.position))).all())
        assert await conn.run_sync(_line_indexes) == {(NEW[0], tuple(NEW[1]))}

    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("0007", down=True))
        assert await conn.run_sync(_line_indexes) == {(OLD[0], tuple(OLD[1]))}
    assert not await is_current(engine_db)
    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("head", down=False))
        assert await conn.run_sync(_line_indexes) == {(NEW[0], tuple(NEW[1]))}
    assert await is_current(engine_db)

    async with engine_db.read() as conn:
        assert set((await conn.execute(select(line_items.c.id, line_items.c.position))).all()) == before
