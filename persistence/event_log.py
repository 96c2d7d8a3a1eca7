"""The event log: audit trail, outbox and replay source in one table.

Each event is written in the transaction of the change it records. Its sequence comes from the company row
(`UPDATE ... RETURNING`), which also holds that row's lock until commit: two transactions of one company
cannot interleave their sequences, so a reader that has seen N has seen every event below N.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import BudgetEvent
from persistence.tables import companies, events


async def append(conn: AsyncConnection, company_id: str, event: BudgetEvent, at: datetime) -> int:
    sequence = (
        await conn.execute(
            update(companies)
            .where(companies.c.id == company_id)
            .values(event_sequence=companies.c.event_sequence + 1)
            .returning(companies.c.event_sequence)
        )
    ).scalar_one()
    await conn.execute(
        insert(events).values(
            company_id=company_id,
            sequence=sequence,
            occurred_at=at,
            type=event.type,
            actor_id=event.actor_id,
            project_id=event.project_id,
            budget_id=event.budget_id,
            erp_request_id=event.erp_request_id,
            previous_status=event.previous_status.value if event.previous_status else None,
            status=event.status.value,
            reason=event.reason,
            data=dict(event.data),
        )
    )
    return int(sequence)


async def budget_history(conn: AsyncConnection, budget_id: str, *, limit: int, before: int | None) -> list[Row]:
    stmt = select(events).where(events.c.budget_id == budget_id)
    if before is not None:
        stmt = stmt.where(events.c.sequence < before)
    return list((await conn.execute(stmt.order_by(events.c.sequence.desc()).limit(limit))).all())


async def company_events_after(conn: AsyncConnection, company_id: str, after: int, *, limit: int = 500) -> list[Row]:
    stmt = (
        select(events)
        .where(events.c.company_id == company_id, events.c.sequence > after)
        .order_by(events.c.sequence)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())
