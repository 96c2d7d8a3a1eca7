"""Runs accepted exports: inside the server (default) and as `budgetbridge worker` for deployments.

The worker orchestrates only. Each pass claims due jobs (resolvers.export_pipeline, one unit of work
each), loads a job's batch (persistence.export_reads), runs the connector with a timeout outside any
transaction, and records the outcome through the pipeline: retryable failures go back to the queue with
exponential backoff until the attempts run out. A worker that dies mid-export leaves its lease to expire
and another claims the job again; the connector's de-duplication on the request's export id makes that
exactly-once. Before the connector writes, its format check runs again on the stored batch (a
connection changed since the send fails the export with the violations, not retried). Each pass also
asks connectors that can see the ERP's Job Cost whether awaiting requests were posted, and fails deferred
exports whose integrator never called back.

The clock and a hook run right after a successful connector export (before its outcome is committed) are
injected, so tests can move time and kill a worker process at the worst moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from app import metrics, tracing
from app.settings import Settings
from app.tasks import PollingLoop
from erp.base import ConnectorError
from erp.registry import posting_detectors
from persistence.export_reads import ExportReads, SqlExportReads
from persistence.unit_of_work import ClaimedJob
from resolvers import export_pipeline
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy

log = logging.getLogger("budgetbridge.exports")


def _nothing() -> None:
    return None


class ExportWorker(PollingLoop):
    def __init__(
        self,
        services: Services,
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 30.0,
        policy: RetryPolicy | None = None,
        callback_wait_seconds: float = 24 * 3600,
        company_id: str | None = None,
        clock: Callable[[], datetime] | None = None,
        after_export: Callable[[], None] = _nothing,
        reads: ExportReads | None = None,
        detectors: Sequence[str] | None = None,
    ) -> None:
        super().__init__(poll_seconds, "export-worker", "the export worker", log)
        self._services = services
        self.company_id = company_id  # None: every company
        self._timeout = timeout_seconds
        self.policy = policy or RetryPolicy()
        self._callback_wait = timedelta(seconds=callback_wait_seconds)
        self._clock = clock or services.clock
        self._after_export = after_export
        self._reads = reads or SqlExportReads(services.db)
        self._detectors = list(posting_detectors() if detectors is None else detectors)

    async def run_once(self) -> int:
        """Run every job that is due now, then check posting and overdue callbacks. Returns how many jobs ran."""
        ran = 0
        while await self.run_next_job():
            ran += 1
        await self.detect_posting()
        await self.fail_overdue_callbacks()
        return ran

    async def run_next_job(self) -> bool:
        job = await export_pipeline.claim(self._services, self._clock(), self.policy, self.company_id)
        if job is None:
            return False
        fields: dict[str, object] = {"erp_request_id": job.request_id, "job_id": job.id, "attempt": job.attempts}
        started = time.perf_counter()
        attributes = {"budgetbridge.erp_request.id": job.request_id, "budgetbridge.export.attempt": job.attempts}
        with tracing.span("export job", attributes) as span:
            log.info("export of %s started (attempt %d)", job.request_id, job.attempts, extra=fields)
            outcome = await self._run_job(job, fields)
            span.set("budgetbridge.outcome", outcome)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "export of %s -> %s (attempt %d) in %.1f ms", job.request_id, outcome, job.attempts, duration_ms,
            extra={**fields, "outcome": outcome, "duration_ms": duration_ms},
        )
        return True

    async def _run_job(self, job: ClaimedJob, fields: dict[str, object]) -> str:
        """Export one claimed job and record what happened; the request's status after it (its outcome)."""
        services = self._services
        loaded = await self._reads.export_batch(job.request_id, self._clock().date())
        if loaded is None:  # the request moved on (a callback recorded it); nothing to export
            await export_pipeline.record_moved_on(services, job, self._clock())
            return "moved on"
        fields["company_id"] = loaded.company.id
        connector_name = loaded.company.erp_connector
        connector = services.connectors.get(connector_name, loaded.company.erp_settings)
        try:
            if connector is None:
                raise ConnectorError("the company has no working ERP connection")
            export_pipeline.check_format(connector, loaded.batch)
            # A failure escaping the span marks it failed, with the exception.
            with tracing.span("erp export", {"budgetbridge.erp.connector": connector_name}):
                async with asyncio.timeout(self._timeout):
                    with metrics.connector_call(connector_name, "export"):
                        receipt = await connector.export(loaded.batch)
        except (ConnectorError, TimeoutError, OSError) as exc:
            message, retryable = export_pipeline.describe_failure(exc, self._timeout)
            log.warning(
                "export of %s failed (attempt %d): %s", job.request_id, job.attempts, message,
                extra={**fields, "retryable": retryable},
            )
            status = await export_pipeline.record_failure(
                services, job, self._clock(), message, retryable=retryable, policy=self.policy
            )
            metrics.record_export_attempt(connector_name, status, succeeded=False)
            if status is None and retryable and job.attempts < self.policy.max_attempts:
                return "RETRYING"  # queued again after a backoff; the request stays EXPORTING
        else:
            self._after_export()  # the ERP has the entries; we have not recorded it yet
            status = await export_pipeline.record_success(
                services,
                job,
                self._clock(),
                erp_reference=receipt.erp_reference,
                deferred=receipt.deferred,
                requires_posting=connector.capabilities.requires_posting,
            )
            metrics.record_export_attempt(connector_name, status, succeeded=True)
        return status.value if status is not None else "unchanged"

    async def fail_overdue_callbacks(self) -> None:
        """An integrator that accepted an export and never reported back: fail it visibly, so the approver
        can look and retry, instead of leaving it EXPORTING forever."""
        now = self._clock()
        # The common case, nothing overdue, needs no write transaction.
        if not await self._reads.any_overdue_callback(now, self._callback_wait, self.company_id):
            return
        failed = await export_pipeline.fail_overdue_callbacks(self._services, now, self._callback_wait, self.company_id)
        if failed:
            log.warning("no integrator callback for %s", ", ".join(failed))

    async def detect_posting(self) -> None:
        for check in await self._reads.awaiting_posting(self._detectors, self.company_id):
            connector = self._services.connectors.get(check.erp_connector, check.erp_settings)
            if connector is None:
                continue
            try:
                with tracing.span("erp posted", {"budgetbridge.erp.connector": check.erp_connector}):
                    async with asyncio.timeout(self._timeout):
                        with metrics.connector_call(check.erp_connector, "posted"):
                            posted = await connector.posted(check.export_id)
            except Exception:
                log.warning("posting check of %s failed", check.id, exc_info=True)
                continue
            if not posted:
                continue
            if await export_pipeline.record_posted(self._services, check.id, self._clock()) is not None:
                log.info("posting detected for %s", check.id)


