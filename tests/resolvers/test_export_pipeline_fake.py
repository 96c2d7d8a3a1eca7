"""The export pipeline, the worker and the integrator callbacks on the fake unit of work: in memory, no
database anywhere (`Services.db` fails loudly if touched), so what each step commits, how often, and whom it
wakes is checked exactly, and races are played with the fake's hooks. The same steps run on SQL in
test_export_pipeline_unit.py / test_export_callbacks_unit.py and end to end in tests/erp."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("tests.fakes.unit_of_work", reason="the fake unit of work (branch fake) is not merged yet")

from app.export_worker import ExportWorker
from domain.export import Capabilities
from erp.base import ExportBatch, ExportItem, ExportReceipt
from persistence.export_reads import ExportReads, LoadedExport, PostingCheck
from persistence.records import ErpRequestRecord, ExportJobRecord
from persistence.unit_of_work import AWAITING_CALLBACK, QUEUED
from resolvers.context import Services
from resolvers.export_callbacks import CallbackRejectedError, apply_callback, webhook_secret_for_export
from resolvers.export_pipeline import RetryPolicy
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry, failures
from tests.fakes.unit_of_work import FakeStore, FakeUnitOfWork

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, base_seconds=0.0, lease_seconds=60)
SECRET = "whsec_fake-test-0123456789"


class NoDatabase:
    """`Services.db`: the pipeline writes through the unit of work and reads through its ExportReads only."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the export pipeline reached for the database ({name})")


@dataclass
class Shop:
    store: FakeStore
    services: Services
    connector: ScriptedConnector
    company_id: str
    request_id: str
    export_id: str
    job_id: str
    woken: list[str]

    def request(self) -> ErpRequestRecord:
        return self.store.state.requests[self.request_id]

    def job(self) -> ExportJobRecord:
        return self.store.state.jobs[self.job_id]

    def worker(self, clock: Callable[[], datetime] = lambda: T0, **options: Any) -> ExportWorker:
        return ExportWorker(
            self.services,
            timeout_seconds=1,
            company_id=self.company_id,
            clock=clock,
            reads=StoreReads(self.store),
            detectors=["scripted"],
            **{"policy": FAST, **options},
        )


def shop(
    *,
    status: str = "EXPORTING",
    job_status: str = QUEUED,
    connector: str | None = "scripted",
    settings: dict[str, Any] | None = None,
    capabilities: Capabilities | None = None,
) -> Shop:
    """One accepted request (status `status`) with its job, seeded in a fresh store."""
    store = FakeStore()
    company = store.seed_company(erp_connector=connector, erp_settings=settings)
    user = store.seed_user(company.id)
    project = store.seed_project(company.id, erp_job_id="JOB-7")
    budget = store.seed_budget(company.id, project.id, locked=True, version=7)
    code, ctype = store.seed_cost_code(company.id, "03-300"), store.seed_cost_type(company.id, "L")
    store.seed_line(budget, code.id, ctype.id, "1500.00")
    request = ErpRequestRecord(
        id="req_" + "1" * 32,
        company_id=company.id,
        budget_id=budget.id,
        project_id=project.id,
        sequence=1,
        kind="CREATE_BUDGET",
        status=status,
        sent_at=T0,
        sent_by_id=user.id,
        decided_at=T0,
        decided_by_id=user.id,
        rejection_reason=None,
        retrieved_at=None,
        retrieved_by_id=None,
        exported_at=None,
        posted_at=None,
        erp_reference=None,
        failure_message=None,
        export_attempts=0,
        export_id="exp_" + "1" * 32,
        total_original_budget=Decimal("1500.00"),
    )
    store.state.insert("requests", [(request.id, request)])
    store.set_budget(budget.id, export_status=status, last_request_id=request.id, request_count=1)
    job = ExportJobRecord(
        id="xj_" + "1" * 32,
        company_id=company.id,
        request_id=request.id,
        status=job_status,
        attempts=0,
        next_attempt_at=T0,
        lease_until=None,
        last_error=None,
        created_at=T0,
        updated_at=T0,
    )
    store.state.insert("jobs", [(job.id, job)])
    scripted = ScriptedConnector(capabilities=capabilities or Capabilities())
    woken: list[str] = []
    services = Services(
        db=NoDatabase(),  # type: ignore[arg-type]
        connectors=SingleConnectorRegistry(scripted),  # type: ignore[arg-type]
        clock=lambda: T0,
        unit_of_work_factory=store.factory(woken.append),
    )
    return Shop(store, services, scripted, company.id, request.id, request.export_id, job.id, woken)


