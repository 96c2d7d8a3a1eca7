"""The read side's seam: `ReadStore` answers every question the GraphQL reads ask, in records.

One per app (built from the `Database`, hung on `Services.reads`). Each method runs the batched selects of
`persistence.queries` on a read connection and returns records (persistence.records) or domain values; rows
and connections never leave this module. Inside `session()` (one GraphQL request, one execution of a
subscription's event, one re-read of its access) every method shares one connection, opened on first use and
returned when the session ends; outside one, each method takes a pooled connection of its own. Methods that
need several statements for one answer (a line's sync inputs, a budget's export inputs, the related rows of
some events) run them on one connection. Lookups by id take the company and find nothing of another
company; `None` is the system's view across companies (the shared event tail), never a viewer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.permissions import ProjectAccess
from persistence import api_tokens, queries
from persistence.api_tokens import ApiTokenRecord
from persistence.database import Database, run_to_completion
from persistence.keyset import Position, RequestOrder, RequestQueueFilter
from persistence.records import (
    BudgetRecord,
    BudgetTotalsRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    EventRecord,
    ExportEntryRecord,
    ExportJobRecord,
    LineItemRecord,
    ModificationRecord,
    ProjectRecord,
    Record,
    RequestEntryRecord,
    RequestLineRecord,
    UserGrantRecord,
    UserRecord,
)
from persistence.tables import (
    budgets,
    companies,
    cost_codes,
    cost_types,
    erp_requests,
    export_jobs,
    modifications,
    projects,
    users,
)

R = TypeVar("R", bound=Record)
T = TypeVar("T")


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Id = TypeVar("Id", bound=_Identified)


@dataclass(frozen=True, slots=True)
class BudgetContents:
    """What a budget's export state is computed from: its lines, modifications and export entries."""

    lines: list[LineItemRecord] = field(default_factory=list)
    modifications: list[ModificationRecord] = field(default_factory=list)
    entries: list[ExportEntryRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SyncInputs:
    """What decides whether lines (or modifications) are synced: the modifications that touch them and
    the export entries that carried them."""

    modifications: list[ModificationRecord] = field(default_factory=list)
    entries: list[ExportEntryRecord] = field(default_factory=list)


@dataclass
class EventRelations:
    """The records events point at (actor, project, budget, request), by id. Mutable: the event tail
    keeps adding to one instance as it reads further."""

    users: dict[str, UserRecord] = field(default_factory=dict)
    projects: dict[str, ProjectRecord] = field(default_factory=dict)
    budgets: dict[str, BudgetRecord] = field(default_factory=dict)
    requests: dict[str, ErpRequestRecord] = field(default_factory=dict)

    def add(self, other: EventRelations) -> None:
        self.users.update(other.users)
        self.projects.update(other.projects)
        self.budgets.update(other.budgets)
        self.requests.update(other.requests)

    def size(self) -> int:
        return len(self.users) + len(self.projects) + len(self.budgets) + len(self.requests)


def _by_id(found: Sequence[Id]) -> dict[str, Id]:
    return {record.id: record for record in found}


class ReadSession:
    """One connection for every read of one request: opened on first use, used by one read at a time (the
    request's DataLoaders run their batches as concurrent tasks, and asyncpg refuses a second operation on a
    busy connection), and returned by `close`. A read that fails takes the connection down with it (its
    transaction may be aborted); the next read opens another. A mutation's unit of work borrows it (`lend`,
    `take_back`), so the request's reads, the mutation and its payload share it too. Once closed, reads that
    still come (a task the request started and left running) take pooled connections of their own."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.opened = 0  # connections taken from the pool (for tests)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[AsyncConnection | None]:
        """The session's connection, held for one read; None once the session is closed."""
        async with self._lock:
            if self._closed:
                yield None
                return
            if self._conn is None:
                self._conn = await self.db.engine.connect()
                self.opened += 1
            try:
                yield self._conn
            except BaseException:
                await self._release()
                raise

    async def lend(self) -> AsyncConnection:
        """The session's connection (opened now if it has none) for a unit of work, which gives it back with
        `take_back`: the request, its mutation and the mutation's payload on one connection. Meanwhile the
        session holds none: a read in between opens another."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                conn = await self.db.engine.connect()
                self.opened += 1
            return conn

    async def take_back(self, conn: AsyncConnection, reusable: bool) -> None:
        """The connection a unit of work borrowed: kept for the session's next reads when `reusable` (in no
        transaction) and the session still needs one, else returned to the pool."""
        async with self._lock:
            if reusable and not self._closed and self._conn is None:
                self._conn = conn
                return
        await run_to_completion(conn.close())

    async def close(self) -> None:
        """End the session: wait for the read in progress, then return the connection, to the end even when
        the request is cancelled meanwhile (run_to_completion)."""
        if self._conn is None and not self._lock.locked():
            self._closed = True  # nothing to give back, nor a read in progress that could open one
            return
        await run_to_completion(self._close())

    async def _close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # To the end: the pool's reset (ROLLBACK) must finish even when the read was cancelled, or the
            # connection is neither in use nor back in the pool.
            await run_to_completion(conn.close())


_SESSION: ContextVar[ReadSession | None] = ContextVar("budgetbridge_read_session", default=None)


class ReadStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ReadSession]:
        """Every read of this store inside the block (and in tasks started in it, which inherit it) shares one
        connection; the block's end returns it, on errors and cancellation too. Inside another session of
        the same database, that one is used."""
        outer = _SESSION.get()
        if outer is not None and outer.db is self._db:
            yield outer
            return
        session = ReadSession(self._db)
        token = _SESSION.set(session)
        try:
            yield session
        finally:
            _SESSION.reset(token)
            await session.close()

    def current_session(self) -> ReadSession | None:
        """The session the caller runs in, if it reads this store's database (a unit of work borrows its
        connection: persistence.database.ConnectionLender)."""
        session = _SESSION.get()
        return session if session is not None and session.db is self._db else None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        session = _SESSION.get()
        if session is not None and session.db is self._db:
            async with session.lease() as shared:
                if shared is not None:
                    yield shared
                    return
        async with self._db.read() as conn:
            yield conn

    async def _run(self, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await query(conn)

    async def _ids(self, table: Table, record: type[R], ids: Sequence[str], company_id: str | None) -> list[R]:
        if not ids:
            return []
        return await self._run(lambda conn: queries.by_ids(conn, table, record, ids, company_id))

    # --- the viewer and what they may see ---------------------------------------------------------------

    async def user_with_company(self, user_id: str) -> tuple[UserRecord, CompanyRecord] | None:
        return await self._run(lambda conn: queries.user_with_company(conn, user_id))

    async def viewer_rows(self, user_id: str) -> tuple[UserRecord, CompanyRecord, ApiTokenRecord | None] | None:
        """The user, their company and, for an API token's principal, the token (app.auth decides)."""
        return await self._run(lambda conn: api_tokens.viewer_rows(conn, user_id))

    async def api_token(self, token_hash: str) -> tuple[ApiTokenRecord, UserRecord, CompanyRecord] | None:
        return await self._run(lambda conn: api_tokens.by_hash(conn, token_hash))

    async def access(self, user_id: str, project_ids: Sequence[str]) -> dict[str, ProjectAccess]:
        """project id -> the user's access; projects without a grant are absent (NO_ACCESS)."""
        return await self._run(lambda conn: queries.access_of(conn, user_id, project_ids))

    async def all_access(self, user_id: str) -> dict[str, ProjectAccess]:
        """Every project the user holds a permission row for -> their access (absent: NO_ACCESS)."""
        return await self._run(lambda conn: queries.all_access_of(conn, user_id))

    # --- by id ----------------------------------------------------------------------------------------

    async def companies(self, ids: Sequence[str]) -> list[CompanyRecord]:
        return await self._ids(companies, CompanyRecord, ids, None)

    async def users(self, ids: Sequence[str], company_id: str | None) -> list[UserRecord]:
        return await self._ids(users, UserRecord, ids, company_id)

    async def projects(self, ids: Sequence[str], company_id: str | None) -> list[ProjectRecord]:
        return await self._ids(projects, ProjectRecord, ids, company_id)

    async def budgets(self, ids: Sequence[str], company_id: str | None) -> list[BudgetRecord]:
        return await self._ids(budgets, BudgetRecord, ids, company_id)

    async def requests(self, ids: Sequence[str], company_id: str | None) -> list[ErpRequestRecord]:
        return await self._ids(erp_requests, ErpRequestRecord, ids, company_id)

    async def cost_codes(self, ids: Sequence[str], company_id: str | None) -> list[CostCodeRecord]:
        return await self._ids(cost_codes, CostCodeRecord, ids, company_id)

    async def cost_types(self, ids: Sequence[str], company_id: str | None) -> list[CostTypeRecord]:
        return await self._ids(cost_types, CostTypeRecord, ids, company_id)

    async def line_items(self, ids: Sequence[str], company_id: str | None) -> list[LineItemRecord]:
        return await self._run(lambda conn: queries.line_items_by_ids(conn, ids, company_id))

    # --- projects, budgets and lines ------------------------------------------------------------------

    async def project_page(
        self, company_id: str, user_id: str, sees_all: bool, *, after: Position | None, limit: int,
        counted: bool = True,
    ) -> tuple[list[ProjectRecord], int | None]:
        """A page of the projects the user sees (all of the company's when `sees_all`), oldest first after the
        one at `after` = (created_at, id), and how many there are (None unless `counted`)."""
        return await self._run(
            lambda conn: queries.project_page(
                conn, company_id, user_id, sees_all, after=after, limit=limit, counted=counted
            )
        )

    async def budgets_by_project(self, company_id: str, project_ids: Sequence[str]) -> list[BudgetRecord]:
        return await self._run(lambda conn: queries.budgets_by_project(conn, company_id, project_ids))

    async def budget_totals(self, budget_ids: Sequence[str]) -> list[BudgetTotalsRecord]:
        """Budgets without lines have no totals record."""
        return await self._run(lambda conn: queries.budget_totals(conn, budget_ids))

    async def line_item_pages(
        self, budget_ids: Sequence[str], *, after: Position | None, limit: int
    ) -> list[LineItemRecord]:
        """The first `limit` lines of each budget after the line at `after` = (position, id) (one statement for
        all budgets)."""
        return await self._run(lambda conn: queries.line_item_pages(conn, budget_ids, after=after, limit=limit))

    async def sync_inputs_of_lines(self, line_ids: Sequence[str]) -> SyncInputs:
        if not line_ids:
            return SyncInputs()
        async with self._connection() as conn:
            return SyncInputs(
                await queries.modifications_touching(conn, line_ids), await queries.entries_of_lines(conn, line_ids)
            )

    async def modifications_of_budgets(self, budget_ids: Sequence[str]) -> SyncInputs:
        """The budgets' modifications, with their export entries (none read when there is no modification)."""
        async with self._connection() as conn:
            found = await queries.modifications_of_budgets(conn, budget_ids)
            return SyncInputs(found, await queries.entries_of_budgets(conn, budget_ids) if found else [])

    async def modifications(self, ids: Sequence[str], company_id: str | None) -> SyncInputs:
        """These modifications, with the export entries of their budgets."""
        if not ids:
            return SyncInputs()
        async with self._connection() as conn:
            found = await queries.by_ids(conn, modifications, ModificationRecord, ids, company_id)
            budget_ids = list({m.budget_id for m in found})
            return SyncInputs(found, await queries.entries_of_budgets(conn, budget_ids) if found else [])

    async def contents_of_budgets(self, budget_ids: Sequence[str]) -> dict[str, BudgetContents]:
        """Every line, modification and export entry of these budgets (three statements for all of them);
        every asked budget has an entry, empty when it has nothing."""
        found = {budget_id: BudgetContents() for budget_id in budget_ids}
        if not budget_ids:
            return found
        async with self._connection() as conn:
            for line in await queries.lines_of_budgets(conn, budget_ids):
                found[line.budget_id].lines.append(line)
            for modification in await queries.modifications_of_budgets(conn, budget_ids):
                found[modification.budget_id].modifications.append(modification)
            for entry in await queries.entries_of_budgets(conn, budget_ids):
                found[entry.budget_id].entries.append(entry)
        return found

    async def company_cost_codes(self, company_id: str) -> list[CostCodeRecord]:
        return await self._run(lambda conn: queries.company_list(conn, cost_codes, CostCodeRecord, company_id))

    async def company_cost_types(self, company_id: str) -> list[CostTypeRecord]:
        return await self._run(lambda conn: queries.company_list(conn, cost_types, CostTypeRecord, company_id))

    # --- ERP requests ---------------------------------------------------------------------------------

    async def requests_of_budgets(self, budget_ids: Sequence[str]) -> list[ErpRequestRecord]:
        """Newest first within each budget."""
        return await self._run(lambda conn: queries.requests_of_budgets(conn, budget_ids))

    async def request_lines(self, request_ids: Sequence[str]) -> list[RequestLineRecord]:
        return await self._run(lambda conn: queries.lines_of_requests(conn, request_ids))

    async def request_entries(self, request_ids: Sequence[str]) -> list[RequestEntryRecord]:
        """The export entries of these requests, each with its line's codes (one statement)."""
        if not request_ids:
            return []
        return await self._run(lambda conn: queries.entries_of_requests(conn, request_ids))

    async def company_projects(self, company_id: str) -> list[ProjectRecord]:
        """Every project of the company, by number (the reconciliation report of a whole company)."""
        return await self._run(lambda conn: queries.projects_of_company(conn, company_id))

    async def request_queue(
        self,
        company_id: str,
        *,
        where: RequestQueueFilter,
        order: RequestOrder,
        after: Position | None,
        limit: int,
    ) -> tuple[list[ErpRequestRecord], int]:
        """A page of the company's requests that match `where`, in `order` after the one at `after` =
        (sort value, id), and how many match."""
        return await self._run(
            lambda conn: queries.request_queue(conn, company_id, where=where, order=order, after=after, limit=limit)
        )

    # --- the operator's lists (the admin CLI; across companies unless one is named) ---------------------

    async def all_companies(self) -> list[CompanyRecord]:
        """Every company, oldest first."""
        return await self._run(queries.all_companies)

    async def users_of(self, company_id: str | None) -> list[UserRecord]:
        """The users of one company (None: of every company), by company and then oldest first."""
        return await self._run(lambda conn: queries.users_of(conn, company_id))

    async def grants_of_user(self, user_id: str) -> list[UserGrantRecord]:
        """The user's Budget tool permissions, by project number."""
        return await self._run(lambda conn: queries.grants_of_user(conn, user_id))

    async def latest_requests(
        self, statuses: Sequence[str] | None, company_id: str | None, limit: int
    ) -> list[ErpRequestRecord]:
        """Up to `limit` requests, newest sent first, in one of `statuses` (None: any)."""
        return await self._run(
            lambda conn: queries.latest(conn, erp_requests, ErpRequestRecord, "sent_at", statuses, company_id, limit)
        )

    async def latest_export_jobs(
        self, statuses: Sequence[str] | None, company_id: str | None, limit: int
    ) -> list[ExportJobRecord]:
        """Up to `limit` jobs of the export queue, newest first, in one of `statuses` (None: any)."""
        return await self._run(
            lambda conn: queries.latest(conn, export_jobs, ExportJobRecord, "created_at", statuses, company_id, limit)
        )

    # --- the event log --------------------------------------------------------------------------------

    async def budget_history(
        self, budget_id: str, *, limit: int, before: int | None, counted: bool = True
    ) -> tuple[list[EventRecord], int | None]:
        """A page of the budget's events, newest first, and how many it has in all (None unless `counted`)."""
        return await self._run(
            lambda conn: queries.budget_history(conn, budget_id, limit=limit, before=before, counted=counted)
        )

    async def company_events_after(self, company_id: str, after: int, *, limit: int) -> list[EventRecord]:
        """Up to `limit` of the company's events after sequence `after`, oldest first."""
        return await self._run(lambda conn: queries.company_events_after(conn, company_id, after, limit=limit))

    async def latest_sequence(self, company_id: str) -> int:
        """The company's newest event sequence (0 before the first event)."""
        return await self._run(lambda conn: queries.latest_sequence(conn, company_id))

    async def company_version(self, company_id: str) -> tuple[int, int] | None:
        """What changes whenever any query answer of the company may: its (event_sequence, revision), one
        primary-key lookup (persistence.revisions; None: no such company)."""
        return await self._run(lambda conn: queries.company_version(conn, company_id))

    async def backlog(self, company_id: str, after: int) -> int:
        """How many of the company's events come after sequence `after`."""
        return await self._run(lambda conn: queries.events_after_count(conn, company_id, after))

    async def relations_of_events(self, events: Sequence[EventRecord]) -> EventRelations:
        """The actors, projects, budgets and requests of these events (a statement each, on one connection;
        across companies: the caller reads events of one company)."""
        if not events:
            return EventRelations()
        user_ids = list({e.actor_id for e in events if e.actor_id})
        project_ids = list({e.project_id for e in events})
        budget_ids = list({e.budget_id for e in events})
        request_ids = list({e.erp_request_id for e in events if e.erp_request_id})
        async with self._connection() as conn:
            return EventRelations(
                users=_by_id(await queries.by_ids(conn, users, UserRecord, user_ids, None)) if user_ids else {},
                projects=_by_id(await queries.by_ids(conn, projects, ProjectRecord, project_ids, None)),
                budgets=_by_id(await queries.by_ids(conn, budgets, BudgetRecord, budget_ids, None)),
                requests=(
                    _by_id(await queries.by_ids(conn, erp_requests, ErpRequestRecord, request_ids, None))
                    if request_ids
                    else {}
                ),
            )

