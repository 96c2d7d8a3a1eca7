"""Runs accepted exports: inside the server (default) and as `budgetbridge worker` for deployments.

The queue is the `export_jobs` table, written in the ACCEPT's own transaction. A worker claims a due job
with a lease (SKIP LOCKED on PostgreSQL), runs the connector with a timeout, and records the outcome:
retryable failures go back to the queue with exponential backoff until the attempts run out. A worker
that dies mid-export leaves its lease to expire and another claims the job again; the connector's
de-duplication on the request's export id makes that exactly-once. Each pass also asks connectors that
can see the ERP's Job Cost whether awaiting requests were posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import timedelta

from app.tasks import cancel_and_wait
from erp.base import ConnectorError
from erp.registry import ConnectorRegistry, posting_detectors
from persistence.database import Database
from resolvers import exports
from resolvers.context import utc_now

log = logging.getLogger("budgetbridge.exports")

# Test-only fault injection: die between the ERP write and our commit (see tests/erp/test_exactly_once.py).
CRASH_AFTER_EXPORT = os.environ.get("BUDGETBRIDGE_FAULT_INJECTION") == "crash-after-export"


class ExportWorker:
    def __init__(
        self,
        db: Database,
        connectors: ConnectorRegistry,
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 30.0,
        policy: exports.RetryPolicy | None = None,
        callback_wait_seconds: float = 24 * 3600,
        events_committed: Callable[[str], None] = lambda company_id: None,
        company_id: str | None = None,
    ) -> None:
        self._db = db
        self.company_id = company_id  # None: every company
        self._connectors = connectors
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self.policy = policy or exports.RetryPolicy()
        self._callback_wait = timedelta(seconds=callback_wait_seconds)
        self._events_committed = events_committed
        self._detectors = posting_detectors()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="export-worker")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, 10, "the export worker")

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # an outage must not kill the worker; the next pass tries again
                log.exception("export pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def run_once(self) -> int:
        """Run every job that is due now, then check posting. Returns how many jobs ran."""
        ran = 0
        while await self.run_next_job():
            ran += 1
        await self.detect_posting()
        await self.fail_overdue_callbacks()
        return ran

    async def run_next_job(self) -> bool:
        async with self._db.unit_of_work() as uow:
            job = await exports.claim(uow.conn, utc_now(), self.policy, self.company_id)
            await uow.commit()
        if job is None:
            return False
        async with self._db.read() as conn:
            loaded = await exports.export_batch(conn, job.request_id, utc_now().date())
        if loaded is None:  # the request moved on (a callback recorded it); nothing to export
            async with self._db.unit_of_work() as uow:
                await exports.record_success(
                    uow.conn, job, utc_now(), erp_reference=None, deferred=False, requires_posting=True
                )
                await uow.commit()
            return True
        company, batch = loaded
        connector = self._connectors.get(company.erp_connector, company.erp_settings)
        status = None
        try:
            if connector is None:
                raise ConnectorError("the company has no working ERP connection")
            receipt = await asyncio.wait_for(connector.export(batch), self._timeout)
            if CRASH_AFTER_EXPORT:
                os._exit(70)
            async with self._db.unit_of_work() as uow:
                status = await exports.record_success(
                    uow.conn,
                    job,
                    utc_now(),
                    erp_reference=receipt.erp_reference,
                    deferred=receipt.deferred,
                    requires_posting=connector.capabilities.requires_posting,
                )
                await uow.commit()
        except (ConnectorError, TimeoutError, OSError) as exc:
            message, retryable = _describe(exc, self._timeout)
            log.warning("export of %s failed (attempt %d): %s", job.request_id, job.attempts, message)
            async with self._db.unit_of_work() as uow:
                status = await exports.record_failure(
                    uow.conn, job, utc_now(), message, retryable=retryable, policy=self.policy
                )
                await uow.commit()
        if status is not None:
            log.info("export %s -> %s", job.request_id, status.value)
            self._events_committed(company.id)
        return True

    async def fail_overdue_callbacks(self) -> None:
        """An integrator that accepted an export and never reported back: fail it visibly, so the approver
        can look and retry, instead of leaving it EXPORTING forever."""
        async with self._db.read() as conn:  # the common case: nothing overdue, no write transaction
            if not await exports.overdue_callbacks(conn, utc_now(), self._callback_wait, self.company_id):
                return
        async with self._db.unit_of_work() as uow:
            overdue = await exports.overdue_callbacks(uow.conn, utc_now(), self._callback_wait, self.company_id)
            failed = []
            for job in overdue:
                message = f"the integrator did not report the outcome within {self._callback_wait}"
                status = await exports.record_failure(
                    uow.conn, job, utc_now(), message, retryable=False, policy=self.policy
                )
                if status is not None:
                    failed.append(job.request_id)
            await uow.commit()
        if failed:
            log.warning("no integrator callback for %s", ", ".join(failed))
            async with self._db.read() as conn:
                companies = await exports.companies_of_requests(conn, failed)
            for company_id in companies:
                self._events_committed(company_id)

    async def detect_posting(self) -> None:
        async with self._db.read() as conn:
            waiting = await exports.awaiting_posting(conn, self._detectors, self.company_id)
        for row in waiting:
            connector = self._connectors.get(row.erp_connector, row.erp_settings)
            if connector is None:
                continue
            try:
                posted = await asyncio.wait_for(connector.posted(row.export_id), self._timeout)
            except Exception:
                log.warning("posting check of %s failed", row.id, exc_info=True)
                continue
            if not posted:
                continue
            async with self._db.unit_of_work() as uow:
                status = await exports.record_posted(uow.conn, row.id, utc_now())
                await uow.commit()
            if status is not None:
                log.info("posting detected for %s", row.id)
                self._events_committed(row.company_id)


def _describe(exc: BaseException, timeout: float) -> tuple[str, bool]:
    if isinstance(exc, ConnectorError):
        return str(exc) or "the ERP refused the export", exc.retryable
    if isinstance(exc, TimeoutError):
        return f"the ERP did not answer within {timeout:g} s", True
    return f"the ERP could not be reached ({exc})", True
