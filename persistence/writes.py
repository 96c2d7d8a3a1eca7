"""Write helpers shared by the service layer. Every budget change goes through `bump_budget`, the
compare-and-set on the version that turns a lost race into VERSION_CONFLICT instead of a lost update."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, not_found
from persistence.tables import budgets, idempotency_keys, line_items, modifications


async def insert_row(conn: AsyncConnection, table: Table, **values: Any) -> None:
    await conn.execute(insert(table).values(**values))


async def update_row(conn: AsyncConnection, table: Table, row_id: str, **values: Any) -> None:
    await conn.execute(update(table).where(table.c.id == row_id).values(**values))


async def budget_for_update(conn: AsyncConnection, company_id: str, budget_id: str) -> Row:
    """The budget row, locked until commit on PostgreSQL (SQLite serialises writers anyway)."""
    stmt = select(budgets).where(budgets.c.id == budget_id, budgets.c.company_id == company_id).with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise not_found("budget", ["input", "budgetId"])
    return row


def check_version(row: Row, expected: int | None) -> None:
    if expected is not None and expected != row.version:
        raise DomainError(
            "VERSION_CONFLICT",
            f"the budget is at version {row.version}, not {expected}: reload it and try again",
            ("input", "expectedVersion"),
        )


async def bump_budget(conn: AsyncConnection, row: Row, **values: Any) -> int:
    result = await conn.execute(
        update(budgets)
        .where(budgets.c.id == row.id, budgets.c.version == row.version)
        .values(version=row.version + 1, **values)
    )
    if result.rowcount != 1:
        raise DomainError("VERSION_CONFLICT", "the budget changed meanwhile: reload it and try again")
    return int(row.version + 1)


async def next_line_position(conn: AsyncConnection, budget_id: str) -> int:
    current = (
        await conn.execute(select(func.max(line_items.c.position)).where(line_items.c.budget_id == budget_id))
    ).scalar_one()
    return int(current or 0) + 1


async def next_modification_number(conn: AsyncConnection, budget_id: str) -> int:
    current = (
        await conn.execute(select(func.max(modifications.c.number)).where(modifications.c.budget_id == budget_id))
    ).scalar_one()
    return int(current or 0) + 1


def fingerprint(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


async def stored_result(conn: AsyncConnection, user_id: str, operation: str, key: str) -> Row | None:
    stmt = select(idempotency_keys).where(
        idempotency_keys.c.user_id == user_id,
        idempotency_keys.c.operation == operation,
        idempotency_keys.c.key == key,
    )
    return (await conn.execute(stmt)).first()


async def store_result(
    conn: AsyncConnection, user_id: str, operation: str, key: str, input_hash: str, result: Any, at: datetime
) -> None:
    await conn.execute(
        insert(idempotency_keys).values(
            user_id=user_id, operation=operation, key=key, input_hash=input_hash, result=result, created_at=at
        )
    )
