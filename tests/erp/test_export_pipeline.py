"""The durable export pipeline: queue, retries with backoff, leases, posting detection, capabilities."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app import admin
from app.export_worker import ExportWorker
from domain.export import Capabilities
from erp.base import ConnectorError, ExportReceipt
from persistence.tables import erp_job_cost_entries, erp_requests, events, export_jobs
from resolvers import export_pipeline
from resolvers.context import Services, utc_now
from resolvers.export_pipeline import RetryPolicy
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry, failures
from tests.erp.workflow import BLOCKERS, CONFIRM, MODIFY, RETRY, UNLOCK, accept, add_line, lock_and_send, request
from tests.support import Tenant, make_tenant, snapshot

FAST = RetryPolicy(max_attempts=3, base_seconds=0.0, lease_seconds=60)


def scripted_services(services: Services, connector: ScriptedConnector) -> Services:
    return Services(db=services.db, connectors=SingleConnectorRegistry(connector))  # type: ignore[arg-type]


def worker_for(services: Services, tenant: Tenant, policy: RetryPolicy = FAST) -> ExportWorker:
    """A worker for this test's company only: other tests' companies share the database."""
    return ExportWorker(services, timeout_seconds=2, policy=policy, company_id=tenant.company_id)


async def accepted_with(services: Services, connector: ScriptedConnector) -> tuple[Services, Tenant, str]:
    """A tenant whose company exports through `connector`, with one accepted request."""
    scripted = scripted_services(services, connector)
    tenant = await make_tenant(scripted)
    return scripted, tenant, await accepted_request(tenant)


async def accepted_request(tenant: Tenant) -> str:
    await add_line(tenant, "03-300", "L", "1500.00")
    await add_line(tenant, "05-120", "S", "98000.50")
    request_id = await lock_and_send(tenant)
    await accept(tenant, request_id)
    return request_id


async def test_accept_queues_a_job_in_the_same_transaction_and_the_worker_exports_it(services: Services) -> None:
    tenant = await make_tenant(services)
    request_id = await accepted_request(tenant)
    assert (await request(tenant, request_id))["status"] == "EXPORTING"
    async with services.db.read() as conn:
        jobs = (
            (await conn.execute(select(export_jobs.c.status).where(export_jobs.c.request_id == request_id)))
            .scalars()
            .all()
        )
    assert jobs == ["QUEUED"]
    assert await worker_for(services, tenant).run_once() == 1
    exported = await request(tenant, request_id)
    assert exported["status"] == "AWAITING_POSTING"
    assert exported["erpReference"].startswith("JC-")


async def test_embedded_posting_is_detected_without_anyone_confirming(services: Services) -> None:
    tenant = await make_tenant(services)
    request_id = await accepted_request(tenant)
    worker = worker_for(services, tenant)
    await worker.run_once()
    async with services.db.unit_of_work() as uow:
        assert await admin.post_embedded_entries(uow, request_id) == 2
        await uow.commit()
    await worker.run_once()
    synced = await request(tenant, request_id)
    assert synced["status"] == "SYNCED" and synced["postedAt"] is not None
    history = await tenant.ok(
        "admin",
        "query($b: ID!) { budget(id: $b) { unlockBlockers { code } "
        "history(first: 1) { edges { node { type actor { id } status } } } } }",
        b=tenant.budget_id,
    )
    assert history["budget"]["unlockBlockers"] == []
    assert history["budget"]["history"]["edges"][0]["node"] == {
        "type": "JobCostPosted",
        "actor": None,
        "status": "SYNCED",
    }


async def test_retryable_failures_are_retried_with_backoff_then_succeed(services: Services) -> None:
    connector = ScriptedConnector(outcomes=[*failures("ERP busy", "ERP busy"), ExportReceipt("DOC-7")])
    scripted, tenant, request_id = await accepted_with(services, connector)
    worker = worker_for(scripted, tenant)
    for _ in range(3):
        await worker.run_once()
    done = await request(tenant, request_id)
    assert done["status"] == "AWAITING_POSTING" and done["erpReference"] == "DOC-7"
    assert len(connector.exported) == 3
    assert {b.export_id for b in connector.exported} == {connector.exported[0].export_id}  # one stable export id


async def test_a_backed_off_job_waits_for_its_time(services: Services) -> None:
    connector = ScriptedConnector(outcomes=[*failures("ERP busy")])
    scripted, tenant, request_id = await accepted_with(services, connector)
    worker = worker_for(scripted, tenant, RetryPolicy(max_attempts=3, base_seconds=3600))
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0  # backed off for about an hour
    assert (await request(tenant, request_id))["status"] == "EXPORTING"


async def test_a_refusal_fails_the_export_with_the_erps_message_and_retry_exports_once(services: Services) -> None:
    connector = ScriptedConnector(outcomes=[*failures("Cost code 03-300 is closed in Job Cost", retryable=False)])
    scripted, tenant, request_id = await accepted_with(services, connector)
    worker = worker_for(scripted, tenant)
    await worker.run_once()
    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    assert failed["failureMessage"] == "Cost code 03-300 is closed in Job Cost"
    blockers = await tenant.ok("admin", BLOCKERS, b=tenant.budget_id)
    assert [b["code"] for b in blockers["budget"]["unlockBlockers"]] == ["EXPORT_IN_PROGRESS"]
    retried = await tenant.ok("approver", RETRY, r=request_id)
    assert retried["retryExport"]["erpRequest"]["status"] == "EXPORTING"
    await worker.run_once()
    assert (await request(tenant, request_id))["status"] == "AWAITING_POSTING"
    assert len(connector.exported) == 2


async def test_exhausted_retries_fail_the_export(services: Services) -> None:
    connector = ScriptedConnector(outcomes=[*failures("timeout", "timeout", "timeout")])
    scripted, tenant, request_id = await accepted_with(services, connector)
    worker = worker_for(scripted, tenant)
    for _ in range(3):
        await worker.run_once()
    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED" and failed["failureMessage"] == "timeout"


async def test_retry_export_is_refused_unless_the_export_failed(services: Services) -> None:
    tenant = await make_tenant(services)
    request_id = await accepted_request(tenant)
    before = await snapshot(services.db, tenant.company_id)
    refused = await tenant.execute("approver", RETRY, r=request_id)
    assert refused.data["retryExport"]["userErrors"][0]["code"] == "NOT_FAILED"
    assert await snapshot(services.db, tenant.company_id) == before


async def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(services: Services) -> None:
    tenant = await make_tenant(services)
    request_id = await accepted_request(tenant)
    now = utc_now()
    dead = await export_pipeline.claim(services, now, RetryPolicy(lease_seconds=60), tenant.company_id)
    assert dead is not None and dead.request_id == request_id
    assert await export_pipeline.claim(services, now + timedelta(seconds=59), FAST, tenant.company_id) is None  # leased
    again = await export_pipeline.claim(services, now + timedelta(seconds=61), FAST, tenant.company_id)
    assert again is not None and again.id == dead.id and again.attempts == 2


async def test_attempts_never_pass_the_maximum_when_the_worker_keeps_dying(services: Services) -> None:
    """A worker that dies mid-export (its lease runs out) counts that attempt; once the attempts are used up,
    the job is not run again: the request fails, for the approver to retry, with attempts at the maximum."""
    connector = ScriptedConnector(outcomes=[ConnectorError("ERP busy", retryable=True)])
    scripted, tenant, request_id = await accepted_with(services, connector)
    policy = RetryPolicy(max_attempts=3, base_seconds=30.0, lease_seconds=60)  # a retry is due within 30 s
    now = utc_now()
    # Attempt 1 fails retryably and is re-queued; attempts 2 and 3 are claimed by workers that die.
    assert await worker_for(scripted, tenant, policy).run_once() == 1
    seen = []
    for _ in range(2):
        now += timedelta(seconds=61)
        job = await export_pipeline.claim(scripted, now, policy, tenant.company_id)
        assert job is not None
        seen.append(job.attempts)
    assert seen == [2, 3]

    # The last attempt's worker died too: the next claim fails the request instead of running a fourth.
    assert await export_pipeline.claim(scripted, now + timedelta(seconds=61), policy, tenant.company_id) is None

    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    assert failed["failureMessage"].startswith("the export was interrupted during its last attempt (3 of 3)")
    async with services.db.read() as conn:
        job_row = (await conn.execute(select(export_jobs.c.status, export_jobs.c.attempts)
                                      .where(export_jobs.c.request_id == request_id))).one()
        attempts = (await conn.execute(select(erp_requests.c.export_attempts)
                                       .where(erp_requests.c.id == request_id))).scalar_one()
        failures_logged = (await conn.execute(select(events.c.type).where(
            events.c.company_id == tenant.company_id, events.c.type == "ExportFailed"))).scalars().all()
    assert tuple(job_row) == ("FAILED", 3) and attempts == 3
    assert failures_logged == ["ExportFailed"]
    assert len(connector.exported) == 1  # only the attempt that answered ran the connector here
    # Nothing is due any more; retryExport queues a fresh job with its own attempts.
    assert await export_pipeline.claim(scripted, now + timedelta(hours=1), policy, tenant.company_id) is None
    await tenant.ok("approver", RETRY, r=request_id)
    assert await worker_for(scripted, tenant, policy).run_once() == 1
    assert (await request(tenant, request_id))["status"] == "AWAITING_POSTING"


async def test_a_connector_that_posts_at_once_goes_straight_to_synced(services: Services) -> None:
    connector = ScriptedConnector(capabilities=Capabilities(requires_posting=False))
    scripted, tenant, request_id = await accepted_with(services, connector)
    await worker_for(scripted, tenant).run_once()
    synced = await request(tenant, request_id)
    assert synced["status"] == "SYNCED" and synced["postedAt"] is not None
    assert (await tenant.ok("admin", UNLOCK, b=tenant.budget_id))["unlockBudget"]["userErrors"] == []


async def test_capabilities_block_sub_jobs_and_modifications_the_erp_cannot_take(services: Services) -> None:
    connector = ScriptedConnector(capabilities=Capabilities(supports_sub_jobs=False, exports_modifications=False))
    scripted = scripted_services(services, connector)
    tenant = await make_tenant(scripted)
    plain = await add_line(tenant, "03-300", "L", "100.00")
    await add_line(tenant, "05-120", "S", "200.00", sub_job="BLDG-A")
    await tenant.ok(
        "admin", "mutation($p: ID!) { syncProjectToERP(projectId: $p) { userErrors { code } } }", p=tenant.project_id
    )
    await tenant.ok(
        "admin", "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { userErrors { code } } }", b=tenant.budget_id
    )
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "toLineItemId": plain, "amount": "5.00"})
    blockers = await tenant.ok("admin", BLOCKERS, b=tenant.budget_id)
    codes = [b["code"] for b in blockers["budget"]["sendBlockers"]]
    assert codes == ["SUB_JOB_NOT_SUPPORTED", "MODIFICATIONS_NOT_SUPPORTED"]
    assert "05-120/S/BLDG-A" in blockers["budget"]["sendBlockers"][0]["message"]
    before = await snapshot(services.db, tenant.company_id)
    refused = await tenant.execute(
        "admin",
        "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id } userErrors { code } } }",
        b=tenant.budget_id,
    )
    assert [e["code"] for e in refused.data["sendToERP"]["userErrors"]] == codes
    assert await snapshot(services.db, tenant.company_id) == before


async def test_confirm_posting_needs_erp_admin_and_marks_the_embedded_ledger(services: Services) -> None:
    tenant = await make_tenant(services)
    request_id = await accepted_request(tenant)
    await worker_for(services, tenant).run_once()
    before = await snapshot(services.db, tenant.company_id)
    refused = await tenant.execute("approver", CONFIRM, r=request_id)
    assert refused.data["confirmJobCostPosting"]["userErrors"][0]["code"] == "FORBIDDEN"
    assert await snapshot(services.db, tenant.company_id) == before
    await tenant.ok("integrator", CONFIRM, r=request_id)
    reference = (await request(tenant, request_id))["erpReference"]
    async with services.db.read() as conn:
        posted = (
            (await conn.execute(select(erp_job_cost_entries.c.posted).where(erp_job_cost_entries.c.batch == reference)))
            .scalars()
            .all()
        )
    assert posted == [True, True]


async def test_a_refused_job_sync_is_a_user_error_and_changes_nothing(services: Services) -> None:
    connector = ScriptedConnector(sync_error=ConnectorError("Job number 24-017 is taken"))
    scripted = scripted_services(services, connector)
    tenant = await make_tenant(scripted)
    await add_line(tenant, "03-300", "L", "10.00")
    before = await snapshot(services.db, tenant.company_id)
    result = await tenant.execute(
        "admin",
        "mutation($p: ID!) { syncProjectToERP(projectId: $p) { project { erpSynced } userErrors { code message } } }",
        p=tenant.project_id,
    )
    assert result.errors is None
    assert result.data["syncProjectToERP"] == {
        "project": None,
        "userErrors": [
            {"code": "ERP_SYNC_FAILED", "message": "the ERP refused the job sync: Job number 24-017 is taken"}
        ],
    }
    assert await snapshot(services.db, tenant.company_id) == before


async def test_a_deferred_export_without_a_callback_fails_visibly_after_the_wait(services: Services) -> None:
    connector = ScriptedConnector(outcomes=[ExportReceipt(None, deferred=True)])
    scripted, tenant, request_id = await accepted_with(services, connector)
    now = utc_now()
    worker = ExportWorker(
        scripted, policy=FAST, company_id=tenant.company_id, callback_wait_seconds=3600, clock=lambda: now
    )
    await worker.run_once()
    assert (await request(tenant, request_id))["status"] == "EXPORTING"  # waiting for the integrator
    now += timedelta(seconds=3599)
    await worker.run_once()
    assert (await request(tenant, request_id))["status"] == "EXPORTING"  # still within the wait
    now += timedelta(seconds=2)
    await worker.run_once()
    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    assert failed["failureMessage"].startswith("the integrator did not report the outcome within")


async def test_an_embedded_export_of_a_job_the_ledger_never_got_fails_visibly(services: Services) -> None:
    """The project was synced through another connector (the company switched to the embedded ledger after):
    the export fails with a message the approver can act on, instead of breaking the worker's pass."""
    _, tenant, request_id = await accepted_with(services, ScriptedConnector())  # synced to the scripted ERP
    await worker_for(services, tenant).run_once()  # the company's own connector: the embedded ledger
    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    assert "is not in the ERP: sync the project to the ERP" in failed["failureMessage"]
    async with services.db.read() as conn:
        ledger = (await conn.execute(select(erp_job_cost_entries.c.id).where(
            erp_job_cost_entries.c.batch.like(f"%{request_id[4:]}%")))).all()
    assert ledger == []