def build_worker(
    settings: Settings,
    services: Services,
    *,
    company_id: str | None = None,
    after_export: Callable[[], None] = _nothing,
) -> ExportWorker:
    """The worker the settings describe: the server's and `budgetbridge worker`'s (and the crash test's)."""
    return ExportWorker(
        services,
        poll_seconds=settings.export_poll_seconds,
        timeout_seconds=settings.export_timeout_seconds,
        policy=RetryPolicy(
            max_attempts=settings.export_max_attempts,
            base_seconds=settings.export_backoff_seconds,
            lease_seconds=settings.export_lease_seconds,
        ),
        callback_wait_seconds=settings.export_callback_wait_seconds,
        company_id=company_id,
        after_export=after_export,
    )


async def run_worker(
    settings: Settings,
    company_id: str | None = None,
    *,
    after_export: Callable[[], None] = _nothing,
    after_send: Callable[[], None] = _nothing,
) -> None:
    """`budgetbridge worker`: the export worker and the notifier (app.notifier) alone, until cancelled. Its
    commits wake subscribers on the servers through the shared broadcast."""
    from app.main import start_runtime  # the composition root builds on this module
    from app.notifier import build_notifier

    runtime = await start_runtime(settings)
    worker = build_worker(settings, runtime.services, company_id=company_id, after_export=after_export)
    notifier = build_notifier(settings, runtime.services, company_id=company_id, after_send=after_send)
    runtime.services.kick_notifications = notifier.kick
    await runtime.live.start()  # so subscribers on the servers hear this worker's status changes
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(worker.run_forever(), name="export-worker")
            tasks.create_task(notifier.run_forever(), name="notifier")
    finally:
        await runtime.live.stop()
        await runtime.services.connectors.aclose()
        await runtime.db.dispose()
