"""The durable export queue (`export_jobs`) in SQL.

ACCEPT and retryExport enqueue a job in the decision's own transaction. Workers claim due jobs with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, plus a compare-and-set that also makes SQLite safe); a RUNNING job
whose lease ran out belongs to a worker that died mid-export and is claimed again (the connector's
de-duplication on the request's export id keeps that exactly-once). Each claim counts an attempt, a claim
after a crash too (an export that kills its worker every time must stop), but never past the maximum: a job
that already used every attempt is claimed `exhausted`, for the pipeline to fail it instead of running it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.ids import new_id
from persistence.records import ExportJobRecord
from persistence.repositories import execute
from persistence.tables import export_jobs
from persistence.unit_of_work import AWAITING_CALLBACK, DONE, QUEUED, RUNNING, ClaimedJob, JobQueue


class SqlJobQueue(JobQueue):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def enqueue(self, company_id: str, request_id: str, at: datetime) -> None:
        await execute(
            self._conn,
            export_jobs.insert().values(
                id=new_id("ExportJob"),
                company_id=company_id,
                request_id=request_id,
                status=QUEUED,
                attempts=0,
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            ),
        )

    async def claim(
        self, now: datetime, lease: timedelta, max_attempts: int, company_id: str | None = None
    ) -> ClaimedJob | None:
        due = or_(
            (export_jobs.c.status == QUEUED) & (export_jobs.c.next_attempt_at <= now),
            (export_jobs.c.status == RUNNING) & (export_jobs.c.lease_until < now),
        )
        stmt = select(export_jobs).where(due).order_by(export_jobs.c.next_attempt_at).limit(1)
        if company_id is not None:  # a worker dedicated to one company (`budgetbridge worker --company`)
            stmt = stmt.where(export_jobs.c.company_id == company_id)
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        job = (await self._conn.execute(stmt)).first()
        if job is None:
            return None
        exhausted = job.attempts >= max_attempts
        attempts = job.attempts if exhausted else job.attempts + 1
        # Compare-and-set on what we read: on SQLite (no row locks) two workers cannot both win.
        result = await execute(
            self._conn,
            update(export_jobs)
            .where(
                export_jobs.c.id == job.id,
                export_jobs.c.status == job.status,
                export_jobs.c.updated_at == job.updated_at,
            )
            .values(status=RUNNING, attempts=attempts, lease_until=now + lease, updated_at=now),
        )
        if result.rowcount != 1:
            return None
        return ClaimedJob(id=job.id, request_id=job.request_id, attempts=attempts, exhausted=exhausted)

    async def get(self, job_id: str) -> ExportJobRecord | None:
        row = (await self._conn.execute(select(export_jobs).where(export_jobs.c.id == job_id))).first()
        return ExportJobRecord.of(row) if row is not None else None

    async def finish(self, job_id: str, status: str, at: datetime, error: str | None = None) -> None:
        await execute(
            self._conn,
            update(export_jobs)
            .where(export_jobs.c.id == job_id)
            .values(status=status, lease_until=None, updated_at=at, last_error=error),
        )

    async def requeue(self, job_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None:
        await execute(
            self._conn,
            update(export_jobs)
            .where(export_jobs.c.id == job_id)
            .values(status=QUEUED, lease_until=None, updated_at=at, next_attempt_at=next_attempt_at, last_error=error),
        )

    async def overdue_callbacks(self, now: datetime, wait: timedelta, company_id: str | None) -> list[ClaimedJob]:
        stmt = select(export_jobs).where(
            export_jobs.c.status == AWAITING_CALLBACK, export_jobs.c.updated_at < now - wait
        )
        if company_id is not None:
            stmt = stmt.where(export_jobs.c.company_id == company_id)
        return [
            ClaimedJob(id=j.id, request_id=j.request_id, attempts=j.attempts) for j in await self._conn.execute(stmt)
        ]

    async def close_awaiting_callback(self, request_id: str, at: datetime) -> None:
        await execute(
            self._conn,
            update(export_jobs)
            .where(export_jobs.c.request_id == request_id, export_jobs.c.status == AWAITING_CALLBACK)
            .values(status=DONE, updated_at=at),
        )
