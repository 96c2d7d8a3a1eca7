"""A company with one accepted request and its queued export job, written straight into the tables, so the
export pipeline's steps are tested without the GraphQL workflow in front of them.

The request carries two lines: line 1 (new, with a sub job, quantities and a modification into it) and line 2
(exported before, so not new). Its entries: line 1's original and modification, line 2's original.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from persistence import tables as t
from persistence.database import Database
from persistence.ids import new_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    company_id: str
    user_id: str
    project_id: str
    budget_id: str
    request_id: str
    export_id: str
    job_id: str
    line_ids: tuple[str, str]
    modification_id: str
    entry_ids: tuple[str, str, str]  # line 1 original, line 1 modification, line 2 original


async def seed_exporting(
    db: Database,
    *,
    connector: str | None = "scripted",
    settings: dict[str, Any] | None = None,
    status: str = "EXPORTING",
    job_status: str = "QUEUED",
    at: datetime = T0,
) -> Seeded:
    company, user, project, budget = new_id("Company"), new_id("User"), new_id("Project"), new_id("Budget")
    codes = [new_id("CostCode"), new_id("CostCode")]
    types = [new_id("CostType"), new_id("CostType")]
    lines = (new_id("BudgetLineItem"), new_id("BudgetLineItem"))
    modification, request, job = new_id("BudgetModification"), new_id("ErpRequest"), new_id("ExportJob")
    entries = (new_id("ExportEntry"), new_id("ExportEntry"), new_id("ExportEntry"))
    export_id = f"exp_{request[4:]}"
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(t.companies).values(
                id=company,
                name="Seeded Builders",
                currency="USD",
                erp_connector=connector,
                erp_settings=settings or {},
                created_at=at,
            )
        )
        await conn.execute(
            insert(t.users).values(id=user, company_id=company, email="a@example.com", name="A", created_at=at)
        )
        await conn.execute(
            insert(t.projects).values(
                id=project,
                company_id=company,
                name="Riverside MOB",
                number=f"P-{company[-6:]}",
                erp_job_id="JOB-7",
                created_at=at,
            )
        )
        await conn.execute(
            insert(t.budgets).values(
                id=budget,
                company_id=company,
                project_id=project,
                locked=True,
                locked_at=at,
                locked_by_id=user,
                version=7,
                export_status=status,
                last_request_id=request,
                request_count=2,
            )
        )
        await conn.execute(
            insert(t.cost_codes),
            [
                {
                    "id": codes[0],
                    "company_id": company,
                    "code": "03-300",
                    "description": "Concrete",
                    "erp_synced": True,
                },
                {"id": codes[1], "company_id": company, "code": "05-120", "description": "Steel", "erp_synced": True},
            ],
        )
        await conn.execute(
            insert(t.cost_types),
            [
                {"id": types[0], "company_id": company, "code": "L", "name": "Labor", "erp_synced": True},
                {"id": types[1], "company_id": company, "code": "S", "name": "Subcontract", "erp_synced": True},
            ],
        )
        common = {"company_id": company, "budget_id": budget, "modifications_amount": Decimal("0.00"), "created_at": at}
        await conn.execute(
            insert(t.line_items),
            [
                # Position 2 inserted first: the batch is ordered by position, not by insertion.
                {
                    **common,
                    "id": lines[1],
                    "cost_code_id": codes[1],
                    "cost_type_id": types[1],
                    "sub_job": "",
                    "description": "Steel, furnish & erect",
                    "original_amount": Decimal("486900.00"),
                    "quantity": None,
                    "unit_of_measure": None,
                    "unit_cost": None,
                    "position": 2,
                },
                {
                    **common,
                    "id": lines[0],
                    "cost_code_id": codes[0],
                    "cost_type_id": types[0],
                    "sub_job": "BLDG-A",
                    "description": None,
                    "original_amount": Decimal("125000.00"),
                    "quantity": Decimal("1500"),
                    "unit_of_measure": "HR",
                    "unit_cost": Decimal("83.3333"),
                    "position": 1,
                },
            ],
        )
        await conn.execute(
            insert(t.modifications).values(
                id=modification,
                company_id=company,
                budget_id=budget,
                number=1,
                to_line_item_id=lines[0],
                amount=Decimal("5000.00"),
                notes="CO #1",
                created_at=at,
                created_by_id=user,
            )
        )
        await conn.execute(
            insert(t.erp_requests).values(
                id=request,
                company_id=company,
                budget_id=budget,
                project_id=project,
                sequence=2,
                kind="UPDATE_BUDGET",
                status=status,
                sent_at=at,
                sent_by_id=user,
                decided_at=at,
                decided_by_id=user,
                export_attempts=0,
                export_id=export_id,
                total_original_budget=Decimal("611900.00"),
            )
        )
        row = {"request_id": request, "budget_changes": Decimal("0.00")}
        await conn.execute(
            insert(t.request_lines),
            [
                {
                    **row,
                    "position": 1,
                    "line_item_id": lines[0],
                    "cost_code": "03-300",
                    "cost_type": "L",
                    "sub_job": "BLDG-A",
                    "original_budget": Decimal("125000.00"),
                    "revised_estimate": Decimal("130000.00"),
                    "is_new_line": True,
                },
                {
                    **row,
                    "position": 2,
                    "sub_job": None,
                    "line_item_id": lines[1],
                    "cost_code": "05-120",
                    "cost_type": "S",
                    "original_budget": Decimal("486900.00"),
                    "revised_estimate": Decimal("486900.00"),
                    "is_new_line": False,
                },
            ],
        )
        entry = {"request_id": request, "budget_id": budget}
        await conn.execute(
            insert(t.export_entries),
            [
                {
                    **entry,
                    "id": entries[2],
                    "line_item_id": lines[1],
                    "kind": "ORIGINAL_BUDGET",
                    "source_id": lines[1],
                    "amount": Decimal("486900.00"),
                },
                {
                    **entry,
                    "id": entries[1],
                    "line_item_id": lines[0],
                    "kind": "BUDGET_MODIFICATION",
                    "source_id": modification,
                    "amount": Decimal("5000.00"),
                },
                {
                    **entry,
                    "id": entries[0],
                    "line_item_id": lines[0],
                    "kind": "ORIGINAL_BUDGET",
                    "source_id": lines[0],
                    "amount": Decimal("125000.00"),
                },
            ],
        )
        await conn.execute(
            insert(t.export_jobs).values(
                id=job,
                company_id=company,
                request_id=request,
                status=job_status,
                attempts=0,
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            )
        )
    return Seeded(
        company_id=company,
        user_id=user,
        project_id=project,
        budget_id=budget,
        request_id=request,
        export_id=export_id,
        job_id=job,
        line_ids=lines,
        modification_id=modification,
        entry_ids=entries,
    )


@dataclass(frozen=True)
class State:
    """What the pipeline may change, read back: the request, its budget, its jobs and the company's log."""

    request: dict[str, Any]
    budget: dict[str, Any]
    jobs: list[dict[str, Any]]
    events: list[dict[str, Any]]


async def state(db: Database, seeded: Seeded) -> State:
    async with db.read() as conn:
        request = (await conn.execute(select(t.erp_requests).where(t.erp_requests.c.id == seeded.request_id))).one()
        budget = (await conn.execute(select(t.budgets).where(t.budgets.c.id == seeded.budget_id))).one()
        jobs = await conn.execute(
            select(t.export_jobs).where(t.export_jobs.c.request_id == seeded.request_id).order_by(t.export_jobs.c.id)
        )
        events = await conn.execute(
            select(t.events).where(t.events.c.company_id == seeded.company_id).order_by(t.events.c.sequence)
        )
        return State(
            request=dict(request._mapping),
            budget=dict(budget._mapping),
            jobs=[dict(j._mapping) for j in jobs],
            events=[dict(e._mapping) for e in events],
        )


async def count_events(db: Database, company_id: str) -> int:
    async with db.read() as conn:
        stmt = select(func.count()).select_from(t.events).where(t.events.c.company_id == company_id)
        return int((await conn.execute(stmt)).scalar_one())
