"""A budget's line pages for many budgets at once (LATERAL on PostgreSQL, a window on SQLite) are exactly the
rows a plain per-budget query gives: (position, id) order, after the cursor, at most `limit` each, lines
sharing a position included (the id breaks the tie)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence import queries
from persistence.database import Database
from persistence.ids import new_id
from persistence.keyset import Position
from persistence.tables import line_items
from tests.support import Tenant, make_services, make_tenant

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def tenants_with_lines(db: Database, sizes: list[int]) -> list[Tenant]:
    """One company per size, its budget with that many lines; positions repeat (as two concurrent adds can
    leave them), so only the id orders some of them."""
    services = make_services(db)
    try:
        tenants = [await make_tenant(services) for _ in sizes]
    finally:
        await services.connectors.aclose()
    rows: list[dict[str, Any]] = []
    shuffle = random.Random(13)
    for tenant, size in zip(tenants, sizes, strict=True):
        code, ctype = next(iter(tenant.cost_codes.values())), next(iter(tenant.cost_types.values()))
        for i in range(size):
            rows.append({
                "id": new_id("BudgetLineItem"), "company_id": tenant.company_id, "budget_id": tenant.budget_id,
                "cost_code_id": code, "cost_type_id": ctype, "sub_job": f"S-{i}", "description": None,
                "original_amount": Decimal(i), "modifications_amount": Decimal(0),
                "position": shuffle.randrange(size // 2 + 1), "created_at": AT,
            })
    async with db.unit_of_work() as uow:
        await uow.connection.execute(line_items.insert(), rows)
        await uow.commit()
    return tenants


async def reference(conn: AsyncConnection, budget_id: str, after: Position | None, limit: int) -> list[str]:
    stmt = select(line_items.c.id).where(line_items.c.budget_id == budget_id)
    if after is not None:
        stmt = stmt.where(tuple_(line_items.c.position, line_items.c.id) > tuple_(*after))
    stmt = stmt.order_by(line_items.c.position, line_items.c.id).limit(limit)
    return list((await conn.execute(stmt)).scalars())


@pytest.mark.parametrize("limit", [1, 3, 40, 1000])
async def test_pages_of_many_budgets_are_the_rows_of_a_plain_query_per_budget(engine_db: Database, limit: int) -> None:
    tenants = await tenants_with_lines(engine_db, [0, 1, 7, 60])
    budget_ids = [t.budget_id for t in tenants] + ["bud_missing"]
    async with engine_db.read() as conn:
        everything = (await conn.execute(
            select(line_items.c.position, line_items.c.id).order_by(line_items.c.position, line_items.c.id)
        )).all()
        # A cursor on a shared position and one on the very first row, of some budget: other budgets' rows are
        # compared with it the same way (a cursor is of one budget; the statement does not care).
        for after in [None, tuple(everything[0]), tuple(everything[len(everything) // 2])]:
            pages = await queries.line_item_pages(conn, budget_ids, after=after, limit=limit)
            expected = [(b, line) for b in sorted(budget_ids) for line in await reference(conn, b, after, limit)]
            assert [(line.budget_id, line.id) for line in pages] == expected
            assert all(line.cost_code and line.cost_type for line in pages)  # the codes come with each line


async def test_a_page_walks_a_budget_in_order_without_repeats_or_gaps(engine_db: Database) -> None:
    (tenant,) = await tenants_with_lines(engine_db, [45])
    async with engine_db.read() as conn:
        seen: list[str] = []
        after: Position | None = None
        while True:
            page = await queries.line_item_pages(conn, [tenant.budget_id], after=after, limit=4)
            if not page:
                break
            seen += [line.id for line in page]
            after = (page[-1].position, page[-1].id)
        assert seen == await reference(conn, tenant.budget_id, None, 1000)
        assert len(seen) == 45
