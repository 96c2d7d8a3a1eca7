"""Engine creation for both supported databases, and the unit of work every change runs in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from domain.budget import BudgetState
from domain.errors import ConcurrentChangeError, VersionConflictError
from domain.events import BudgetEvent
from persistence.job_queue import SqlJobQueue
from persistence.notifications import SqlNotificationContext, SqlNotificationOutbox
from persistence.records import BudgetRecord
from persistence.repositories import (
    SqlAccess,
    SqlBudgets,
    SqlCompanies,
    SqlCostCodes,
    SqlCostTypes,
    SqlErpRequests,
    SqlEventLog,
    SqlExportEntries,
    SqlIdempotency,
    SqlLineItems,
    SqlModifications,
    SqlProjects,
    SqlUsers,
)
from persistence.types import UnstorableValueError, refuse_unstorable_parameters
from persistence.unit_of_work import AbstractUnitOfWork, TransactionConflictError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

# PostgreSQL's SQLSTATEs for "run the transaction again": serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def is_transaction_conflict(exc: BaseException) -> bool:
    """A deadlock or serialisation failure (PostgreSQL), or a database busy with another writer (SQLite, whose
    WAL refuses a reader's upgrade to writer at once when another connection wrote meanwhile)."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if getattr(candidate, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
    return "database is locked" in str(orig)


class DatabaseUrlError(ValueError):
    pass


def normalise_url(url: str) -> str:
    """Accept the common spellings (postgres://, postgresql://, sqlite:///) and pick our async drivers."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with its own wording
        raise DatabaseUrlError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# A pooled connection idle this long is pinged before use: after a database restart or a dropped connection
# (which happen while nothing runs) the request gets a fresh one instead of an error. A connection in
# steady use is not pinged: a failure there surfaces as SERVICE_UNAVAILABLE once, and SQLAlchemy then drops
# the pool's connections and the next request reconnects.
IDLE_PING_SECONDS = 2.0
_USED_AT = "budgetbridge_used_at"


def _mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info[_USED_AT] = time.monotonic()


def _idle_pinger(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_USED_AT, 0.0) < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another, up to three times.
            raise DisconnectionError(f"an idle pooled connection is dead: {exc}") from exc

    return ping_if_idle


class Database:
    """Owns the engine. SQLite allows one writer at a time, so writes in this process queue on a lock
    instead of failing with 'database is locked' when two transactions upgrade to writing together."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(self.url, echo=echo)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # No ping on every checkout (a round trip per request on the hot path): only a connection that sat
            # idle for IDLE_PING_SECONDS is pinged first (see _idle_pinger).
            self.engine = create_async_engine(self.url, echo=echo, pool_size=10, max_overflow=20)
            event.listen(self.engine.sync_engine, "connect", _mark_used)
            event.listen(self.engine.sync_engine, "checkin", _mark_used)
            event.listen(self.engine.sync_engine, "checkout", _idle_pinger(self.engine.dialect))
        # The same refusal on both engines for text neither should store (NUL, lone surrogates): a safety net
        # below the input checks, which name the field at fault.
        event.listen(self.engine.sync_engine, "before_cursor_execute", refuse_unstorable_parameters)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def unit_of_work(
        self, on_events: Callable[[str], None] = lambda company_id: None, lender: ConnectionLender | None = None
    ) -> SqlUnitOfWork:
        return SqlUnitOfWork(self, on_events, lender)

    async def dispose(self) -> None:
        await self.engine.dispose()


class ConnectionLender(Protocol):
    """Where a unit of work may take its connection instead of the pool: a request's read session
    (persistence.reads.ReadSession), so that the request, its mutation and its payload use one connection."""

    async def lend(self) -> AsyncConnection:
        """A connection for the unit of work (a transaction the lender began may be open on it: it goes on)."""

    async def take_back(self, conn: AsyncConnection, reusable: bool) -> None:
        """The unit of work is over: `conn` is in no transaction when `reusable`; else it may be broken."""


class SqlUnitOfWork(AbstractUnitOfWork):
    """One database transaction, with the SQL repositories bound to its connection.

    A unique-key violation (a concurrent request won the same idempotency key or line key) leaves as
    ConcurrentChangeError, a refusal the service layer understands, never as a driver exception; a deadlock
    or serialisation failure leaves as TransactionConflictError, for the runner to run the unit again."""

    def __init__(
        self,
        db: Database,
        on_events: Callable[[str], None] = lambda company_id: None,
        lender: ConnectionLender | None = None,
    ) -> None:
        super().__init__(on_events)
        self._db = db
        self._lender = lender
        self._conn: AsyncConnection | None = None

    async def _begin(self) -> None:
        if self._db._write_lock is not None:
            await self._db._write_lock.acquire()
        try:
            conn = self._conn = await (self._lender.lend() if self._lender else self._db.engine.connect())
            if not conn.in_transaction():
                # A lent connection may be in the transaction of the request's reads (its authentication):
                # the unit goes on in it (one BEGIN less). Under READ COMMITTED, and on SQLite (no snapshot
                # before the first write), that changes nothing of what the unit sees.
                await conn.begin()
        except BaseException:
            if self._db._write_lock is not None:
                self._db._write_lock.release()
            raise
        self.companies = SqlCompanies(conn)
        self.users = SqlUsers(conn)
        self.access = SqlAccess(conn)
        self.projects = SqlProjects(conn)
        self.cost_codes = SqlCostCodes(conn)
        self.cost_types = SqlCostTypes(conn)
        self.budgets = self._budgets = SqlBudgets(conn)
        self.line_items = SqlLineItems(conn)
        self.modifications = SqlModifications(conn)
        self.requests = SqlErpRequests(conn)
        self.entries = SqlExportEntries(conn)
        self.jobs = SqlJobQueue(conn)
        self.events = SqlEventLog(conn)
        self.idempotency = SqlIdempotency(conn)
        self.notifications = SqlNotificationOutbox(conn)
        self.notification_context = SqlNotificationContext(conn)

    async def save_with_event(
        self, before: BudgetRecord, after: BudgetState, company_id: str, event: BudgetEvent, at: datetime
    ) -> BudgetRecord:
        if self._db.is_sqlite:  # no UPDATE inside a WITH
            return await super().save_with_event(before, after, company_id, event, at)
        self.events.lock_order.take_counter()
        found = await self._budgets.save_with_event(before, after, company_id, event, at)
        if found is None:
            raise VersionConflictError(actual=None)
        saved, sequence = found
        self.events.appended(company_id, event, at, sequence)
        return saved

    @property
    def connection(self) -> AsyncConnection:
        """For persistence's own modules (the embedded ERP's ledger, admin set-up); never above it."""
        assert self._conn is not None, "the unit of work has not begun"
        return self._conn

    async def _commit(self) -> None:
        try:
            await self.connection.commit()
        except IntegrityError:
            raise ConcurrentChangeError() from None
        except DBAPIError as exc:
            if is_transaction_conflict(exc):
                raise TransactionConflictError(str(exc.orig)) from exc
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        if isinstance(exc, IntegrityError):
            raise ConcurrentChangeError() from None
        if isinstance(exc, StatementError) and isinstance(exc.orig, UnstorableValueError):
            raise exc.orig from None  # the bind check's own error, not SQLAlchemy's wrapper of it
        if exc is not None and is_transaction_conflict(exc):
            raise TransactionConflictError(str(getattr(exc, "orig", exc))) from exc

    async def _end(self) -> None:
        try:
            if self._conn is not None and self._lender is not None:
                await run_to_completion(self._give_back(self._conn))
            elif self._conn is not None:
                await run_to_completion(self._conn.close())  # closing rolls back what was not committed
        finally:
            if self._db._write_lock is not None:
                self._db._write_lock.release()


    async def _give_back(self, conn: AsyncConnection) -> None:
        """A committed unit's connection goes back to its lender for more reads (anything begun after the
        commit rolled back); one that failed goes back to the pool, which rolls it back or drops it."""
        assert self._lender is not None
        reusable = self.committed
        if reusable and conn.in_transaction():
            try:
                await conn.rollback()
            except Exception:
                reusable = False
        await self._lender.take_back(conn, reusable)


async def run_to_completion(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run a clean-up to its end even when the calling task is cancelled meanwhile (a client gone, a stop),
    then let the cancellation through. An abandoned close leaves the connection checked out with its
    transaction open: on SQLite the database's write lock, on PostgreSQL a pool slot, until the garbage
    collector happens to find it, which frozen objects (app.live.CollectorGuard) it never does.
    SQLAlchemy's own context managers do the same for their connections."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True  # wait on while the clean-up runs, then let the cancellation through
    if cancelled:
        raise asyncio.CancelledError
    task.result()
