"""What a worker does with an export job, each state change one unit of work through `run_unit`.

ACCEPT (and retryExport) queue a job in the decision's own transaction (`uow.jobs.enqueue`). A worker claims
a due job with a lease, loads its batch (persistence.export_reads), runs the connector outside any
transaction, and records the outcome here: success (the entries are written, or written and posted),
deferred (an integrator will call back), or a failure that is re-queued with backoff until the attempts run
out. Posting detection and the integrators' callbacks (resolvers.export_callbacks) move requests the same
way. Every move of a request goes through `apply_request_action`, so the transition table, the budget's
export status and the event log stay in step whatever path moved it; the unit of work wakes the company's
subscribers once it committed, so nothing here notifies by hand.

The functions take the time of the change (`at`): the caller owns the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.status import ExportStatus, RequestAction
from erp.base import Connector, ConnectorError, ExportBatch, FormatInvalidError
from persistence.records import BudgetRecord, ErpRequestRecord
from persistence.unit_of_work import AWAITING_CALLBACK, DONE, FAILED, AbstractUnitOfWork, ClaimedJob
from resolvers.context import Services
from resolvers.service import run_unit
from resolvers.transitions import apply_request_action

__all__ = [
    "ClaimedJob",
    "RetryPolicy",
    "check_format",
    "claim",
    "describe_failure",
    "exported",
    "fail_overdue_callbacks",
    "failed",
    "locked_request",
    "record_failure",
    "record_moved_on",
    "record_posted",
    "record_success",
]

EXPORTING = ExportStatus.EXPORTING.value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 2.0
    cap_seconds: float = 300.0
    lease_seconds: float = 120.0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential with full jitter: retries of many requests do not hit a recovering ERP together."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def describe_failure(exc: BaseException, timeout: float) -> tuple[str, bool]:
    """The message the approver reads for a failed export, and whether another attempt may succeed."""
    if isinstance(exc, ConnectorError):
        return str(exc) or "the ERP refused the export", exc.retryable
    if isinstance(exc, TimeoutError):
        return f"the ERP did not answer within {timeout:g} s", True
    return f"the ERP could not be reached ({exc})", True


FORMAT_CHANGED_NOTE = (
    "Nothing was written. The request passed this check when it was sent, so the company's ERP connection "
    "changed since: correct the connection's options and retry the export"
)


def check_format(connector: Connector, batch: ExportBatch) -> None:
    """The connector's format check, again, right before the export: the one sendBlockers and sendToERP ran on
    what the send would contain (resolvers.budget_state.format_problems). A connection whose options changed
    since the send (another cost type map, another connector) fails the export here, not retried, with every
    violation in the message, instead of writing a file the ERP cannot import."""
    violations = connector.validate(batch)
    if violations:
        target = getattr(connector, "target", None) or connector.display_name
        raise FormatInvalidError(target, violations, FORMAT_CHANGED_NOTE)


# --- steps inside a unit of work (shared with the callbacks) ----------------------------------------------


async def locked_request(uow: AbstractUnitOfWork, request_id: str) -> tuple[ErpRequestRecord, BudgetRecord] | None:
    """The request and its budget, the budget locked; the request re-read under that lock, so what is decided
    is the committed status (another worker or a callback may have moved it meanwhile)."""
    request = await uow.requests.get(None, request_id)
    if request is None:
        return None
    budget = await uow.budgets.get_for_update(None, request.budget_id)
    request = await uow.requests.get(None, request_id)
    if budget is None or request is None:
        return None
    return request, budget


async def exported(
    uow: AbstractUnitOfWork,
    request: ErpRequestRecord,
    budget: BudgetRecord,
    at: datetime,
    erp_reference: str | None,
    requires_posting: bool,
    *,
    attempts: int | None = None,
) -> ExportStatus:
    """The ERP has the entries: AWAITING_POSTING, or SYNCED where the ERP posts them at once."""
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
    return await apply_request_action(uow, budget, request, action, actor_id=None, at=at, **values)


async def failed(
    uow: AbstractUnitOfWork,
    request: ErpRequestRecord,
    budget: BudgetRecord,
    at: datetime,
    message: str,
    *,
    attempts: int | None = None,
) -> ExportStatus:
    """EXPORT_FAILED with the message the approver reads (and may retry after)."""
    values: dict[str, Any] = {"failure_message": message}
    if attempts is not None:
        values["export_attempts"] = attempts
    return await apply_request_action(
        uow, budget, request, RequestAction.EXPORT_FAILED, actor_id=None, at=at, reason=message, **values
    )


async def _fail_job(
    uow: AbstractUnitOfWork, job: ClaimedJob, at: datetime, message: str, *, retry_at: datetime | None
) -> ExportStatus | None:
    locked = await locked_request(uow, job.request_id)
    if locked is None or locked[0].status != EXPORTING:
        await uow.jobs.finish(job.id, DONE, at)  # already recorded (a callback, or another worker)
        return None
    request, budget = locked
    if retry_at is not None:
        await uow.jobs.requeue(job.id, at, retry_at, message)
        await uow.requests.update(request.id, export_attempts=job.attempts)
        return None
    await uow.jobs.finish(job.id, FAILED, at, message)
    return await failed(uow, request, budget, at, message, attempts=job.attempts)


# --- one unit of work each --------------------------------------------------------------------------------


def interrupted_message(attempts: int) -> str:
    return (
        f"the export was interrupted during its last attempt ({attempts} of {attempts}): the worker stopped "
        "before it recorded the ERP's answer. Retry the export: the ERP de-duplicates on the export id, so "
        "nothing is written twice"
    )


async def claim(
    services: Services, at: datetime, policy: RetryPolicy, company_id: str | None = None
) -> ClaimedJob | None:
    """The next due job, leased to the caller for `policy.lease`; a RUNNING job whose lease ran out belongs to a
    worker that died mid-export and is claimed again (the connector's de-duplication keeps that exactly-once).
    A job whose worker died during its last allowed attempt is not run again: its request fails
    (EXPORT_FAILED, for the approver to retry) and the next due job is claimed. `company_id`: a worker
    dedicated to one company."""

    async def body(uow: AbstractUnitOfWork) -> ClaimedJob | None:
        return await uow.jobs.claim(at, policy.lease, policy.max_attempts, company_id)

    while True:
        job = await run_unit(services, body)
        if job is None or not job.exhausted:
            return job

        # Its own unit of work: failing locks the budget, which must come before any other lock (LockOrder).
        async def give_up(uow: AbstractUnitOfWork, job: ClaimedJob = job) -> ExportStatus | None:
            return await _fail_job(uow, job, at, interrupted_message(job.attempts), retry_at=None)

        await run_unit(services, give_up)


async def record_success(
    services: Services,
    job: ClaimedJob,
    at: datetime,
    *,
    erp_reference: str | None,
    deferred: bool,
    requires_posting: bool,
) -> ExportStatus | None:
    """The connector took the batch. Deferred: the request stays EXPORTING and the job waits for the
    integrator's callback. Returns the request's new status, None when it did not move."""

    async def body(uow: AbstractUnitOfWork) -> ExportStatus | None:
        locked = await locked_request(uow, job.request_id)
        if locked is None or locked[0].status != EXPORTING:
            await uow.jobs.finish(job.id, DONE, at)
            return None  # already recorded (a callback, or another worker)
        request, budget = locked
        if deferred:
            await uow.requests.update(
                request.id, export_attempts=job.attempts, erp_reference=erp_reference or request.erp_reference
            )
            await uow.jobs.finish(job.id, AWAITING_CALLBACK, at)
            return None
        await uow.jobs.finish(job.id, DONE, at)
        return await exported(uow, request, budget, at, erp_reference, requires_posting, attempts=job.attempts)

    return await run_unit(services, body)


async def record_failure(
    services: Services, job: ClaimedJob, at: datetime, message: str, *, retryable: bool, policy: RetryPolicy
) -> ExportStatus | None:
    """A retryable failure with attempts left re-queues the job with backoff (the request stays EXPORTING);
    anything else fails the request with the connector's message, for the approver to read and retry."""
    retry_at = at + policy.backoff(job.attempts) if retryable and job.attempts < policy.max_attempts else None

    async def body(uow: AbstractUnitOfWork) -> ExportStatus | None:
        return await _fail_job(uow, job, at, message, retry_at=retry_at)

    return await run_unit(services, body)


async def record_moved_on(services: Services, job: ClaimedJob, at: datetime) -> None:
    """The claimed job's request is no longer EXPORTING (a callback or another worker recorded it): close the
    job. Should the request be EXPORTING again by now, the job is left to its lease and claimed anew."""

    async def body(uow: AbstractUnitOfWork) -> None:
        request = await uow.requests.get(None, job.request_id)
        if request is None or request.status != EXPORTING:
            await uow.jobs.finish(job.id, DONE, at)

    await run_unit(services, body)


async def fail_overdue_callbacks(
    services: Services, at: datetime, wait: timedelta, company_id: str | None = None
) -> list[str]:
    """Deferred exports whose integrator has not reported the outcome within `wait` fail visibly, so the
    approver can look and retry, instead of staying EXPORTING forever. Returns the failed requests' ids."""
    message = f"the integrator did not report the outcome within {wait}"

    async def overdue(uow: AbstractUnitOfWork) -> list[ClaimedJob]:
        return await uow.jobs.overdue_callbacks(at, wait, company_id)

    failed_ids = []
    # One unit of work per job: each locks its own budget before the company's event counter (LockOrder);
    # failing several in one unit would lock the second budget while holding the counter.
    for job in await run_unit(services, overdue):

        async def body(uow: AbstractUnitOfWork, job: ClaimedJob = job) -> ExportStatus | None:
            return await _fail_job(uow, job, at, message, retry_at=None)

        if await run_unit(services, body) is not None:
            failed_ids.append(job.request_id)
    return failed_ids


async def record_posted(services: Services, request_id: str, at: datetime) -> ExportStatus | None:
    """The connector saw the entries posted in Job Cost: the same transition an integrator's confirmation
    makes. None when the request no longer awaits posting."""

    async def body(uow: AbstractUnitOfWork) -> ExportStatus | None:
        locked = await locked_request(uow, request_id)
        if locked is None or locked[0].status != ExportStatus.AWAITING_POSTING.value:
            return None
        request, budget = locked
        return await apply_request_action(
            uow, budget, request, RequestAction.CONFIRM_POSTING, actor_id=None, at=at, posted_at=at
        )

    return await run_unit(services, body)
