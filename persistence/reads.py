"""Batched read queries. Each takes a set of keys and answers for all of them in one statement, so the
DataLoaders built on them keep a nested GraphQL query at a fixed number of statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, func, select, true
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import (
    budgets,
    companies,
    cost_codes,
    cost_types,
    erp_requests,
    export_entries,
    line_items,
    modifications,
    project_permissions,
    projects,
    request_lines,
    users,
)

# PostgreSQL (asyncpg) takes at most 32767 bind parameters per statement; id lists are sent in chunks.
# A page of up to 2000 ids is still one statement, so nested reads stay at a fixed statement count.
CHUNK = 2000


async def _all(conn: AsyncConnection, stmt: Select) -> list[Row]:  # type: ignore[type-arg]
    return list((await conn.execute(stmt)).all())


async def _chunked(conn: AsyncConnection, ids: Sequence[str], build: Any) -> list[Row]:
    """Run `build(chunk)` for each chunk of ids and concatenate the rows."""
    unique = list(dict.fromkeys(ids))
    rows: list[Row] = []
    for start in range(0, len(unique), CHUNK):
        rows += await _all(conn, build(unique[start : start + CHUNK]))
    return rows


async def rows_by_ids(conn: AsyncConnection, table, ids: Sequence[str], company_id: str | None) -> list[Row]:  # type: ignore[no-untyped-def]
    """Rows of `table` with these ids; restricted to one company when the table has one."""

    def build(chunk: list[str]) -> Select:  # type: ignore[type-arg]
        stmt = select(table).where(table.c.id.in_(chunk))
        if company_id is not None and "company_id" in table.c:
            stmt = stmt.where(table.c.company_id == company_id)
        return stmt

    return await _chunked(conn, ids, build)


async def user_with_company(conn: AsyncConnection, user_id: str) -> Row | None:
    stmt = (
        select(
            users,
            companies.c.currency,
            companies.c.name.label("company_name"),
            companies.c.erp_connector,
            companies.c.erp_settings,
        )
        .join(companies, companies.c.id == users.c.company_id)
        .where(users.c.id == user_id)
    )
    return (await conn.execute(stmt)).first()


async def access_rows(conn: AsyncConnection, user_id: str, project_ids: Sequence[str]) -> list[Row]:
    stmt = select(project_permissions).where(
        project_permissions.c.user_id == user_id, project_permissions.c.project_id.in_(list(project_ids))
    )
    return await _all(conn, stmt)


def visible_projects(company_id: str, user_id: str, sees_all: bool) -> Select:  # type: ignore[type-arg]
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
    conn: AsyncConnection, company_id: str, user_id: str, sees_all: bool, *, offset: int, limit: int
) -> tuple[list[Row], int]:
    base = visible_projects(company_id, user_id, sees_all)
    rows = await _all(conn, base.order_by(projects.c.created_at, projects.c.id).offset(offset).limit(limit))
    total = (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    return rows, int(total)


async def budgets_by_project(conn: AsyncConnection, company_id: str, project_ids: Sequence[str]) -> list[Row]:
    stmt = select(budgets).where(budgets.c.company_id == company_id, budgets.c.project_id.in_(list(project_ids)))
    return await _all(conn, stmt)


async def budget_totals(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[Row]:
    stmt = (
        select(
            line_items.c.budget_id,
            func.count().label("line_count"),
            func.sum(line_items.c.original_amount).label("original_total"),
            func.sum(line_items.c.modifications_amount).label("modifications_total"),
        )
        .where(line_items.c.budget_id.in_(list(budget_ids)))
        .group_by(line_items.c.budget_id)
    )
    return await _all(conn, stmt)


def _lines_with_codes(*extra: Any) -> Select:  # type: ignore[type-arg]
    """Lines joined with their cost code and cost type: every line read carries them, so a line's
    costCode / costType are plain fields, not one loader call per line."""
    return (
        select(
            line_items,
            cost_codes.c.code.label("cost_code"),
            cost_codes.c.description.label("cost_code_description"),
            cost_codes.c.erp_synced.label("cost_code_synced"),
            cost_types.c.code.label("cost_type"),
            cost_types.c.name.label("cost_type_name"),
            cost_types.c.erp_synced.label("cost_type_synced"),
            *extra,
        )
        .join(cost_codes, cost_codes.c.id == line_items.c.cost_code_id)
        .join(cost_types, cost_types.c.id == line_items.c.cost_type_id)
    )


async def line_item_pages(
    conn: AsyncConnection, budget_ids: Sequence[str], *, after_position: int | None, limit: int
) -> list[Row]:
    """The first `limit` lines of each budget after a position, in one windowed statement."""
    rank = func.row_number().over(partition_by=line_items.c.budget_id, order_by=line_items.c.position).label("rn")
    filtered = _lines_with_codes(rank).where(line_items.c.budget_id.in_(list(budget_ids)))
    if after_position is not None:
        filtered = filtered.where(line_items.c.position > after_position)
    ranked = filtered.subquery()
    stmt = select(ranked).where(ranked.c.rn <= limit).order_by(ranked.c.budget_id, ranked.c.position)
    return await _all(conn, stmt)


async def line_items_by_ids(conn: AsyncConnection, ids: Sequence[str], company_id: str | None) -> list[Row]:
    def build(chunk: list[str]) -> Select:  # type: ignore[type-arg]
        stmt = _lines_with_codes().where(line_items.c.id.in_(chunk))
        return stmt if company_id is None else stmt.where(line_items.c.company_id == company_id)

    return await _chunked(conn, ids, build)


async def lines_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[Row]:
    """Every line of these budgets with its cost code and cost type, for computing what a send contains."""
    stmt = (
        _lines_with_codes()
        .where(line_items.c.budget_id.in_(list(budget_ids)))
        .order_by(line_items.c.budget_id, line_items.c.position)
    )
    return await _all(conn, stmt)


async def modifications_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[Row]:
    stmt = (
        select(modifications)
        .where(modifications.c.budget_id.in_(list(budget_ids)))
        .order_by(modifications.c.budget_id, modifications.c.number)
    )
    return await _all(conn, stmt)


def _entries_with_status() -> Select:  # type: ignore[type-arg]
    return select(export_entries, erp_requests.c.status.label("request_status")).join(
        erp_requests, erp_requests.c.id == export_entries.c.request_id
    )


async def entries_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[Row]:
    return await _all(conn, _entries_with_status().where(export_entries.c.budget_id.in_(list(budget_ids))))


async def entries_of_lines(conn: AsyncConnection, line_ids: Sequence[str]) -> list[Row]:
    return await _chunked(
        conn, line_ids, lambda chunk: _entries_with_status().where(export_entries.c.line_item_id.in_(chunk))
    )


async def modifications_touching(conn: AsyncConnection, line_ids: Sequence[str]) -> list[Row]:
    rows = await _chunked(
        conn,
        line_ids,
        lambda chunk: select(modifications).where(
            modifications.c.from_line_item_id.in_(chunk) | modifications.c.to_line_item_id.in_(chunk)
        ),
    )
    return list({row.id: row for row in rows}.values())  # a modification between two chunks comes twice


async def requests_of_budgets(conn: AsyncConnection, budget_ids: Sequence[str]) -> list[Row]:
    stmt = (
        select(erp_requests)
        .where(erp_requests.c.budget_id.in_(list(budget_ids)))
        .order_by(erp_requests.c.budget_id, erp_requests.c.sequence.desc())
    )
    return await _all(conn, stmt)


async def lines_of_requests(conn: AsyncConnection, request_ids: Sequence[str]) -> list[Row]:
    stmt = (
        select(request_lines)
        .where(request_lines.c.request_id.in_(list(request_ids)))
        .order_by(request_lines.c.request_id, request_lines.c.position)
    )
    return await _all(conn, stmt)


async def request_queue(
    conn: AsyncConnection,
    company_id: str,
    *,
    statuses: Sequence[str] | None,
    project_id: str | None,
    offset: int,
    limit: int,
) -> tuple[list[Row], int]:
    where = [erp_requests.c.company_id == company_id]
    if statuses:
        where.append(erp_requests.c.status.in_(list(statuses)))
    if project_id is not None:
        where.append(erp_requests.c.project_id == project_id)
    base = select(erp_requests).where(and_(true(), *where))
    rows = await _all(conn, base.order_by(erp_requests.c.sent_at.desc(), erp_requests.c.id).offset(offset).limit(limit))
    total = (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    return rows, int(total)


async def company_list(conn: AsyncConnection, table, company_id: str) -> list[Row]:  # type: ignore[no-untyped-def]
    return await _all(conn, select(table).where(table.c.company_id == company_id).order_by(table.c.code))
