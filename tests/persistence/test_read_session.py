"""A read session on both engines: every read inside it shares one pooled connection, concurrent ones too,
and the connection goes back to the pool when the session ends, however it ends (an error, a cancellation),
and when a read fails (its transaction may be aborted: the next read opens another)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from persistence.database import Database
from persistence.reads import ReadStore
from tests.database_use import database_use
from tests.support import Tenant, make_services, make_tenant


async def tenant_of(db: Database) -> Tenant:
    services = make_services(db)
    try:
        return await make_tenant(services)
    finally:
        await services.connectors.aclose()


async def some_reads(reads: ReadStore, tenant: Tenant) -> None:
    """What a request's loaders do: several reads at once, as concurrent tasks."""
    company = tenant.company_id
    found = await asyncio.gather(
        reads.users(list(tenant.users.values()), company),
        reads.projects([tenant.project_id], company),
        reads.budgets([tenant.budget_id], company),
        reads.all_access(tenant.users["locker"]),
        reads.contents_of_budgets([tenant.budget_id]),
        reads.line_item_pages([tenant.budget_id], after=None, limit=10),
    )
    assert len(found[0]) == len(tenant.users) and found[1] and found[2]


async def test_every_read_of_a_session_shares_one_connection_even_concurrent_ones(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session() as session:
            await some_reads(reads, tenant)
            async with reads.session() as inner:  # a nested session is the same one
                assert inner is session
                assert await reads.budgets([tenant.budget_id], tenant.company_id)
            assert use.checkins == 0  # still held: the outer session has not ended
    assert (use.checkouts, use.checkins, session.opened) == (1, 1, 1)

    with database_use(engine_db) as use:  # outside a session, each read takes a connection of its own
        await some_reads(reads, tenant)
    assert use.checkouts == use.checkins >= 6


async def test_a_session_opens_no_connection_until_it_reads(engine_db: Database) -> None:
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session() as session:
            pass
    assert (use.checkouts, session.opened) == (0, 0)


async def test_a_failed_read_gives_its_connection_back_and_the_next_read_opens_another(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session():
            with pytest.raises(Exception, match="no_such_table"):
                await reads._run(lambda conn: conn.execute(text("SELECT * FROM no_such_table")))
            assert use.checkins == 1
            # On PostgreSQL the failed statement aborted its transaction: a shared connection that kept it
            # would refuse every later read of the request.
            assert await reads.budgets([tenant.budget_id], tenant.company_id)
    assert (use.checkouts, use.checkins) == (2, 2)


async def test_a_session_that_fails_gives_its_connection_back(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use, pytest.raises(RuntimeError, match="resolver failed"):
        async with reads.session():
            await some_reads(reads, tenant)
            raise RuntimeError("resolver failed")
    assert (use.checkouts, use.checkins) == (1, 1)


async def test_a_cancelled_request_gives_its_connection_back(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    has_read = asyncio.Event()

    async def request() -> None:
        async with reads.session():
            await some_reads(reads, tenant)
            has_read.set()
            await asyncio.Event().wait()  # a client that never finishes

    with database_use(engine_db) as use:
        task = asyncio.create_task(request())
        await has_read.wait()
        assert (use.checkouts, use.checkins) == (1, 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (use.checkouts, use.checkins) == (1, 1)


async def test_a_read_cancelled_midway_gives_the_connection_back(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session():
            task = asyncio.create_task(some_reads(reads, tenant))
            await asyncio.sleep(0)  # the reads have started and wait for the connection or the database
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await reads.budgets([tenant.budget_id], tenant.company_id)  # the session still reads
    assert use.checkouts == use.checkins >= 1


async def test_reads_a_request_leaves_running_take_their_own_connection_once_it_ended(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    go_on = asyncio.Event()

    async def later() -> int:
        await go_on.wait()
        return len(await reads.budgets([tenant.budget_id], tenant.company_id))

    with database_use(engine_db) as use:
        async with reads.session():
            left_running = asyncio.create_task(later())  # inherits the session
        go_on.set()
        assert await left_running > 0
    assert (use.checkouts, use.checkins) == (1, 1)


async def test_a_unit_of_work_in_a_session_goes_on_on_its_connection(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session() as session:
            before = await reads.latest_sequence(tenant.company_id)
            async with engine_db.unit_of_work(lender=session) as uow:
                await uow.companies.touch(tenant.company_id)
                await uow.commit()
            assert await reads.company_version(tenant.company_id) is not None  # after the commit, on it again
            assert (use.checkouts, use.checkins) == (1, 0)
    assert (use.checkouts, use.checkins) == (1, 1) and before == await reads.latest_sequence(tenant.company_id)


async def test_a_failed_unit_of_work_gives_its_connection_to_the_pool_and_nothing_it_wrote_stays(
    engine_db: Database,
) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    revision = await reads.company_version(tenant.company_id)
    with database_use(engine_db) as use:
        async with reads.session() as session:
            await reads.latest_sequence(tenant.company_id)
            with pytest.raises(RuntimeError):
                async with engine_db.unit_of_work(lender=session) as uow:
                    await uow.companies.touch(tenant.company_id)
                    raise RuntimeError("refused")
            assert (use.checkouts, use.checkins) == (1, 1)  # rolled back by the pool, maybe broken
            assert await reads.company_version(tenant.company_id) == revision  # on a new one
            assert (use.checkouts, use.checkins) == (2, 1)
    assert (use.checkouts, use.checkins) == (2, 2)


async def test_a_read_while_a_unit_of_work_holds_the_sessions_connection_takes_another(engine_db: Database) -> None:
    tenant = await tenant_of(engine_db)
    reads = ReadStore(engine_db)
    with database_use(engine_db) as use:
        async with reads.session() as session:
            async with engine_db.unit_of_work(lender=session) as uow:
                await uow.companies.touch(tenant.company_id)
                assert await reads.latest_sequence(tenant.company_id) >= 0
                await uow.commit()
            await reads.latest_sequence(tenant.company_id)
            # The unit's connection went back to the pool: the session had opened another meanwhile.
            assert (use.checkouts, use.checkins) == (2, 1)
    assert (use.checkouts, use.checkins) == (2, 2)
