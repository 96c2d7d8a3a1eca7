"""The database layer on SQLite and PostgreSQL alike: migrations, exact money, versioned updates and the
gapless per-company event sequence."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, select

from domain.errors import DomainError
from domain.events import LineItemUpdated
from domain.status import ExportStatus
from persistence.database import Database
from persistence.migrate import is_current
from persistence.tables import budgets, events, line_items, metadata
from resolvers.budget_state import budget_state
from tests.support import make_services, make_tenant


async def test_migrations_create_exactly_the_declared_schema(engine_db: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, metadata))

    async with engine_db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await is_current(engine_db)


@pytest.mark.parametrize("amount", ["0.01", "9999999999999.99", "-1234567890123.45", "0.00"])
async def test_money_round_trips_exactly(engine_db: Database, amount: str) -> None:
    tenant = await make_tenant(make_services(engine_db))
    code, ctype = next(iter(tenant.cost_codes.values())), next(iter(tenant.cost_types.values()))
    await tenant.ok(
        "admin",
        """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) {
        lineItem { id } userErrors { code } } }""",
        i={"budgetId": tenant.budget_id, "item": {"costCodeId": code, "costTypeId": ctype, "originalAmount": amount}},
    )
    async with engine_db.read() as conn:
        stored = (
            await conn.execute(select(line_items.c.original_amount).where(line_items.c.budget_id == tenant.budget_id))
        ).scalar_one()
        total = (
            await conn.execute(
                select(func.sum(line_items.c.original_amount)).where(line_items.c.budget_id == tenant.budget_id)
            )
        ).scalar_one()
    assert isinstance(stored, Decimal)
    assert stored == Decimal(amount)
    assert str(stored) == amount
    assert total == Decimal(amount)


async def test_a_stale_version_is_refused_and_nothing_is_written(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    async with engine_db.unit_of_work() as uow:
        row = await uow.budgets.get_for_update(tenant.company_id, tenant.budget_id)
        assert row is not None
        locked = dataclasses.replace(budget_state(row), locked=True)
        await uow.budgets.save(row, locked)
        with pytest.raises(DomainError) as refused:
            await uow.budgets.save(row, dataclasses.replace(locked, locked=False))  # same old version again
        assert refused.value.code == "VERSION_CONFLICT"
        await uow.commit()
    async with engine_db.read() as conn:
        version, locked = (
            await conn.execute(select(budgets.c.version, budgets.c.locked).where(budgets.c.id == tenant.budget_id))
        ).one()
    assert (version, locked) == (2, True)


async def test_concurrent_writers_get_a_gapless_company_sequence(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    async with engine_db.read() as conn:
        start = (
            await conn.execute(select(func.count()).select_from(events).where(events.c.company_id == tenant.company_id))
        ).scalar_one()

    async def append_one(i: int) -> int:
        async with engine_db.unit_of_work() as uow:
            seq = await uow.events.append(
                tenant.company_id,
                LineItemUpdated(
                    project_id=tenant.project_id,
                    budget_id=tenant.budget_id,
                    status=ExportStatus.NOT_SENT,
                    line_item_id=f"li_{i}",
                ),
                at=datetime.now(UTC),
            )
            await asyncio.sleep(0)  # let other transactions interleave before the commit
            await uow.commit()
            return seq

    sequences = await asyncio.gather(*(append_one(i) for i in range(20)))
    assert sorted(sequences) == list(range(start + 1, start + 21))
    async with engine_db.read() as conn:
        stored = list(
            (
                await conn.execute(
                    select(events.c.sequence)
                    .where(events.c.company_id == tenant.company_id)
                    .order_by(events.c.sequence)
                )
            ).scalars()
        )
    assert stored == list(range(1, start + 21))


async def test_unit_of_work_rolls_back_everything_on_error(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    with pytest.raises(RuntimeError):
        async with engine_db.unit_of_work() as uow:
            row = await uow.budgets.get_for_update(tenant.company_id, tenant.budget_id)
            assert row is not None
            await uow.budgets.save(row, dataclasses.replace(budget_state(row), locked=True))
            raise RuntimeError("boom")
    async with engine_db.read() as conn:
        locked = (await conn.execute(select(budgets.c.locked).where(budgets.c.id == tenant.budget_id))).scalar_one()
    assert locked is False


async def test_a_unit_of_work_cancelled_again_while_it_closes_still_returns_its_connection(engine_db: Database) -> None:
    """A stop cancels a task again and again until it ends (app.tasks.cancel_and_wait). The unit of work's
    rollback and close finish anyway and the connection goes back to the pool: an interrupted rollback left
    the close undone and SQLAlchemy threw the connection away (a reconnect each time), and a close abandoned
    with its transaction open would hold SQLite's write lock until the garbage collector found it."""
    tenant = await make_tenant(make_services(engine_db))
    wrote = asyncio.Event()
    discarded: list[object] = []
    event.listen(engine_db.engine.sync_engine, "invalidate", lambda *args: discarded.append(args[-1]))
    event.listen(engine_db.engine.sync_engine, "close", lambda *args: discarded.append("closed"))

    async def writes_then_waits() -> None:
        async with engine_db.unit_of_work() as uow:
            await uow.connection.execute(budgets.update().where(budgets.c.id == tenant.budget_id).values(version=7))
            wrote.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(writes_then_waits())
    await wrote.wait()
    cancels = 0
    while not task.done():
        task.cancel()  # again on each turn of the loop, during the rollback and the close too
        cancels += 1
        await asyncio.sleep(0)
    assert task.cancelled()
    assert cancels > 1, "the close finished within one turn: this test did not cancel it again"
    assert engine_db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert discarded == []  # back in the pool, rolled back, not thrown away for a new one
    async with engine_db.unit_of_work() as uow:  # a writer gets in at once (SQLite: no lock left behind)
        await uow.connection.execute(budgets.update().where(budgets.c.id == tenant.budget_id).values(version=8))
        await uow.commit()
    async with engine_db.read() as conn:
        assert (await conn.execute(select(budgets.c.version).where(budgets.c.id == tenant.budget_id))).scalar() == 8
