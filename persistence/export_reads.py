"""The reads the export pipeline needs beyond the repositories, outside any write transaction.

A worker loads a claimed request's batch (its frozen entries with their lines, cost codes and types,
modifications and request lines, as the connector sees them), asks which requests await posting at a
company whose connector can see Job Cost, and checks cheaply whether any integrator callback is overdue
before it opens a write transaction. The SQL is here; the pipeline gets values and records through the
`ExportReads` seam (`SqlExportReads` on a database, a stand-in in tests).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.status import ExportStatus
from erp.base import ExportBatch, ExportItem
from persistence.database import Database
from persistence.records import CompanyRecord, Record
from persistence.tables import (
    companies,
    cost_codes,
    cost_types,
    erp_requests,
    export_entries,
    export_jobs,
    line_items,
    modifications,
    projects,
    request_lines,
)
from persistence.unit_of_work import AWAITING_CALLBACK

ORIGINAL_BUDGET = "ORIGINAL_BUDGET"


@dataclass(frozen=True)
class LoadedExport:
    """A request's batch, with the company whose connector (and options) exports it."""

    company: CompanyRecord
    batch: ExportBatch


@dataclass(frozen=True, slots=True)
class PostingCheck(Record):
    """A request awaiting posting at a company whose connector may see the posting."""

    id: str  # the request's
    export_id: str
    company_id: str
    erp_connector: str
    erp_settings: dict[str, Any]


async def export_batch(conn: AsyncConnection, request_id: str, today: date) -> LoadedExport | None:
    """The request's entries as the connector sees them, or None unless the request is EXPORTING."""
    header = (
        await conn.execute(
            select(
                erp_requests,
                projects.c.erp_job_id,
                projects.c.number.label("job_number"),
                projects.c.name.label("job_name"),
            )
            .join(projects, projects.c.id == erp_requests.c.project_id)
            .where(erp_requests.c.id == request_id)
        )
    ).first()
    if header is None or header.status != ExportStatus.EXPORTING.value:
        return None
    company_row = (await conn.execute(select(companies).where(companies.c.id == header.company_id))).one()
    stmt = (
        select(
            export_entries,
            line_items.c.quantity,
            line_items.c.unit_of_measure,
            line_items.c.unit_cost,
            line_items.c.sub_job,
            line_items.c.description,
            line_items.c.position,
            # Lines are frozen while their request is pending or exporting: this is the total the request
            # brings the line to (a target that replaces estimates, like Vista, needs the total, not the delta).
            line_items.c.original_amount.label("line_original_amount"),
            cost_codes.c.code.label("cost_code"),
            cost_codes.c.description.label("cost_code_description"),
            cost_types.c.code.label("cost_type"),
            modifications.c.number.label("modification_number"),
            modifications.c.notes.label("modification_notes"),
            request_lines.c.is_new_line,
        )
        .join(line_items, line_items.c.id == export_entries.c.line_item_id)
        .join(
            request_lines,
            (request_lines.c.request_id == export_entries.c.request_id)
            & (request_lines.c.line_item_id == export_entries.c.line_item_id),
        )
        .join(cost_codes, cost_codes.c.id == line_items.c.cost_code_id)
        .join(cost_types, cost_types.c.id == line_items.c.cost_type_id)
        .outerjoin(modifications, modifications.c.id == export_entries.c.source_id)
        .where(export_entries.c.request_id == request_id)
        .order_by(line_items.c.position, export_entries.c.kind.desc(), modifications.c.number, export_entries.c.id)
    )
    items = tuple(
        ExportItem(
            entry_id=r.id,
            line_item_id=r.line_item_id,
            cost_code=r.cost_code,
            cost_code_description=r.cost_code_description,
            cost_type=r.cost_type,
            sub_job=r.sub_job or None,
            description=r.description,
            kind=r.kind,
            amount=r.amount,
            quantity=r.quantity,
            unit_of_measure=r.unit_of_measure,
            unit_cost=r.unit_cost,
            modification_number=r.modification_number,
            modification_notes=r.modification_notes,
            is_new_line=bool(r.is_new_line) and r.kind == ORIGINAL_BUDGET,
            line_original_amount=r.line_original_amount if r.kind == ORIGINAL_BUDGET else None,
        )
        for r in await conn.execute(stmt)
    )
    batch = ExportBatch(
        export_id=header.export_id,
        company_id=header.company_id,
        request_id=header.id,
        request_sequence=header.sequence,
        request_kind=header.kind,
        erp_job_id=header.erp_job_id or "",
        job_number=header.job_number,
        job_name=header.job_name,
        export_date=today,
        items=items,
    )
    return LoadedExport(company=CompanyRecord.of(company_row), batch=batch)


async def awaiting_posting(
    conn: AsyncConnection, connectors: Sequence[str], company_id: str | None = None, limit: int = 200
) -> list[PostingCheck]:
    """Requests awaiting posting whose company's connector is one of `connectors`, oldest export first."""
    stmt = (
        select(
            erp_requests.c.id,
            erp_requests.c.export_id,
            companies.c.id.label("company_id"),
            companies.c.erp_connector,
            companies.c.erp_settings,
        )
        .join(companies, companies.c.id == erp_requests.c.company_id)
        .where(
            erp_requests.c.status == ExportStatus.AWAITING_POSTING.value,
            companies.c.erp_connector.in_(list(connectors)),
        )
        .order_by(erp_requests.c.exported_at)
        .limit(limit)
    )
    if company_id is not None:
        stmt = stmt.where(erp_requests.c.company_id == company_id)
    return [PostingCheck.of(row) for row in await conn.execute(stmt)]


async def any_overdue_callback(conn: AsyncConnection, now: datetime, wait: timedelta, company_id: str | None) -> bool:
    """Whether a deferred export has waited longer than `wait` for its integrator's callback."""
    stmt = select(export_jobs.c.id).where(
        export_jobs.c.status == AWAITING_CALLBACK, export_jobs.c.updated_at < now - wait
    )
    if company_id is not None:
        stmt = stmt.where(export_jobs.c.company_id == company_id)
    return (await conn.execute(stmt.limit(1))).first() is not None


class ExportReads(abc.ABC):
    """The pipeline's reads outside a transaction (each call reads committed data)."""

    @abc.abstractmethod
    async def export_batch(self, request_id: str, today: date) -> LoadedExport | None: ...

    @abc.abstractmethod
    async def awaiting_posting(
        self, connectors: Sequence[str], company_id: str | None = None, limit: int = 200
    ) -> list[PostingCheck]: ...

    @abc.abstractmethod
    async def any_overdue_callback(self, now: datetime, wait: timedelta, company_id: str | None) -> bool: ...


class SqlExportReads(ExportReads):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def export_batch(self, request_id: str, today: date) -> LoadedExport | None:
        async with self._db.read() as conn:
            return await export_batch(conn, request_id, today)

    async def awaiting_posting(
        self, connectors: Sequence[str], company_id: str | None = None, limit: int = 200
    ) -> list[PostingCheck]:
        if not connectors:
            return []
        async with self._db.read() as conn:
            return await awaiting_posting(conn, connectors, company_id, limit)

    async def any_overdue_callback(self, now: datetime, wait: timedelta, company_id: str | None) -> bool:
        async with self._db.read() as conn:
            return await any_overdue_callback(conn, now, wait, company_id)
