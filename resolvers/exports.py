"""The export pipeline behind ACCEPT: a durable job queue in the database, and what a worker does with a
job. Every state change of a request goes through mutations.apply_request_action, so the transition table,
the budget's export status and the event log stay in step whatever path moved the request (worker,
posting detection, integrator callback)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.budget import ExportStatus, RequestAction
from domain.errors import DomainError
from erp.base import ExportBatch, ExportItem
from persistence import reads, writes
from persistence.ids import new_id
from persistence.tables import (
    budgets,
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
from resolvers.context import Services
from resolvers.transitions import apply_request_action

QUEUED, RUNNING, AWAITING_CALLBACK, DONE, FAILED = "QUEUED", "RUNNING", "AWAITING_CALLBACK", "DONE", "FAILED"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 2.0
    cap_seconds: float = 300.0
    lease_seconds: float = 120.0

    def backoff(self, attempts: int) -> timedelta:
        """Exponential with full jitter: retries of many requests do not hit a recovering ERP together."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


async def enqueue(conn: AsyncConnection, company_id: str, request_id: str, at: datetime) -> None:
    """Called inside the ACCEPT / retryExport transaction: the job exists iff the decision committed."""
    await writes.insert_row(
        conn,
        export_jobs,
        id=new_id("ExportJob"),
        company_id=company_id,
        request_id=request_id,
        status=QUEUED,
        attempts=0,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
    )


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    request_id: str
    attempts: int


