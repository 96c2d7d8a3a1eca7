"""Batched selects that return records. Each takes a set of keys and answers for all of them in one
statement, so the repositories (write side) and the read store's DataLoaders (read side) share one
definition of every read, and a nested GraphQL query stays at a fixed number of statements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Label, Select, Table, and_, any_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.budget import BudgetTotals
from domain.permissions import NO_ACCESS, Grant, PermissionLevel, ProjectAccess
from domain.text import storable
from persistence import keyset
from persistence.keyset import Position, RequestOrder, RequestQueueFilter
from persistence.records import (
    BudgetRecord,
    BudgetTotalsRecord,
    CompanyRecord,
    ErpRequestRecord,
    EventRecord,
    ExportEntryRecord,
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
    events,
    export_entries,
    line_items,
    modifications,
    project_permissions,
    projects,
    request_lines,
    users,
)

R = TypeVar("R", bound=Record)

# PostgreSQL (asyncpg) takes at most 32767 bind parameters per statement; id lists are sent in chunks.
# A page of up to 2000 ids is still one statement, so nested reads stay at a fixed statement count.
CHUNK = 2000


def among(conn: AsyncConnection, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL, one array parameter (`column = ANY($1)`): the statement's text is the
    same however many values there are, so SQLAlchemy's compiled form and asyncpg's prepared statement are
    reused, where an IN list is expanded into one parameter per value (and a statement of its own per
    length) on every execution. SQLite has no arrays and keeps IN."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


async def records(conn: AsyncConnection, stmt: Select[Any], record: type[R]) -> list[R]:
    return [record.of(row) for row in await conn.execute(stmt)]


async def _chunked(
    conn: AsyncConnection, ids: Sequence[str], build: Callable[[list[str]], Select[Any]], record: type[R]
) -> list[R]:
    """Run `build(chunk)` for each chunk of ids and concatenate the records. An id with text no id can hold
    (NUL, a lone surrogate: a client's input) finds nothing, as an unknown id does."""
    unique = [i for i in dict.fromkeys(ids) if storable(i)]
    found: list[R] = []
    for start in range(0, len(unique), CHUNK):
        found += await records(conn, build(unique[start : start + CHUNK]), record)
    return found


async def by_ids(
    conn: AsyncConnection, table: Table, record: type[R], ids: Sequence[str], company_id: str | None
) -> list[R]:
    """Records of `table` with these ids; restricted to one company when the table has one."""

    def build(chunk: list[str]) -> Select[Any]:
        stmt = select(table).where(among(conn, table.c.id, chunk))
        if company_id is not None and "company_id" in table.c:
            stmt = stmt.where(table.c.company_id == company_id)
        return stmt

    return await _chunked(conn, ids, build, record)


COMPANY_PREFIX = "company__"


async def user_with_company(conn: AsyncConnection, user_id: str) -> tuple[UserRecord, CompanyRecord] | None:
    """A user and their company in one statement (the viewer of every request)."""
    stmt = (
        select(users, *(column.label(COMPANY_PREFIX + column.name) for column in companies.c))
        .join(companies, companies.c.id == users.c.company_id)
        .where(users.c.id == user_id)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    mapping = row._mapping
    company = {column.name: mapping[COMPANY_PREFIX + column.name] for column in companies.c}
    return UserRecord.of(mapping), CompanyRecord.of(company)


def access_value(budget_permission: str | None, grants: Sequence[str] | None) -> ProjectAccess:
    if budget_permission is None:
        return NO_ACCESS
    return ProjectAccess(PermissionLevel[budget_permission], frozenset(Grant(g) for g in (grants or [])))


async def access_of(conn: AsyncConnection, user_id: str, project_ids: Sequence[str]) -> dict[str, ProjectAccess]:
    """project id -> the user's access (projects without a grant are absent: NO_ACCESS)."""
    stmt = select(project_permissions).where(
        project_permissions.c.user_id == user_id, among(conn, project_permissions.c.project_id, project_ids)
    )
    return {r.project_id: access_value(r.budget_permission, r.grants) for r in await conn.execute(stmt)}


async def all_access_of(conn: AsyncConnection, user_id: str) -> dict[str, ProjectAccess]:
    """project id -> the user's access, for every project they hold a row for (others: NO_ACCESS)."""
    stmt = select(project_permissions).where(project_permissions.c.user_id == user_id)
    return {r.project_id: access_value(r.budget_permission, r.grants) for r in await conn.execute(stmt)}


def visible_projects(company_id: str, user_id: str, sees_all: bool) -> Select[Any]:
    stmt = select(projects).where(projects.c.company_id == company_id)
    if not sees_all:
        stmt = stmt.join(
            project_permissions,
            and_(
                project_permissions.c.project_id == projects.c.id,
                project_permissions.c.user_id == user_id,
                project_permissions.c.budget_permission != "NONE",
            ),
        )
    return stmt


async def project_page(
    conn: AsyncConnection,
    company_id: str,
    user_id: str,
    sees_all: bool,
    *,
    after: Position | None,
    limit: int,
    counted: bool = True,
) -> tuple[list[ProjectRecord], int | None]:
    """Up to `limit` projects after the one at `after` = (created_at, id), oldest first, and how many the
    user sees in all (a second statement, only when `counted`)."""
    base = visible_projects(company_id, user_id, sees_all)
    stmt = keyset.page(base, projects.c.created_at, projects.c.id, after, descending=False, nullable=False, limit=limit)
    page = await records(conn, stmt, ProjectRecord)
    if not counted:
        return page, None
    total = (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    return page, int(total)


async def budgets_by_project(conn: AsyncConnection, company_id: str, project_ids: Sequence[str]) -> list[BudgetRecord]:
    stmt = select(budgets).where(budgets.c.company_id == company_id, among(conn, budgets.c.project_id, project_ids))
    return await records(conn, stmt, BudgetRecord)


async def budget_totals(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[BudgetTotalsRecord]:
    stmt = (
        select(
            line_items.c.budget_id,
            func.count().label("line_count"),
            func.sum(line_items.c.original_amount).label("original_total"),
            func.sum(line_items.c.modifications_amount).label("modifications_total"),
        )
        .where(among(conn, line_items.c.budget_id, budget_ids))
        .group_by(line_items.c.budget_id)
    )
    return await records(conn, stmt, BudgetTotalsRecord)


# What every line read carries of its cost code and cost type, so a line's costCode / costType are plain
# fields, not one loader call per line.
_CODE_AND_TYPE = (
    cost_codes.c.code.label("cost_code"),
    cost_codes.c.description.label("cost_code_description"),
    cost_codes.c.erp_synced.label("cost_code_synced"),
    cost_types.c.code.label("cost_type"),
    cost_types.c.name.label("cost_type_name"),
    cost_types.c.erp_synced.label("cost_type_synced"),
)


def _lines_with_codes(*extra: Any) -> Select[Any]:
    """Lines joined with their cost code and cost type."""
    return (
        select(line_items, *_CODE_AND_TYPE, *extra)
        .join(cost_codes, cost_codes.c.id == line_items.c.cost_code_id)
        .join(cost_types, cost_types.c.id == line_items.c.cost_type_id)
    )


async def line_item_pages(
    conn: AsyncConnection, budget_ids: Sequence[str], *, after: Position | None, limit: int
) -> list[LineItemRecord]:
    """The first `limit` lines of each budget after the line at `after` = (position, id), in one statement,
    by budget and then in page order.

    PostgreSQL reads each budget's page with a LATERAL subquery: a range of the (budget_id, position, id)
    index that stops after `limit` rows, whatever the budget's size. SQLite has no LATERAL: it numbers each
    budget's lines after the cursor in a window and keeps the first `limit` (the same rows)."""
    if conn.dialect.name == "postgresql":
        return await records(conn, _lateral_line_pages(conn, budget_ids, after=after, limit=limit), LineItemRecord)
    ordering = keyset.order(line_items.c.position, line_items.c.id, descending=False)
    rank = func.row_number().over(partition_by=line_items.c.budget_id, order_by=ordering).label("rn")
    filtered = _lines_with_codes(rank).where(among(conn, line_items.c.budget_id, budget_ids))
    if after is not None:
        filtered = filtered.where(keyset.after(line_items.c.position, line_items.c.id, after, descending=False))
    ranked = filtered.subquery()
    stmt = select(ranked).where(ranked.c.rn <= limit).order_by(ranked.c.budget_id, ranked.c.position, ranked.c.id)
    return await records(conn, stmt, LineItemRecord)


def _lateral_line_pages(
    conn: AsyncConnection, budget_ids: Sequence[str], *, after: Position | None, limit: int
) -> Select[Any]:
    each = select(line_items).where(line_items.c.budget_id == budgets.c.id)
    if after is not None:
        each = each.where(keyset.after(line_items.c.position, line_items.c.id, after, descending=False))
    page = each.order_by(*keyset.order(line_items.c.position, line_items.c.id, descending=False)).limit(limit)
    lines = page.lateral("page")
    return (
        select(lines, *_CODE_AND_TYPE)
        .select_from(budgets)
        .join(lines, true())
        .join(cost_codes, cost_codes.c.id == lines.c.cost_code_id)
        .join(cost_types, cost_types.c.id == lines.c.cost_type_id)
        .where(among(conn, budgets.c.id, budget_ids))
        .order_by(lines.c.budget_id, lines.c.position, lines.c.id)
    )


async def line_items_by_ids(conn: AsyncConnection, ids: Sequence[str], company_id: str | None) -> list[LineItemRecord]:
    def build(chunk: list[str]) -> Select[Any]:
        stmt = _lines_with_codes().where(among(conn, line_items.c.id, chunk))
        return stmt if company_id is None else stmt.where(line_items.c.company_id == company_id)

    return await _chunked(conn, ids, build, LineItemRecord)


def _line_with_budget_totals() -> Select[Any]:
    budget_lines = line_items.alias("budget_lines")

    def total(column: str) -> Label[Any]:
        of_budget = budget_lines.c.budget_id == line_items.c.budget_id
        return select(func.sum(budget_lines.c[column])).where(of_budget).scalar_subquery().label(f"{column}_total")

    return _lines_with_codes(total("original_amount"), total("modifications_amount")).where(
        line_items.c.id == bindparam("line_id"), line_items.c.company_id == bindparam("company_id")
    )


_LINE_WITH_BUDGET_TOTALS = _line_with_budget_totals()  # built once (see persistence.decision_writes)


async def line_with_budget_totals(
    conn: AsyncConnection, line_id: str, company_id: str
) -> tuple[LineItemRecord, BudgetTotals] | None:
    """The line (with its cost code and type) and the sums over every line of its budget, in one statement."""
    if not storable(line_id):
        return None
    row = (await conn.execute(_LINE_WITH_BUDGET_TOTALS, {"line_id": line_id, "company_id": company_id})).first()
    if row is None:
        return None
    return LineItemRecord.of(row), BudgetTotals(row.original_amount_total, row.modifications_amount_total)


async def lines_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[LineItemRecord]:
    """Every line of these budgets with its cost code and cost type, for computing what a send contains."""
    stmt = (
        _lines_with_codes()
        .where(among(conn, line_items.c.budget_id, budget_ids))
        .order_by(line_items.c.budget_id, line_items.c.position)
    )
    return await records(conn, stmt, LineItemRecord)


async def modifications_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[ModificationRecord]:
    stmt = (
        select(modifications)
        .where(among(conn, modifications.c.budget_id, budget_ids))
        .order_by(modifications.c.budget_id, modifications.c.number)
    )
    return await records(conn, stmt, ModificationRecord)


def _entries_with_status() -> Select[Any]:
    return select(export_entries, erp_requests.c.status.label("request_status")).join(
        erp_requests, erp_requests.c.id == export_entries.c.request_id
    )


async def entries_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[ExportEntryRecord]:
    stmt = _entries_with_status().where(among(conn, export_entries.c.budget_id, budget_ids))
    return await records(conn, stmt, ExportEntryRecord)


async def entries_of_lines(conn: AsyncConnection, line_ids: Sequence[str]) -> list[ExportEntryRecord]:
    return await _chunked(
        conn,
        line_ids,
        lambda chunk: _entries_with_status().where(among(conn, export_entries.c.line_item_id, chunk)),
        ExportEntryRecord,
    )


async def modifications_touching(conn: AsyncConnection, line_ids: Sequence[str]) -> list[ModificationRecord]:
    found = await _chunked(
        conn,
        line_ids,
        lambda chunk: select(modifications).where(
            among(conn, modifications.c.from_line_item_id, chunk) | among(conn, modifications.c.to_line_item_id, chunk)
        ),
        ModificationRecord,
    )
    return list({m.id: m for m in found}.values())  # a modification between two chunks comes twice


async def requests_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[ErpRequestRecord]:
    stmt = (
        select(erp_requests)
        .where(among(conn, erp_requests.c.budget_id, budget_ids))
        .order_by(erp_requests.c.budget_id, erp_requests.c.sequence.desc())
    )
    return await records(conn, stmt, ErpRequestRecord)


async def lines_of_requests(conn: AsyncConnection, request_ids: Sequence[str]) -> list[RequestLineRecord]:
    stmt = (
        select(request_lines)
        .where(among(conn, request_lines.c.request_id, request_ids))
        .order_by(request_lines.c.request_id, request_lines.c.position)
    )
    return await records(conn, stmt, RequestLineRecord)


async def entries_of_requests(conn: AsyncConnection, request_ids: Sequence[str]) -> list[RequestEntryRecord]:
    """The export entries of these requests with their lines' codes, in the order the connector got them: by
    line, the original-budget entry first, then modifications by number."""
    stmt = (
        select(
            export_entries,
            cost_codes.c.code.label("cost_code"),
            cost_types.c.code.label("cost_type"),
            line_items.c.sub_job,
            line_items.c.quantity,
        )
        .join(line_items, line_items.c.id == export_entries.c.line_item_id)
        .join(cost_codes, cost_codes.c.id == line_items.c.cost_code_id)
        .join(cost_types, cost_types.c.id == line_items.c.cost_type_id)
        .outerjoin(modifications, modifications.c.id == export_entries.c.source_id)
        .where(among(conn, export_entries.c.request_id, request_ids))
        .order_by(
            export_entries.c.request_id,
            line_items.c.position,
            export_entries.c.kind.desc(),
            modifications.c.number,
            export_entries.c.id,
        )
    )
    return await records(conn, stmt, RequestEntryRecord)


async def projects_of_company(conn: AsyncConnection, company_id: str) -> list[ProjectRecord]:
    stmt = select(projects).where(projects.c.company_id == company_id).order_by(projects.c.number, projects.c.id)
    return await records(conn, stmt, ProjectRecord)


def _queue_conditions(company_id: str, where: RequestQueueFilter) -> list[ColumnElement[bool]]:
    r = erp_requests.c
    conditions = [r.company_id == company_id]
    if where.statuses is not None:
        conditions.append(r.status.in_(list(where.statuses)))
    if where.project_id is not None:
        conditions.append(r.project_id == where.project_id)
    if where.kinds is not None:
        conditions.append(r.kind.in_(list(where.kinds)))
    if where.sent_after is not None:
        conditions.append(r.sent_at >= where.sent_after)
    if where.sent_before is not None:
        conditions.append(r.sent_at < where.sent_before)
    if where.sent_by_id is not None:
        conditions.append(r.sent_by_id == where.sent_by_id)
    return conditions


async def request_queue(
    conn: AsyncConnection,
    company_id: str,
    *,
    where: RequestQueueFilter,
    order: RequestOrder,
    after: Position | None,
    limit: int,
) -> tuple[list[ErpRequestRecord], int]:
    """Up to `limit` of the company's requests that match, after the one at `after` = (sort value, id) in
    `order`, and how many match in all."""
    base = select(erp_requests).where(and_(true(), *_queue_conditions(company_id, where)))
    key = erp_requests.c[order.column]
    stmt = keyset.page(
        base, key, erp_requests.c.id, after, descending=order.descending, nullable=bool(key.nullable), limit=limit
    )
    page = await records(conn, stmt, ErpRequestRecord)
    total = (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    return page, int(total)


async def company_list(conn: AsyncConnection, table: Table, record: type[R], company_id: str) -> list[R]:
    return await records(conn, select(table).where(table.c.company_id == company_id).order_by(table.c.code), record)


# --- the operator's lists (the admin CLI) -----------------------------------------------------------------


async def all_companies(conn: AsyncConnection) -> list[CompanyRecord]:
    return await records(conn, select(companies).order_by(companies.c.created_at, companies.c.id), CompanyRecord)


async def users_of(conn: AsyncConnection, company_id: str | None) -> list[UserRecord]:
    """The users of one company (None: of every company), by company and then oldest first."""
    stmt = select(users).order_by(users.c.company_id, users.c.created_at, users.c.id)
    if company_id is not None:
        stmt = stmt.where(users.c.company_id == company_id)
    return await records(conn, stmt, UserRecord)


async def grants_of_user(conn: AsyncConnection, user_id: str) -> list[UserGrantRecord]:
    stmt = (
        select(
            project_permissions.c.project_id,
            projects.c.number.label("project_number"),
            projects.c.name.label("project_name"),
            project_permissions.c.budget_permission,
            project_permissions.c.grants,
        )
        .join(projects, projects.c.id == project_permissions.c.project_id)
        .where(project_permissions.c.user_id == user_id)
        .order_by(projects.c.number, projects.c.id)
    )
    return await records(conn, stmt, UserGrantRecord)


async def latest(
    conn: AsyncConnection,
    table: Table,
    record: type[R],
    newest: str,
    statuses: Sequence[str] | None,
    company_id: str | None,
    limit: int,
) -> list[R]:
    """Up to `limit` rows of `table` (ERP requests, export jobs), newest first by the column `newest`, whose
    `status` is one of `statuses` (None: any), of one company (None: all)."""
    stmt = select(table).order_by(table.c[newest].desc(), table.c.id.desc()).limit(limit)
    if statuses is not None:
        stmt = stmt.where(table.c.status.in_(list(statuses)))
    if company_id is not None:
        stmt = stmt.where(table.c.company_id == company_id)
    return await records(conn, stmt, record)


# --- the event log ---------------------------------------------------------------------------------------


async def budget_history(
    conn: AsyncConnection, budget_id: str, *, limit: int, before: int | None, counted: bool = True
) -> tuple[list[EventRecord], int | None]:
    """A page of the budget's events, newest first, and how many it has in all (only when `counted`)."""
    stmt = select(events).where(events.c.budget_id == budget_id)
    if before is not None:
        stmt = stmt.where(events.c.sequence < before)
    page = await records(conn, stmt.order_by(events.c.sequence.desc()).limit(limit), EventRecord)
    if not counted:
        return page, None
    total = (await conn.execute(select(func.count()).where(events.c.budget_id == budget_id))).scalar_one()
    return page, int(total)


async def company_events_after(
    conn: AsyncConnection, company_id: str, after: int, *, limit: int = 500
) -> list[EventRecord]:
    stmt = (
        select(events)
        .where(events.c.company_id == company_id, events.c.sequence > after)
        .order_by(events.c.sequence)
        .limit(limit)
    )
    return await records(conn, stmt, EventRecord)


async def latest_sequence(conn: AsyncConnection, company_id: str) -> int:
    stmt = select(func.max(events.c.sequence)).where(events.c.company_id == company_id)
    return int((await conn.execute(stmt)).scalar_one() or 0)


async def events_after_count(conn: AsyncConnection, company_id: str, after: int) -> int:
    stmt = select(func.count()).where(events.c.company_id == company_id, events.c.sequence > after)
    return int((await conn.execute(stmt)).scalar_one())


async def company_version(conn: AsyncConnection, company_id: str) -> tuple[int, int] | None:
    """The company's (event_sequence, revision): one primary-key lookup, the response cache's validator."""
    stmt = select(companies.c.event_sequence, companies.c.revision).where(companies.c.id == company_id)
    row = (await conn.execute(stmt)).first()
    return (int(row.event_sequence), int(row.revision)) if row is not None else None
