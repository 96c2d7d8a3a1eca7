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
from tests.support import snapshot

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


async def test_posted_after_success_syncs_and_a_replay_of_either_changes_nothing(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    assert await apply_callback(services, seeded.export_id, "success", erp_reference="VISTA-4411") == (
        "AWAITING_POSTING"
    )
    assert await apply_callback(services, seeded.export_id, "posted", erp_reference="JC-881") == "SYNCED"
    after = await state(db, seeded)
    assert (after.request["erp_reference"], after.request["exported_at"], after.request["posted_at"]) == (
        "JC-881",  # the posting's reference, as confirmJobCostPosting keeps it
        LATER,
        LATER,
    )
    assert [e["type"] for e in after.events] == ["ExportWritten", "JobCostPosted"]
    assert after.budget["version"] == 9  # two decisions, each a version
    everything = await snapshot(db, seeded.company_id)

    # Integrators retry callbacks whose answer they missed: an identical replay is answered, not applied.
    assert await apply_callback(services, seeded.export_id, "posted", erp_reference="JC-881") == "SYNCED"
    assert await apply_callback(services, seeded.export_id, "posted") == "SYNCED"
    assert await apply_callback(services, seeded.export_id, "success") == "SYNCED"
    assert await snapshot(db, seeded.company_id) == everything


async def test_a_failure_replay_is_answered_and_a_different_one_refused(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    assert await apply_callback(services, seeded.export_id, "failure", message="Job P-100 is closed") == (
        "EXPORT_FAILED"
    )
    everything = await snapshot(db, seeded.company_id)
    assert await apply_callback(services, seeded.export_id, "failure", message="Job P-100 is closed") == (
        "EXPORT_FAILED"
    )
    with pytest.raises(CallbackRejectedError) as refused:
        await apply_callback(services, seeded.export_id, "failure", message="Phase 09-900 is not set up")
    assert refused.value.code == "NOT_PENDING"
    assert str(refused.value) == (
        "the failure callback differs from the one the request records (status EXPORT_FAILED): a repeat must "
        "carry the same messages"
    )
    assert await snapshot(db, seeded.company_id) == everything


# Every callback that does not fit the request's status, and is not a replay of what it records: refused
# with NOT_PENDING (a 409), nothing changes -- the request, its budget, its events, its entries, its job.
NOT_WRITTEN_YET = "a posted callback cannot come before the export is written (status {status}): report success first"
DOES_NOT_FIT = "a {callback} callback does not fit the request's status {status}"
DIFFERS = "the {callback} callback differs from the one the request records (status {status}): a repeat must carry " \
          "the same erpReference"


@pytest.mark.parametrize(
    ("status", "callback", "reference", "message"),
    [
        ("EXPORTING", "posted", None, NOT_WRITTEN_YET),
        ("EXPORTING", "posted", "JC-1", NOT_WRITTEN_YET),
        ("PENDING_ACCEPTANCE", "posted", None, NOT_WRITTEN_YET),
        ("PENDING_ACCEPTANCE", "success", None, DOES_NOT_FIT),
        ("PENDING_ACCEPTANCE", "failure", None, DOES_NOT_FIT),
        ("EXPORT_FAILED", "success", "JC-1", DOES_NOT_FIT),
        ("EXPORT_FAILED", "posted", None, DOES_NOT_FIT),
        ("AWAITING_POSTING", "failure", None, DOES_NOT_FIT),
        ("AWAITING_POSTING", "success", "OTHER-REF", DIFFERS),
        # After a terminal status.
        ("SYNCED", "failure", None, DOES_NOT_FIT),
        ("SYNCED", "success", "OTHER-REF", DIFFERS),
        ("SYNCED", "posted", "OTHER-REF", DIFFERS),
        ("REJECTED", "success", None, DOES_NOT_FIT),
        ("REJECTED", "failure", None, DOES_NOT_FIT),
        ("REJECTED", "posted", None, DOES_NOT_FIT),
        ("RETRIEVED", "success", "JC-1", DOES_NOT_FIT),
        ("RETRIEVED", "failure", None, DOES_NOT_FIT),
        ("RETRIEVED", "posted", None, DOES_NOT_FIT),
    ],
)
async def test_a_callback_that_does_not_fit_is_refused_and_changes_nothing(
    db: Database, status: str, callback: str, reference: str | None, message: str
) -> None:
    seeded = await deferred(db, status=status)
    woken: list[str] = []
    services = services_for(db, woken)
    before = await snapshot(db, seeded.company_id)
    with pytest.raises(CallbackRejectedError) as refused:
        await apply_callback(services, seeded.export_id, callback, erp_reference=reference, message="closed")
    assert refused.value.code == "NOT_PENDING"
    assert str(refused.value) == message.format(status=status, callback=callback)
    assert await snapshot(db, seeded.company_id) == before and woken == []


async def test_an_unknown_export_or_status_is_refused(db: Database) -> None:
    seeded = await deferred(db)
    services = services_for(db)
    before = await state(db, seeded)
    with pytest.raises(CallbackRejectedError, match="unknown export"):
        await apply_callback(services, "exp_unknown", "success")
    with pytest.raises(CallbackRejectedError, match="status must be success, failure or posted"):
        await apply_callback(services, seeded.export_id, "SUCCESS")
    assert await state(db, seeded) == before