class StoreReads(ExportReads):
    """The worker's reads from the fake's committed state (a batch of the request's lines, one item each)."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def export_batch(self, request_id: str, today: date) -> LoadedExport | None:
        state = self.store.state
        request = state.requests.get(request_id)
        if request is None or request.status != "EXPORTING":
            return None
        project = state.projects[request.project_id]
        items = tuple(
            ExportItem(
                entry_id=f"ent_{line.id[3:]}",
                line_item_id=line.id,
                cost_code=line.cost_code,
                cost_code_description=line.cost_code_description,
                cost_type=line.cost_type,
                sub_job=line.sub_job or None,
                description=line.description,
                kind="ORIGINAL_BUDGET",
                amount=line.original_amount,
            )
            for line in self.store.lines_of(request.budget_id)
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
        return LoadedExport(company=state.companies[request.company_id], batch=batch)

    async def awaiting_posting(
        self, connectors: Sequence[str], company_id: str | None = None, limit: int = 200
    ) -> list[PostingCheck]:
        state = self.store.state
        found = []
        for r in state.requests.values():
            company = state.companies[r.company_id]
            connector = company.erp_connector
            wanted = company_id is None or r.company_id == company_id
            if wanted and r.status == "AWAITING_POSTING" and connector is not None and connector in connectors:
                found.append(PostingCheck(r.id, r.export_id, company.id, connector, company.erp_settings))
        return found[:limit]

    async def any_overdue_callback(self, now: datetime, wait: timedelta, company_id: str | None) -> bool:
        return any(
            j.status == AWAITING_CALLBACK and j.updated_at < now - wait and company_id in (None, j.company_id)
            for j in self.store.state.jobs.values()
        )


# --- the worker -------------------------------------------------------------------------------------------


async def test_an_export_is_two_commits_and_one_wake_up() -> None:
    s = shop()
    assert await s.worker().run_once() == 1
    assert s.store.commits == 3  # the claim, the outcome, and the next claim that found nothing due
    assert (s.request().status, s.request().erp_reference) == ("AWAITING_POSTING", f"REF-{s.export_id}")
    assert s.job().status == "DONE"
    assert [e.type for e in s.store.events_of(s.company_id)] == ["ExportWritten"]
    assert s.woken == [s.company_id]  # by the commit, not by the worker
    (batch,) = s.connector.exported
    assert (batch.export_id, batch.erp_job_id, [i.amount for i in batch.items]) == (
        s.export_id,
        "JOB-7",
        [Decimal("1500.00")],
    )


async def test_nothing_due_opens_one_unit_of_work_and_commits_no_change() -> None:
    s = shop(job_status="DONE")
    before = s.store.snapshot()
    assert await s.worker().run_once() == 0
    assert s.store.begun == 1 and s.store.snapshot() == before and s.woken == []


async def test_a_crash_between_the_erp_write_and_our_commit_leaves_the_job_to_its_lease() -> None:
    s = shop()

    class Died(BaseException):
        pass

    def die() -> None:
        raise Died

    with pytest.raises(Died):
        await s.worker(after_export=die).run_next_job()
    assert len(s.connector.exported) == 1 and s.store.commits == 1  # the ERP has it; only the claim committed
    assert (s.request().status, s.job().status) == ("EXPORTING", "RUNNING")

    later = s.worker(clock=lambda: T0 + FAST.lease + timedelta(seconds=1))
    assert await later.run_once() == 1
    assert s.request().status == "AWAITING_POSTING" and s.job().attempts == 2
    assert {b.export_id for b in s.connector.exported} == {s.export_id}


async def test_a_lost_commit_of_the_outcome_is_logged_and_the_job_claimed_again_later() -> None:
    s = shop()

    def outage(uow: FakeUnitOfWork) -> None:
        raise OSError("connection reset")

    s.store.before("jobs.finish", outage)
    with pytest.raises(OSError):
        await s.worker().run_next_job()
    assert (s.request().status, s.job().status) == ("EXPORTING", "RUNNING")  # not recorded as a failure
    assert s.store.events_of(s.company_id) == [] and s.woken == []


async def test_a_callback_that_records_the_request_between_claim_and_outcome_wins() -> None:
    s = shop()

    def callback_meanwhile(uow: FakeUnitOfWork) -> None:
        done = replace(uow.state.requests[s.request_id], status="AWAITING_POSTING", erp_reference="CB-1")
        uow.state.requests[s.request_id] = done
        s.store.state.requests[s.request_id] = done

    s.store.before("budgets.get_for_update", callback_meanwhile)
    await s.worker().run_once()
    assert (s.request().status, s.request().erp_reference) == ("AWAITING_POSTING", "CB-1")
    assert s.job().status == "DONE" and s.store.events_of(s.company_id) == [] and s.woken == []


async def test_retries_back_off_then_fail_with_the_last_message() -> None:
    s = shop()
    s.connector.outcomes = [*failures("ERP busy", "ERP busy", "ERP down")]
    now = T0
    worker = s.worker(clock=lambda: now, policy=RetryPolicy(max_attempts=3, base_seconds=10))
    assert await worker.run_once() == 1
    assert (s.job().status, s.job().last_error, s.request().status) == (QUEUED, "ERP busy", "EXPORTING")
    assert T0 + timedelta(seconds=5) <= s.job().next_attempt_at <= T0 + timedelta(seconds=10)
    assert s.store.events_of(s.company_id) == [] and s.woken == []
    assert await worker.run_once() == 0  # backed off
    now = T0 + timedelta(seconds=10)
    assert await worker.run_once() == 1
    now = T0 + timedelta(seconds=30)
    assert await worker.run_once() == 1
    assert (s.request().status, s.request().failure_message, s.request().export_attempts) == (
        "EXPORT_FAILED",
        "ERP down",
        3,
    )
    assert [e.type for e in s.store.events_of(s.company_id)] == ["ExportFailed"]
    assert s.woken == [s.company_id]


async def test_a_deferred_export_fails_once_the_callback_is_overdue() -> None:
    s = shop()
    s.connector.outcomes = [ExportReceipt("INT-1", deferred=True)]
    now = T0
    worker = s.worker(clock=lambda: now, callback_wait_seconds=60)
    await worker.run_once()
    assert (s.job().status, s.request().status, s.request().erp_reference) == (AWAITING_CALLBACK, "EXPORTING", "INT-1")
    now = T0 + timedelta(seconds=60)
    commits = s.store.commits
    await worker.run_once()
    assert s.store.commits == commits + 1  # only the claim's (empty) unit: the overdue check read, nothing more
    now = T0 + timedelta(seconds=61)
    await worker.run_once()
    assert s.request().status == "EXPORT_FAILED" and s.job().status == "FAILED"
    assert s.request().failure_message == "the integrator did not report the outcome within 0:01:00"


async def test_posting_seen_by_the_connector_syncs_the_request() -> None:
    s = shop(status="AWAITING_POSTING", job_status="DONE")
    worker = s.worker()
    await worker.run_once()
    assert s.request().status == "AWAITING_POSTING" and s.woken == []
    s.connector.posted_exports.add(s.export_id)
    await worker.run_once()
    assert (s.request().status, s.request().posted_at) == ("SYNCED", T0)
    assert [e.type for e in s.store.events_of(s.company_id)] == ["JobCostPosted"]
    assert s.woken == [s.company_id]


# --- the callbacks ----------------------------------------------------------------------------------------


def webhook_shop(status: str = "EXPORTING", *, requires_posting: bool = True) -> Shop:
    return shop(
        status=status,
        job_status=AWAITING_CALLBACK,
        connector="webhook",
        settings={"url": "http://127.0.0.1:9/", "secret": SECRET},
        capabilities=Capabilities(requires_posting=requires_posting),
    )


async def test_the_secret_comes_from_the_webhook_company() -> None:
    s = webhook_shop()
    assert await webhook_secret_for_export(s.services, s.export_id) == SECRET
    assert await webhook_secret_for_export(s.services, "exp_unknown") is None
    assert await webhook_secret_for_export(shop().services, "exp_" + "1" * 32) is None  # not a webhook company


@pytest.mark.parametrize(
    ("status", "callback", "requires_posting", "expected", "events"),
    [
        ("EXPORTING", "success", True, "AWAITING_POSTING", ["ExportWritten"]),
        ("EXPORTING", "success", False, "SYNCED", ["ExportPosted"]),
        ("EXPORTING", "failure", True, "EXPORT_FAILED", ["ExportFailed"]),
        ("AWAITING_POSTING", "posted", True, "SYNCED", ["JobCostPosted"]),
    ],
)
async def test_a_callback_is_one_commit_that_closes_the_job_and_a_repeat_changes_nothing(
    status: str, callback: str, requires_posting: bool, expected: str, events: list[str]
) -> None:
    s = webhook_shop(status, requires_posting=requires_posting)
    assert await apply_callback(s.services, s.export_id, callback, erp_reference="R-1", message="closed") == expected
    assert s.store.commits == 1 and s.woken == [s.company_id]
    assert s.request().status == expected and s.job().status == "DONE"
    assert [e.type for e in s.store.events_of(s.company_id)] == events
    after = s.store.snapshot()
    assert await apply_callback(s.services, s.export_id, callback, erp_reference="R-1", message="closed") == expected
    assert s.store.snapshot() == after and s.woken == [s.company_id]


@pytest.mark.parametrize("status", ["EXPORTING", "EXPORT_FAILED", "REJECTED", "PENDING_ACCEPTANCE"])
async def test_posted_for_a_request_that_was_not_exported_is_refused_and_changes_nothing(status: str) -> None:
    s = webhook_shop(status)
    before = s.store.snapshot()
    with pytest.raises(CallbackRejectedError, match=f"status {status}") as refused:
        await apply_callback(s.services, s.export_id, "posted")
    assert refused.value.code == "NOT_PENDING"
    assert s.store.snapshot() == before and s.woken == [] and s.store.commits == 0


async def test_an_unknown_export_is_refused() -> None:
    s = webhook_shop()
    before = s.store.snapshot()
    with pytest.raises(CallbackRejectedError, match="unknown export"):
        await apply_callback(s.services, "exp_unknown", "success")
    assert s.store.snapshot() == before and s.store.commits == 0


def test_the_fake_seeds_a_consistent_request() -> None:
    s = shop()
    assert s.store.state.budgets[s.request().budget_id].last_request_id == s.request_id
    assert s.job().request_id == s.request_id
