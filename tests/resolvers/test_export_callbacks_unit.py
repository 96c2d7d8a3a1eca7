"""An integrator's callbacks (resolvers.export_callbacks) on a seeded deferred export: idempotent, strict, one
unit of work each; a refusal changes nothing. The HTTP edge (statuses, bodies, signatures) is tested through
the app in tests/erp/test_webhook_callbacks.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.export import Capabilities
from persistence.database import Database
from resolvers.context import Services
from resolvers.export_callbacks import CallbackRejectedError, apply_callback, webhook_secret_for_export
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry
from tests.resolvers.export_seed import T0, Seeded, seed_exporting, state

SECRET = "whsec_unit-test-0123456789"
LATER = T0 + timedelta(minutes=5)


def services_for(db: Database, woken: list[str] | None = None, *, requires_posting: bool = True) -> Services:
    connector = ScriptedConnector(capabilities=Capabilities(requires_posting=requires_posting))
    return Services(
        db=db,
        connectors=SingleConnectorRegistry(connector),  # type: ignore[arg-type]
        clock=lambda: LATER,
        events_committed=(woken if woken is not None else []).append,
    )


async def deferred(db: Database, **options: object) -> Seeded:
    """A webhook export the integrator accepted and will report on."""
    return await seed_exporting(
        db,
        connector="webhook",
        settings={"url": "http://127.0.0.1:9/", "secret": SECRET},
        job_status="AWAITING_CALLBACK",
        **options,  # type: ignore[arg-type]
    )


async def test_the_secret_is_the_webhook_companys(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    assert await webhook_secret_for_export(services, seeded.export_id) == SECRET
    assert await webhook_secret_for_export(services, "exp_unknown") is None
    other = await seed_exporting(db, connector="embedded", settings={"secret": SECRET})
    assert await webhook_secret_for_export(services, other.export_id) is None  # not a webhook company
    blank = await seed_exporting(db, connector="webhook", settings={"secret": ""})
    assert await webhook_secret_for_export(services, blank.export_id) is None


async def test_success_records_the_export_closes_the_job_and_wakes_the_company(db: Database) -> None:
    seeded = await deferred(db)
    woken: list[str] = []
    services = services_for(db, woken)

    assert await apply_callback(services, seeded.export_id, "success", erp_reference="VISTA-4411") == (
        "AWAITING_POSTING"
    )

    after = await state(db, seeded)
    assert (after.request["status"], after.request["erp_reference"], after.request["exported_at"]) == (
        "AWAITING_POSTING",
        "VISTA-4411",
        LATER,
    )
    assert after.budget["export_status"] == "AWAITING_POSTING"
    assert after.jobs[0]["status"] == "DONE"
    assert [e["type"] for e in after.events] == ["ExportWritten"]
    assert woken == [seeded.company_id]

    # The integrator's retry of the same callback is harmless.
    assert await apply_callback(services, seeded.export_id, "success", erp_reference="VISTA-4411") == (
        "AWAITING_POSTING"
    )
    assert await state(db, seeded) == after and woken == [seeded.company_id]


async def test_success_for_an_erp_that_posts_at_once_syncs(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db, requires_posting=False)
    assert await apply_callback(services, seeded.export_id, "success") == "SYNCED"
    assert (await state(db, seeded)).request["posted_at"] == LATER


async def test_failure_fails_the_export_with_the_integrators_message(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    assert await apply_callback(services, seeded.export_id, "failure", message="Job P-100 is closed") == (
        "EXPORT_FAILED"
    )
    after = await state(db, seeded)
    assert after.request["failure_message"] == "Job P-100 is closed"
    assert [(e["type"], e["reason"]) for e in after.events] == [("ExportFailed", "Job P-100 is closed")]
    assert after.jobs[0]["status"] == "DONE"
    other = await deferred(db)
    assert await apply_callback(services, other.export_id, "failure") == "EXPORT_FAILED"
    assert (await state(db, other)).request["failure_message"] == "the integrator reported a failure"


async def test_posted_syncs_an_exporting_request_through_both_steps(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    assert await apply_callback(services, seeded.export_id, "posted", erp_reference="SAGE-881") == "SYNCED"
    after = await state(db, seeded)
    assert (after.request["erp_reference"], after.request["exported_at"], after.request["posted_at"]) == (
        "SAGE-881",
        LATER,
        LATER,
    )
    assert [e["type"] for e in after.events] == ["ExportWritten", "JobCostPosted"]
    assert after.budget["version"] == 9  # two decisions, each a version
    assert await apply_callback(services, seeded.export_id, "posted") == "SYNCED"  # a repeat
    assert await state(db, seeded) == after


@pytest.mark.parametrize(
    ("status", "callback"),
    [("EXPORT_FAILED", "posted"), ("REJECTED", "posted"), ("PENDING_ACCEPTANCE", "posted")],
)
async def test_a_callback_that_does_not_fit_is_refused_and_changes_nothing(
    db: Database, status: str, callback: str
) -> None:
    seeded = await deferred(db, status=status)
    woken: list[str] = []
    services = services_for(db, woken)
    before = await state(db, seeded)
    with pytest.raises(CallbackRejectedError) as refused:
        await apply_callback(services, seeded.export_id, callback)
    assert str(refused.value) == f"the request is not awaiting posting (status {status})"
    assert await state(db, seeded) == before and woken == []


@pytest.mark.parametrize("callback", ["success", "failure"])
async def test_a_late_success_or_failure_answers_with_the_current_status(db: Database, callback: str) -> None:
    seeded = await deferred(db, status="EXPORT_FAILED")
    services = services_for(db)
    before = await state(db, seeded)
    assert await apply_callback(services, seeded.export_id, callback) == "EXPORT_FAILED"
    assert await state(db, seeded) == before


async def test_an_unknown_export_or_status_is_refused(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    before = await state(db, seeded)
    with pytest.raises(CallbackRejectedError, match="unknown export"):
        await apply_callback(services, "exp_unknown", "success")
    with pytest.raises(CallbackRejectedError, match="status must be success, failure or posted"):
        await apply_callback(services, seeded.export_id, "SUCCESS")
    assert await state(db, seeded) == before
