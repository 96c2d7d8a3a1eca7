"""The export pipeline's steps (resolvers.export_pipeline) and the worker's orchestration (app.export_worker) on
a seeded request, without the GraphQL workflow: each step is one unit of work that moves the request, its
budget, its job and the log together, and wakes the company's subscribers by committing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from app.export_worker import ExportWorker
from domain.export import Capabilities
from erp.base import ConnectorError, ExportReceipt
from persistence.database import Database
from resolvers import export_pipeline
from resolvers.context import Services
from resolvers.export_pipeline import ClaimedJob, RetryPolicy
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry, failures
from tests.resolvers.export_seed import T0, Seeded, seed_exporting, state

FAST = RetryPolicy(max_attempts=3, base_seconds=0.0, lease_seconds=60)


class Woken(list[str]):
    """The companies whose subscribers the commits woke, in order."""


def services_for(db: Database, connector: ScriptedConnector | None = None, woken: Woken | None = None) -> Services:
    return Services(
        db=db,
        connectors=SingleConnectorRegistry(connector or ScriptedConnector()),  # type: ignore[arg-type]
        clock=lambda: T0,
        events_committed=(woken if woken is not None else Woken()).append,
    )


async def claimed(services: Services, seeded: Seeded, at: datetime = T0) -> ClaimedJob:
    job = await export_pipeline.claim(services, at, FAST, seeded.company_id)
    assert job is not None and job.request_id == seeded.request_id
    return job


# --- the retry policy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "ceiling"), [(0, 2), (1, 2), (2, 4), (3, 8), (6, 64), (9, 300), (40, 300)])
def test_backoff_is_exponential_with_jitter_and_capped(attempts: int, ceiling: float) -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=300)
    for _ in range(50):
        assert timedelta(seconds=ceiling / 2) <= policy.backoff(attempts) <= timedelta(seconds=ceiling)


def test_failures_are_described_for_the_approver() -> None:
    assert export_pipeline.describe_failure(ConnectorError("Job is closed"), 30) == ("Job is closed", False)
    assert export_pipeline.describe_failure(ConnectorError("", retryable=True), 30) == (
        "the ERP refused the export",
        True,
    )
    assert export_pipeline.describe_failure(TimeoutError(), 2.5) == ("the ERP did not answer within 2.5 s", True)
    assert export_pipeline.describe_failure(OSError("no route"), 30) == (
        "the ERP could not be reached (no route)",
        True,
    )


# --- claiming ---------------------------------------------------------------------------------------------


async def test_a_claim_leases_the_job_and_counts_the_attempt(db: Database) -> None:
    seeded = await seed_exporting(db)
    services = services_for(db)
    early = T0 - timedelta(seconds=1)
    assert await export_pipeline.claim(services, early, FAST, seeded.company_id) is None  # not due yet
    job = await claimed(services, seeded)
    assert job.attempts == 1
    (row,) = (await state(db, seeded)).jobs
    assert row["status"] == "RUNNING" and row["lease_until"] == T0 + FAST.lease
    assert await export_pipeline.claim(services, T0 + timedelta(seconds=59), FAST, seeded.company_id) is None
    again = await export_pipeline.claim(services, T0 + timedelta(seconds=61), FAST, seeded.company_id)
    assert again == ClaimedJob(id=job.id, request_id=seeded.request_id, attempts=2)


async def test_a_dedicated_claim_takes_only_its_companys_jobs(db: Database) -> None:
    seeded = await seed_exporting(db)
    other = await seed_exporting(db)
    services = services_for(db)
    job = await export_pipeline.claim(services, T0, FAST, other.company_id)
    assert job is not None and job.request_id == other.request_id
    assert (await state(db, seeded)).jobs[0]["status"] == "QUEUED"


# --- recording outcomes -----------------------------------------------------------------------------------


async def test_success_moves_request_budget_job_and_log_together_and_wakes_the_company(db: Database) -> None:
    seeded = await seed_exporting(db)
    woken = Woken()
    services = services_for(db, woken=woken)
    job = await claimed(services, seeded)
    at = T0 + timedelta(seconds=3)

    status = await export_pipeline.record_success(
        services, job, at, erp_reference="JC-42", deferred=False, requires_posting=True
    )

    assert status is not None and status.value == "AWAITING_POSTING"
    after = await state(db, seeded)
    assert {k: after.request[k] for k in ("status", "erp_reference", "exported_at", "export_attempts")} == {
        "status": "AWAITING_POSTING",
        "erp_reference": "JC-42",
        "exported_at": at,
        "export_attempts": 1,
    }
    assert after.request["posted_at"] is None and after.request["failure_message"] is None
    assert (after.budget["export_status"], after.budget["version"]) == ("AWAITING_POSTING", 8)
    assert after.jobs[0]["status"] == "DONE" and after.jobs[0]["lease_until"] is None
    (event,) = after.events
    assert (event["type"], event["previous_status"], event["status"], event["actor_id"]) == (
        "ExportWritten",
        "EXPORTING",
        "AWAITING_POSTING",
        None,
    )
    assert woken == [seeded.company_id]


async def test_an_erp_that_posts_at_once_syncs_the_request(db: Database) -> None:
    seeded = await seed_exporting(db)
    services = services_for(db)
    job = await claimed(services, seeded)
    status = await export_pipeline.record_success(
        services, job, T0, erp_reference=None, deferred=False, requires_posting=False
    )
    assert status is not None and status.value == "SYNCED"
    after = await state(db, seeded)
    assert after.request["posted_at"] == T0 and after.budget["export_status"] == "SYNCED"
    assert [e["type"] for e in after.events] == ["ExportPosted"]


async def test_a_deferred_export_waits_for_the_callback_without_an_event(db: Database) -> None:
    seeded = await seed_exporting(db)
    woken = Woken()
    services = services_for(db, woken=woken)
    job = await claimed(services, seeded)
    before = await state(db, seeded)

    status = await export_pipeline.record_success(
        services, job, T0, erp_reference="INT-9", deferred=True, requires_posting=True
    )

    assert status is None
    after = await state(db, seeded)
    assert after.request == {**before.request, "erp_reference": "INT-9", "export_attempts": 1}
    assert after.budget == before.budget and after.events == [] and woken == []
    assert after.jobs[0]["status"] == "AWAITING_CALLBACK"


async def test_a_retryable_failure_requeues_the_job_with_backoff(db: Database) -> None:
    seeded = await seed_exporting(db)
    services = services_for(db)
    job = await claimed(services, seeded)
    policy = RetryPolicy(max_attempts=3, base_seconds=10)
    before = await state(db, seeded)

    status = await export_pipeline.record_failure(services, job, T0, "ERP busy", retryable=True, policy=policy)

    assert status is None
    after = await state(db, seeded)
    assert after.request == {**before.request, "export_attempts": 1}  # still EXPORTING
    assert after.budget == before.budget and after.events == []
    (row,) = after.jobs
    assert (row["status"], row["last_error"], row["lease_until"]) == ("QUEUED", "ERP busy", None)
    assert T0 + timedelta(seconds=5) <= row["next_attempt_at"] <= T0 + timedelta(seconds=10)


@pytest.mark.parametrize(("retryable", "attempts"), [(False, 1), (True, 3)], ids=["refused", "exhausted"])
async def test_a_refusal_or_the_last_attempt_fails_the_export_with_the_message(
    db: Database, retryable: bool, attempts: int
) -> None:
    seeded = await seed_exporting(db)
    woken = Woken()
    services = services_for(db, woken=woken)
    job = await claimed(services, seeded)
    job = ClaimedJob(id=job.id, request_id=job.request_id, attempts=attempts)

    status = await export_pipeline.record_failure(
        services, job, T0, "Cost code 03-300 is closed", retryable=retryable, policy=FAST
    )

    assert status is not None and status.value == "EXPORT_FAILED"
    after = await state(db, seeded)
    assert (after.request["status"], after.request["failure_message"], after.request["export_attempts"]) == (
        "EXPORT_FAILED",
        "Cost code 03-300 is closed",
        attempts,
    )
    assert after.budget["export_status"] == "EXPORT_FAILED"
    assert (after.jobs[0]["status"], after.jobs[0]["last_error"]) == ("FAILED", "Cost code 03-300 is closed")
    (event,) = after.events
    assert (event["type"], event["reason"]) == ("ExportFailed", "Cost code 03-300 is closed")
    assert woken == [seeded.company_id]


@pytest.mark.parametrize("outcome", ["success", "failure", "moved_on"])
async def test_an_outcome_for_a_request_that_moved_on_only_closes_the_job(db: Database, outcome: str) -> None:
    """A callback (or another worker) recorded the request meanwhile: the late outcome changes nothing else."""
    seeded = await seed_exporting(db, status="AWAITING_POSTING")
    services = services_for(db)
    job = await claimed(services, seeded)
    before = await state(db, seeded)

    if outcome == "success":
        await export_pipeline.record_success(
            services, job, T0, erp_reference="LATE", deferred=False, requires_posting=True
        )
    elif outcome == "failure":
        await export_pipeline.record_failure(services, job, T0, "late", retryable=False, policy=FAST)
    else:
        await export_pipeline.record_moved_on(services, job, T0)

    after = await state(db, seeded)
    assert (after.request, after.budget, after.events) == (before.request, before.budget, before.events)
    assert after.jobs[0]["status"] == "DONE"


async def test_a_job_whose_request_is_exporting_again_is_left_to_its_lease(db: Database) -> None:
    seeded = await seed_exporting(db)
    services = services_for(db)
    job = await claimed(services, seeded)
    await export_pipeline.record_moved_on(services, job, T0)
    assert (await state(db, seeded)).jobs[0]["status"] == "RUNNING"


async def test_overdue_callbacks_fail_visibly_and_others_wait(db: Database) -> None:
    overdue = await seed_exporting(db, job_status="AWAITING_CALLBACK")
    services = services_for(db)
    wait = timedelta(hours=1)

    assert await export_pipeline.fail_overdue_callbacks(services, T0 + wait, wait, overdue.company_id) == []
    failed = await export_pipeline.fail_overdue_callbacks(
        services, T0 + wait + timedelta(seconds=1), wait, overdue.company_id
    )

    assert failed == [overdue.request_id]
    after = await state(db, overdue)
    assert after.request["status"] == "EXPORT_FAILED"
    assert after.request["failure_message"] == "the integrator did not report the outcome within 1:00:00"
    assert after.jobs[0]["status"] == "FAILED"


async def test_detected_posting_syncs_an_awaiting_request_once(db: Database) -> None:
    seeded = await seed_exporting(db, status="AWAITING_POSTING", job_status="DONE")
    services = services_for(db)
    status = await export_pipeline.record_posted(services, seeded.request_id, T0)
    assert status is not None and status.value == "SYNCED"
    after = await state(db, seeded)
    assert after.request["posted_at"] == T0 and after.budget["export_status"] == "SYNCED"
    assert [e["type"] for e in after.events] == ["JobCostPosted"]
    assert await export_pipeline.record_posted(services, seeded.request_id, T0) is None
    assert await state(db, seeded) == after


# --- the worker -------------------------------------------------------------------------------------------


def worker(services: Services, seeded: Seeded, **options: object) -> ExportWorker:
    return ExportWorker(
        services,
        timeout_seconds=2,
        policy=FAST,
        company_id=seeded.company_id,
        detectors=["scripted"],
        **options,  # type: ignore[arg-type]
    )


async def test_the_worker_exports_the_batch_the_connector_sees(db: Database) -> None:
    seeded = await seed_exporting(db)
    connector = ScriptedConnector(outcomes=[ExportReceipt("DOC-1")])
    services = services_for(db, connector)

    assert await worker(services, seeded, clock=lambda: T0).run_once() == 1

    (batch,) = connector.exported
    assert (batch.export_id, batch.request_id, batch.request_sequence, batch.request_kind) == (
        seeded.export_id,
        seeded.request_id,
        2,
        "UPDATE_BUDGET",
    )
    assert (batch.erp_job_id, batch.export_date) == ("JOB-7", T0.date())
    assert [(i.entry_id, i.kind, i.amount, i.is_new_line) for i in batch.items] == [
        (seeded.entry_ids[0], "ORIGINAL_BUDGET", Decimal("125000.00"), True),
        (seeded.entry_ids[1], "BUDGET_MODIFICATION", Decimal("5000.00"), False),
        (seeded.entry_ids[2], "ORIGINAL_BUDGET", Decimal("486900.00"), False),
    ]
    assert (await state(db, seeded)).request["erp_reference"] == "DOC-1"


async def test_the_crash_hook_runs_after_the_erp_write_and_before_the_commit(db: Database) -> None:
    seeded = await seed_exporting(db)
    connector = ScriptedConnector()
    services = services_for(db, connector)
    seen: list[tuple[int, str]] = []

    async def status_now() -> str:
        return str((await state(db, seeded)).request["status"])

    class Crash(Exception):
        pass

    def after_export() -> None:
        seen.append((len(connector.exported), "hook"))
        raise Crash  # stands in for the process dying here

    with pytest.raises(Crash):
        await worker(services, seeded, after_export=after_export, clock=lambda: T0).run_next_job()

    assert seen == [(1, "hook")]  # the ERP has the batch ...
    assert await status_now() == "EXPORTING"  # ... and nothing of it is recorded
    assert (await state(db, seeded)).jobs[0]["status"] == "RUNNING"  # its lease lets another worker run it again
    assert await worker(services, seeded, clock=lambda: T0 + FAST.lease + timedelta(seconds=1)).run_once() == 1
    assert await status_now() == "AWAITING_POSTING"
    assert {b.export_id for b in connector.exported} == {seeded.export_id}  # the same export id again


async def test_the_crash_hook_does_not_run_for_a_failed_export(db: Database) -> None:
    seeded = await seed_exporting(db)
    services = services_for(db, ScriptedConnector(outcomes=[*failures("refused", retryable=False)]))
    hooked: list[None] = []
    await worker(services, seeded, after_export=lambda: hooked.append(None), clock=lambda: T0).run_once()
    assert hooked == [] and (await state(db, seeded)).request["status"] == "EXPORT_FAILED"


async def test_a_slow_erp_is_a_retryable_timeout(db: Database) -> None:
    seeded = await seed_exporting(db)

    class Slow(ScriptedConnector):
        async def export(self, batch: object) -> ExportReceipt:
            await asyncio.Event().wait()  # never answers; the worker's timeout ends it
            raise AssertionError

    services = services_for(db, Slow())
    await ExportWorker(services, timeout_seconds=0.05, policy=FAST, company_id=seeded.company_id).run_next_job()
    (row,) = (await state(db, seeded)).jobs
    assert (row["status"], row["last_error"]) == ("QUEUED", "the ERP did not answer within 0.05 s")


async def test_without_a_connector_the_export_fails_at_once(db: Database) -> None:
    seeded = await seed_exporting(db, connector=None)
    services = services_for(db)
    await worker(services, seeded, clock=lambda: T0).run_once()
    after = await state(db, seeded)
    assert after.request["failure_message"] == "the company has no working ERP connection"
    assert after.request["status"] == "EXPORT_FAILED"


async def test_the_worker_uses_its_clock_for_due_jobs_and_the_callback_wait(db: Database) -> None:
    seeded = await seed_exporting(db)
    now = T0 - timedelta(seconds=1)
    connector = ScriptedConnector(outcomes=[ExportReceipt(None, deferred=True)])
    services = services_for(db, connector)
    patient = worker(services, seeded, clock=lambda: now, callback_wait_seconds=60)

    assert await patient.run_once() == 0  # not due yet by the worker's clock
    now = T0
    assert await patient.run_once() == 1
    assert (await state(db, seeded)).jobs[0]["status"] == "AWAITING_CALLBACK"
    now = T0 + timedelta(seconds=60)
    await patient.run_once()
    assert (await state(db, seeded)).request["status"] == "EXPORTING"
    now = T0 + timedelta(seconds=61)
    await patient.run_once()
    assert (await state(db, seeded)).request["status"] == "EXPORT_FAILED"


async def test_posting_is_detected_for_connectors_that_can_see_it(db: Database) -> None:
    seeded = await seed_exporting(db, status="AWAITING_POSTING", job_status="DONE")
    connector = ScriptedConnector(capabilities=Capabilities())
    services = services_for(db, connector)
    blind = ExportWorker(services, company_id=seeded.company_id, detectors=[], clock=lambda: T0)
    seeing = worker(services, seeded, clock=lambda: T0)

    await seeing.run_once()
    assert (await state(db, seeded)).request["status"] == "AWAITING_POSTING"  # not posted yet
    connector.posted_exports.add(seeded.export_id)
    await blind.run_once()
    assert (await state(db, seeded)).request["status"] == "AWAITING_POSTING"  # this worker does not look
    await seeing.run_once()
    assert (await state(db, seeded)).request["status"] == "SYNCED"
