from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import pytest

from persistence.database import Database
from resolvers.context import Services
from tests import sqlite_locks
from tests.support import Tenant, fresh_database, make_services, make_tenant, suite_database_url
from tests.waiting import cancel_until_done, watching

log = logging.getLogger("tests")


@pytest.fixture(autouse=True)
async def leaves_the_database_writable(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Set up before, so torn down after, no_task_outlives_its_test: a leaked task's transaction is gone by
    then. A lock that a garbage collection releases (a dropped connection kept by a frozen cycle) is logged
    and released. Otherwise no test leaves the shared SQLite file write-locked (see tests.sqlite_locks): the
    test that did fails here, naming the open transaction or the process, and the lock is released (this
    process's transactions rolled back, processes this session started and left running killed) so the
    tests after it are not its victims."""
    yield
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    path = database.engine.url.database
    if not database.is_sqlite or not path:
        return
    refused = await asyncio.to_thread(sqlite_locks.writer_refused, path, 10.0)
    if refused is None:
        return
    # Garbage first: a connection dropped with its transaction open is released when the collector finalizes
    # it, which it never does for objects a live hub of an earlier PostgreSQL app froze in this shared
    # process (servers on SQLite do not freeze: app.live.CollectorGuard).
    gc.unfreeze()
    gc.collect()
    if await asyncio.to_thread(sqlite_locks.writer_refused, path, 5.0) is None:
        log.warning("the SQLite database was write-locked by garbage (%s): released by a collection", refused)
        return
    locks = sqlite_locks.file_locks(path)
    raw = sqlite_locks.raw_connections_in_transaction()
    threads = sqlite_locks.describe_threads()
    holders = sqlite_locks.release_in_process_writers()
    tasks = sqlite_locks.describe_tasks()
    others = sqlite_locks.other_processes_with(path)
    sqlite_locks.stop_our_processes(others)
    released = await asyncio.to_thread(sqlite_locks.writer_refused, path, 10.0) is None
    pytest.fail(
        f"the test left the SQLite database write-locked ({refused})"
        + (" (released)" if released else " (still locked after rolling back this process's transactions and "
           "killing what this session started)")
        + "\nopen transactions:\n  " + ("\n  ".join(holders) or "none in this process")
        + "\nother processes with the file open:\n  " + ("\n  ".join(map(str, others)) or "none")
        + "\nfile locks:\n  " + ("\n  ".join(locks) or "none")
        + "\nother sqlite3 connections in a transaction:\n  " + ("\n  ".join(raw) or "none")
        + "\nthreads:\n  " + "\n  ".join(threads)
        + "\ntasks:\n  " + "\n  ".join(tasks)
    )


@pytest.fixture(autouse=True)
async def no_task_outlives_its_test() -> AsyncIterator[None]:
    """Whatever a test starts stops with it (all tests share one event loop): a task left running would go
    on acting in later tests (a hub reconnecting and logging, a worker claiming their exports) and its
    connections would be garbage-collected there, failing an unrelated test with a ResourceWarning.

    Leaked tasks are cancelled. The leak fails the test, unless the app itself said it left a task behind
    (app.tasks: "... did not stop within N s; leaving it behind"): that is a known production issue (a
    cancellation swallowed by Python 3.11's asyncio.wait_for, see tests.live_server.reap), logged here."""
    with watching("budgetbridge.tasks") as app_tasks:
        before = asyncio.all_tasks()
        yield
        await asyncio.sleep(0)  # one turn of the loop: tasks cancelled during teardown finish now
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:
        # A clean-up that is already under way (SQLAlchemy closes a connection the garbage collector just
        # found in a task of its own) finishes by itself: waited for, bounded, it is no leak. A loop that was
        # left running (a worker, a hub) does not finish, and fails the test.
        await asyncio.wait(leaked, timeout=2)
        leaked = [t for t in leaked if not t.done()]
        # SQLAlchemy's own close of such a connection can stay blocked on aiosqlite's thread; it is the
        # library's clean-up, not a loop of ours: cancelled quietly (a known gap: which path drops the
        # connection unclosed is not pinned down yet).
        library_cleanup = [t for t in leaked if "_terminate_graceful_close" in repr(t.get_coro())]
        for task in library_cleanup:
            await cancel_until_done(task)
        leaked = [t for t in leaked if t not in library_cleanup]
    for task in leaked:
        await cancel_until_done(task)
    if leaked and any("leaving it behind" in m for m in app_tasks.messages()):
        log.warning("cancelled what the app's shutdown left behind: %s", "; ".join(repr(t) for t in leaked))
        return
    assert not leaked, "tasks outlived the test: " + "; ".join(repr(t) for t in leaked)


@pytest.fixture(scope="session")
async def db() -> AsyncIterator[Database]:
    database = await fresh_database(suite_database_url())
    yield database
    await database.dispose()


@pytest.fixture
async def services(db: Database) -> AsyncIterator[Services]:
    built = make_services(db)
    yield built
    await built.connectors.aclose()  # connectors may hold HTTP clients


@pytest.fixture
async def tenant(services: Services) -> Tenant:
    return await make_tenant(services)
