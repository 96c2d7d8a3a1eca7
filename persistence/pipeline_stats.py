"""What the export queue and the notification outbox hold right now, for a /metrics scrape.

Read at scrape time by whichever process answers it, so every server process reports the same numbers
whatever it did itself. Only the rows still in flight are counted (finished ones pile up forever): each
query is an index range scan on (status, next_attempt_at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import export_jobs, notification_outbox
from persistence.unit_of_work import AWAITING_CALLBACK, QUEUED, RUNNING, OutboxStatus

ACTIVE_JOB_STATES = (QUEUED, RUNNING, AWAITING_CALLBACK)
WAITING_OUTBOX_STATES = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)


@dataclass(frozen=True)
class PipelineStats:
    jobs_by_state: dict[str, int] = field(default_factory=dict)  # every ACTIVE_JOB_STATES key, 0 when none
    oldest_due_job_seconds: float = 0.0  # how long the longest-waiting due QUEUED job has been due
    outbox_by_status: dict[str, int] = field(default_factory=dict)  # every WAITING_OUTBOX_STATES key
    oldest_due_notification_seconds: float = 0.0


async def read_pipeline_stats(conn: AsyncConnection, now: datetime) -> PipelineStats:
    jobs = dict.fromkeys(ACTIVE_JOB_STATES, 0)
    rows = await conn.execute(
        select(export_jobs.c.status, func.count())
        .where(export_jobs.c.status.in_(ACTIVE_JOB_STATES))
        .group_by(export_jobs.c.status)
    )
    jobs.update({status: int(count) for status, count in rows})
    oldest_job = (
        await conn.execute(
            select(func.min(export_jobs.c.next_attempt_at)).where(
                export_jobs.c.status == QUEUED, export_jobs.c.next_attempt_at <= now
            )
        )
    ).scalar_one()
    outbox = dict.fromkeys(WAITING_OUTBOX_STATES, 0)
    rows = await conn.execute(
        select(notification_outbox.c.status, func.count())
        .where(notification_outbox.c.status.in_(WAITING_OUTBOX_STATES))
        .group_by(notification_outbox.c.status)
    )
    outbox.update({status: int(count) for status, count in rows})
    oldest_notification = (
        await conn.execute(
            select(func.min(notification_outbox.c.next_attempt_at)).where(
                notification_outbox.c.status == OutboxStatus.PENDING.value,
                notification_outbox.c.next_attempt_at <= now,
            )
        )
    ).scalar_one()
    return PipelineStats(
        jobs_by_state=jobs,
        oldest_due_job_seconds=_age(now, oldest_job),
        outbox_by_status=outbox,
        oldest_due_notification_seconds=_age(now, oldest_notification),
    )


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