async def claim(
    conn: AsyncConnection, now: datetime, policy: RetryPolicy, company_id: str | None = None
) -> ClaimedJob | None:
    """The next due job, leased to the caller. A RUNNING job whose lease ran out belongs to a worker that
    died mid-export; it is claimed again (the connector's de-duplication keeps that exactly-once)."""
    due = or_(
        (export_jobs.c.status == QUEUED) & (export_jobs.c.next_attempt_at <= now),
        (export_jobs.c.status == RUNNING) & (export_jobs.c.lease_until < now),
    )
    stmt = select(export_jobs).where(due).order_by(export_jobs.c.next_attempt_at).limit(1)
    if company_id is not None:  # a worker dedicated to one company (`budgetbridge worker --company`)
        stmt = stmt.where(export_jobs.c.company_id == company_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job = (await conn.execute(stmt)).first()
    if job is None:
        return None
    # Compare-and-set on what we read: on SQLite (no row locks) two workers cannot both win.
    result = await conn.execute(
        update(export_jobs)
        .where(
            export_jobs.c.id == job.id, export_jobs.c.status == job.status, export_jobs.c.updated_at == job.updated_at
        )
        .values(
            status=RUNNING,
            attempts=job.attempts + 1,
            lease_until=now + timedelta(seconds=policy.lease_seconds),
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return None
    return ClaimedJob(id=job.id, request_id=job.request_id, attempts=job.attempts + 1)


async def export_batch(conn: AsyncConnection, request_id: str, today: Any) -> tuple[Row, ExportBatch] | None:
    """The request's frozen entries as the connector sees them, with the company row (connector + options)."""
    request = (await reads.rows_by_ids(conn, erp_requests, [request_id], None) or [None])[0]
    if request is None or request.status != ExportStatus.EXPORTING.value:
        return None
    company = (await reads.rows_by_ids(conn, companies, [request.company_id], None))[0]
    project = (await reads.rows_by_ids(conn, projects, [request.project_id], None))[0]
    stmt = (
        select(
            export_entries,
            line_items.c.quantity,
            line_items.c.unit_of_measure,
            line_items.c.unit_cost,
            line_items.c.sub_job,
            line_items.c.description,
            line_items.c.position,
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
        .where(export_entries.c.request_id == request.id)
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
            is_new_line=r.is_new_line and r.kind == "ORIGINAL_BUDGET",
        )
        for r in (await conn.execute(stmt)).all()
    )
    batch = ExportBatch(
        export_id=request.export_id,
        company_id=request.company_id,
        request_id=request.id,
        request_sequence=request.sequence,
        request_kind=request.kind,
        erp_job_id=project.erp_job_id or "",
        job_number=project.number,
        job_name=project.name,
        export_date=today,
        items=items,
    )
    return company, batch


async def _request_and_budget(conn: AsyncConnection, request_id: str) -> tuple[Row, Row]:
    request = (await reads.rows_by_ids(conn, erp_requests, [request_id], None))[0]
    budget = (await conn.execute(select(budgets).where(budgets.c.id == request.budget_id).with_for_update())).one()
    # Re-read under the budget's lock: decide on the committed status.
    request = (await reads.rows_by_ids(conn, erp_requests, [request_id], None))[0]
    return request, budget


async def _finish_job(conn: AsyncConnection, job_id: str, status: str, at: datetime, error: str | None = None) -> None:
    await writes.update_row(conn, export_jobs, job_id, status=status, lease_until=None, updated_at=at, last_error=error)


async def record_success(
    conn: AsyncConnection,
    job: ClaimedJob,
    at: datetime,
    *,
    erp_reference: str | None,
    deferred: bool,
    requires_posting: bool,
) -> ExportStatus | None:
    request, budget = await _request_and_budget(conn, job.request_id)
    if request.status != ExportStatus.EXPORTING.value:
        await _finish_job(conn, job.id, DONE, at)
        return None  # already recorded (a callback, or another worker)
    if deferred:
        await writes.update_row(
            conn,
            erp_requests,
            request.id,
            export_attempts=job.attempts,
            erp_reference=erp_reference or request.erp_reference,
        )
        await _finish_job(conn, job.id, AWAITING_CALLBACK, at)
        return None
    await _finish_job(conn, job.id, DONE, at)
    return await _exported(conn, request, budget, at, erp_reference, requires_posting, attempts=job.attempts)


async def _exported(
    conn: AsyncConnection,
    request: Row,
    budget: Row,
    at: datetime,
    erp_reference: str | None,
    requires_posting: bool,
    *,
    attempts: int | None = None,
) -> ExportStatus:
    action = RequestAction.EXPORT_WRITTEN if requires_posting else RequestAction.EXPORT_POSTED
    values: dict[str, Any] = {
        "exported_at": at,
        "erp_reference": erp_reference or request.erp_reference,
        "failure_message": None,
    }
    if attempts is not None:
        values["export_attempts"] = attempts
    if not requires_posting:
        values["posted_at"] = at
    return await apply_request_action(conn, budget, request, action, actor_id=None, at=at, **values)


async def record_failure(
    conn: AsyncConnection, job: ClaimedJob, at: datetime, message: str, *, retryable: bool, policy: RetryPolicy
) -> ExportStatus | None:
    """A retryable failure with attempts left re-queues the job (the request stays EXPORTING); anything
    else fails the request with the connector's message, for the approver to read and retry."""
    request, budget = await _request_and_budget(conn, job.request_id)
    if request.status != ExportStatus.EXPORTING.value:
        await _finish_job(conn, job.id, DONE, at)
        return None
    if retryable and job.attempts < policy.max_attempts:
        await writes.update_row(
            conn,
            export_jobs,
            job.id,
            status=QUEUED,
            lease_until=None,
            updated_at=at,
            next_attempt_at=at + policy.backoff(job.attempts),
            last_error=message,
        )
        await writes.update_row(conn, erp_requests, request.id, export_attempts=job.attempts)
        return None
    await _finish_job(conn, job.id, FAILED, at, message)
    return await _failed(conn, request, budget, at, message, attempts=job.attempts)


async def _failed(
    conn: AsyncConnection, request: Row, budget: Row, at: datetime, message: str, *, attempts: int | None = None
) -> ExportStatus:
    values: dict[str, Any] = {"failure_message": message}
    if attempts is not None:
        values["export_attempts"] = attempts
    return await apply_request_action(
        conn, budget, request, RequestAction.EXPORT_FAILED, actor_id=None, at=at, reason=message, **values
    )


async def overdue_callbacks(
    conn: AsyncConnection, now: datetime, wait: timedelta, company_id: str | None = None
) -> list[ClaimedJob]:
    """Deferred exports whose integrator has not reported the outcome within `wait`."""
    stmt = select(export_jobs).where(export_jobs.c.status == AWAITING_CALLBACK, export_jobs.c.updated_at < now - wait)
    if company_id is not None:
        stmt = stmt.where(export_jobs.c.company_id == company_id)
    return [ClaimedJob(id=j.id, request_id=j.request_id, attempts=j.attempts) for j in await conn.execute(stmt)]


async def companies_of_requests(conn: AsyncConnection, request_ids: list[str]) -> set[str]:
    rows = await reads.rows_by_ids(conn, erp_requests, request_ids, None)
    return {row.company_id for row in rows}


async def awaiting_posting(
    conn: AsyncConnection, connectors: list[str], company_id: str | None = None, limit: int = 200
) -> list[Row]:
    """Requests awaiting posting whose company's connector can detect posting."""
    stmt = (
        select(
            erp_requests.c.id,
            erp_requests.c.export_id,
            companies.c.id.label("company_id"),
            companies.c.erp_connector,
            companies.c.erp_settings,
        )
        .join(companies, companies.c.id == erp_requests.c.company_id)
        .where(erp_requests.c.status == ExportStatus.AWAITING_POSTING.value, companies.c.erp_connector.in_(connectors))
        .order_by(erp_requests.c.exported_at)
        .limit(limit)
    )
    if company_id is not None:
        stmt = stmt.where(erp_requests.c.company_id == company_id)
    return list((await conn.execute(stmt)).all())


async def record_posted(conn: AsyncConnection, request_id: str, at: datetime) -> ExportStatus | None:
    """The connector saw the entries posted in Job Cost: the same transition an integrator's confirmation makes."""
    request, budget = await _request_and_budget(conn, request_id)
    if request.status != ExportStatus.AWAITING_POSTING.value:
        return None
    return await apply_request_action(
        conn, budget, request, RequestAction.CONFIRM_POSTING, actor_id=None, at=at, posted_at=at
    )


# --- integrator callbacks (POST /erp/callbacks/webhook) -------------------------------------------------


class CallbackRejectedError(Exception):
    """The callback is authentic but does not fit the request's state (e.g. success for a synced request)."""


async def _request_by_export_id(conn: AsyncConnection, export_id: str) -> Row | None:
    return (await conn.execute(select(erp_requests).where(erp_requests.c.export_id == export_id))).first()


async def webhook_secret_for_export(services: Services, export_id: str) -> str | None:
    async with services.db.read() as conn:
        request = await _request_by_export_id(conn, export_id)
        if request is None:
            return None
        company = (await reads.rows_by_ids(conn, companies, [request.company_id], None))[0]
    if company.erp_connector != "webhook":
        return None
    secret = (company.erp_settings or {}).get("secret")
    return secret if isinstance(secret, str) and secret else None


async def apply_callback(
    services: Services, export_id: str, status: str, *, erp_reference: str | None = None, message: str | None = None
) -> str:
    """success -> AWAITING_POSTING (or SYNCED when the ERP posts at once); failure -> EXPORT_FAILED with the
    integrator's messages; posted -> SYNCED. Repeating a callback that already took effect is harmless."""
    now = services.clock()
    async with services.db.unit_of_work() as uow:
        conn = uow.conn
        found = await _request_by_export_id(conn, export_id)
        if found is None:
            raise CallbackRejectedError("unknown export")
        request, budget = await _request_and_budget(conn, found.id)
        company = (await reads.rows_by_ids(conn, companies, [request.company_id], None))[0]
        connector = services.connectors.get(company.erp_connector, company.erp_settings)
        requires_posting = connector.capabilities.requires_posting if connector else True
        current = ExportStatus(request.status)
        try:
            if status == "success":
                if current is not ExportStatus.EXPORTING:
                    return current.value
                new = await _exported(conn, request, budget, now, erp_reference, requires_posting)
            elif status == "failure":
                if current is not ExportStatus.EXPORTING:
                    return current.value
                new = await _failed(conn, request, budget, now, message or "the integrator reported a failure")
            elif status == "posted":
                if current is ExportStatus.SYNCED:
                    return current.value
                if current is ExportStatus.EXPORTING:
                    await _exported(conn, request, budget, now, erp_reference, True)
                    request, budget = await _request_and_budget(conn, found.id)
                new = await apply_request_action(
                    conn, budget, request, RequestAction.CONFIRM_POSTING, actor_id=None, at=now, posted_at=now
                )
            else:
                raise CallbackRejectedError("status must be success, failure or posted")
        except DomainError as exc:
            raise CallbackRejectedError(exc.message) from None
        await conn.execute(
            update(export_jobs)
            .where(export_jobs.c.request_id == request.id, export_jobs.c.status == AWAITING_CALLBACK)
            .values(status=DONE, updated_at=now)
        )
        await uow.commit()
    services.events_committed(request.company_id)
    return new.value
