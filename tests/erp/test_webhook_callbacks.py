"""The webhook signature scheme, and the integrator's callback endpoint through the real app: a budget is sent,
accepted, exported to a real integrator server that answers "accepted", and the integrator's signed
callback decides what happens next."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from starlette.applications import Starlette

from app import admin
from app.main import create_app
from app.settings import Settings
from erp.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from persistence.database import Database
from persistence.tables import export_jobs
from resolvers.context import Services
from tests.e2e.conftest import (
    DECIDE,
    ERP_REQUEST,
    LOCK,
    SEND,
    SYNC_PROJECT,
    add_line,
    assert_no_leak,
    gql,
    ok,
    ready_to_send,
    wait_for,
)
from tests.erp.webhook_server import Integrator, Reply, running_integrator
from tests.support import JWT_SECRET, Tenant, make_tenant, snapshot

CALLBACK_PATH = "/erp/callbacks/webhook"
SECRET = "whsec_callback-test-0123456789"
OTHER_SECRET = "whsec_someone-else-0123456789"

# --- the signature scheme -------------------------------------------------------------------------------

VECTOR_SECRET = "whsec_0123456789abcdef"
VECTOR_BODY = b'{"exportId":"exp_1","status":"success"}'
VECTOR_TS = 1_718_000_000
# printf '1718000000.{"exportId":"exp_1","status":"success"}' | openssl dgst -sha256 -hmac whsec_0123456789abcdef
VECTOR_SIGNATURE = "sha256=3a73ede22e57dd078734a9b8266ab1ee7e80506a0bad924f1c65970d7c73794f"


def test_header_names() -> None:
    assert (TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER, EVENT_HEADER) == (
        "X-BudgetBridge-Timestamp", "X-BudgetBridge-Signature", "X-BudgetBridge-Delivery", "X-BudgetBridge-Event",
    )


def test_sign_matches_an_independent_hmac() -> None:
    assert sign(VECTOR_SECRET, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


def test_a_good_signature_verifies() -> None:
    assert verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS)
    assert verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE.upper().replace("SHA256=", "sha256="),
                  VECTOR_BODY, now=VECTOR_TS)  # hex digits in either case


def test_a_wrong_secret_does_not_verify() -> None:
    assert not verify("whsec_0123456789abcdeF", str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS)
    assert not verify("", str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize(
    "body",
    [
        b'{"exportId":"exp_1","status":"failure"}',
        b'{"exportId":"exp_1","status":"success"} ',
        b'{"exportId": "exp_1", "status": "success"}',  # the same JSON, other bytes: the raw body is signed
        b"",
    ],
)
def test_a_tampered_body_does_not_verify(body: bytes) -> None:
    assert not verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE, body, now=VECTOR_TS)


def test_a_timestamp_moved_after_signing_does_not_verify() -> None:
    assert not verify(VECTOR_SECRET, str(VECTOR_TS + 1), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize(("offset", "valid"), [(-301, False), (-300, True), (0, True), (300, True), (301, False),
                                               (-86_400, False)])
def test_stale_and_future_timestamps(offset: int, valid: bool) -> None:
    """`now` is the receiver's clock: a signature from more than 5 minutes ago, or from more than 5 minutes
    in the future, is refused even though it is correct."""
    now = VECTOR_TS - offset
    assert verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=now) is valid


def test_the_tolerance_is_configurable() -> None:
    assert not verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS + 61, tolerance=60)
    assert verify(VECTOR_SECRET, str(VECTOR_TS), VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TS + 60, tolerance=60)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, VECTOR_SIGNATURE),
        (str(VECTOR_TS), None),
        ("", VECTOR_SIGNATURE),
        (str(VECTOR_TS), ""),
        ("abc", VECTOR_SIGNATURE),
        ("-1718000000", VECTOR_SIGNATURE),
        ("+1718000000", VECTOR_SIGNATURE),
        (" 1718000000", VECTOR_SIGNATURE),
        ("1718000000.0", VECTOR_SIGNATURE),
        ("1.718e9", VECTOR_SIGNATURE),
        ("١٧١٨٠٠٠٠٠٠", VECTOR_SIGNATURE),  # Arabic-Indic digits: isdigit() but not ASCII
        ("9" * 400, VECTOR_SIGNATURE),
        (str(VECTOR_TS), VECTOR_SIGNATURE.removeprefix("sha256=")),
        (str(VECTOR_TS), VECTOR_SIGNATURE.replace("sha256=", "sha1=")),
        (str(VECTOR_TS), VECTOR_SIGNATURE[:-2]),
        (str(VECTOR_TS), VECTOR_SIGNATURE + "00"),
        (str(VECTOR_TS), VECTOR_SIGNATURE[:-1] + "g"),
        (str(VECTOR_TS), "sha256=" + "é" * 64),
        (str(VECTOR_TS), f"{VECTOR_SIGNATURE},{VECTOR_SIGNATURE}"),
    ],
)
def test_malformed_headers_do_not_verify(timestamp: str | None, signature: str | None) -> None:
    assert not verify(VECTOR_SECRET, timestamp, signature, VECTOR_BODY, now=VECTOR_TS)


# --- the endpoint through the real app ------------------------------------------------------------------


@pytest.fixture
async def integrator() -> AsyncIterator[Integrator]:
    async with running_integrator() as server:
        server.defaults["sync_job"] = Reply(200, {"erpJobId": "INT-JOB-7"})
        server.defaults["create_budget"] = Reply(202, {"status": "accepted"})
        yield server


@pytest.fixture
async def callback_app(db: Database) -> AsyncIterator[Starlette]:
    settings = Settings(database_url=db.url, jwt_secret=JWT_SECRET, export_poll_seconds=0.05)
    application = create_app(settings, run_worker=True)
    assert any(getattr(route, "path", None) == CALLBACK_PATH for route in application.routes), (
        f"create_app does not route POST {CALLBACK_PATH} to app.webhook_callbacks.webhook_callback"
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app  # type: ignore[misc]


@pytest.fixture
async def http(callback_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=callback_app), base_url="http://test") as client:
        yield client


async def webhook_tenant(services: Services, integrator: Integrator, secret: str = SECRET) -> Tenant:
    tenant = await make_tenant(services, connector=None)
    async with services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, "webhook",
                                          {**integrator.options, "secret": secret})
        await uow.commit()
    return tenant


async def request_of(http: httpx.AsyncClient, tenant: Tenant, request_id: str) -> dict[str, Any]:
    data = await ok(http, tenant.token("approver"), ERP_REQUEST, id=request_id)
    request: dict[str, Any] = data["erpRequest"]
    return request


async def job_status(db: Database, request_id: str) -> str | None:
    async with db.read() as conn:
        status = (await conn.execute(select(export_jobs.c.status).where(export_jobs.c.request_id == request_id)
                                     .order_by(export_jobs.c.created_at.desc()))).scalars().first()
    return status


async def exported_and_waiting(http: httpx.AsyncClient, tenant: Tenant, integrator: Integrator) -> tuple[str, str]:
    """Send and accept the budget; the integrator answers "accepted", so the request waits in EXPORTING for
    its callback. Returns (request id, export id)."""
    await ready_to_send(http, tenant)
    sent = await ok(http, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
    request_id: str = sent["sendToERP"]["erpRequest"]["id"]
    await ok(http, tenant.token("approver"), DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})

    async def exports_received() -> list[Any]:
        return [r for r in integrator.received if r.event == "create_budget"]

    (delivery,) = await wait_for(exports_received, lambda found: len(found) == 1)
    export_id: str = delivery.json["exportId"]
    assert delivery.delivery_id == export_id
    await wait_for(lambda: job_status(tenant.services.db, request_id), lambda status: status == "AWAITING_CALLBACK")
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORTING"
    return request_id, export_id


def signed(body: dict[str, Any] | bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, Any]:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    ts = int(time.time()) if timestamp is None else timestamp
    return {"content": content, "headers": {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
                                            SIGNATURE_HEADER: sign(secret, ts, content)}}


async def callback(http: httpx.AsyncClient, body: dict[str, Any] | bytes, **signing: Any) -> httpx.Response:
    response = await http.post(CALLBACK_PATH, **signed(body, **signing))
    assert_no_leak(response.text)
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response


async def test_forged_or_unsigned_callbacks_are_refused_and_change_nothing(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    before = await snapshot(db, tenant.company_id)
    success = {"exportId": export_id, "status": "success", "erpReference": "FORGED-1"}

    forged = await callback(http, success, secret=OTHER_SECRET)
    unsigned = await http.post(CALLBACK_PATH, content=orjson.dumps(success))
    # A correct signature over other bytes than those sent.
    swapped = signed({"exportId": export_id, "status": "failure"})
    swapped["content"] = orjson.dumps(success)
    tampered = await http.post(CALLBACK_PATH, **swapped)
    # An export nobody knows gets exactly the same answer as a bad signature.
    unknown = await callback(http, {"exportId": "exp_does_not_exist", "status": "success"})

    for response in (forged, unsigned, tampered, unknown):
        assert response.status_code == 401, response.text
        assert response.json() == forged.json()
        assert set(forged.json()) == {"error"}
    assert await snapshot(db, tenant.company_id) == before
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORTING"


async def test_a_callback_signed_with_another_companys_secret_is_refused(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    _request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    other = await webhook_tenant(services, integrator, secret=OTHER_SECRET)  # another company, its own secret
    assert other.company_id != tenant.company_id
    before = await snapshot(db, tenant.company_id)

    response = await callback(http, {"exportId": export_id, "status": "posted"}, secret=OTHER_SECRET)

    assert response.status_code == 401
    assert await snapshot(db, tenant.company_id) == before


@pytest.mark.parametrize("age", [301, 3600, -301], ids=["5min-old", "1h-old", "from-the-future"])
async def test_a_stale_timestamp_is_refused(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator, age: int
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    before = await snapshot(db, tenant.company_id)

    response = await callback(http, {"exportId": export_id, "status": "success", "erpReference": "LATE"},
                              timestamp=int(time.time()) - age)

    assert response.status_code == 401
    assert await snapshot(db, tenant.company_id) == before
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORTING"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"exp_1"',
        b'{"status": "success"}',
        b'{"exportId": "", "status": "success"}',
        b'{"exportId": 17, "status": "success"}',
        b'{"exportId": "exp_1"}',
        b'{"exportId": "exp_1", "status": "SUCCESS"}',
        b'{"exportId": "exp_1", "status": "success", "erpReference": 5}',
        b'{"exportId": "exp_1", "status": "failure", "messages": "one message"}',
        b'{"exportId": "exp_1", "status": "failure", "messages": [1, 2]}',
        b"\xff\xfe\x00",
        # Text no column can hold: NUL, and lone surrogates (refused by the JSON parser or by the check).
        b'{"exportId": "exp_1\\u0000", "status": "success"}',
        b'{"exportId": "exp_1", "status": "success", "erpReference": "JC-\\u0000"}',
        b'{"exportId": "exp_1", "status": "failure", "messages": ["bad \\u0000 byte"]}',
        b'{"exportId": "exp_1", "status": "failure", "messages": ["\\ud800"]}',
    ],
)
async def test_a_malformed_callback_is_a_400_with_a_json_error(http: httpx.AsyncClient, body: bytes) -> None:
    response = await callback(http, body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]


async def test_an_oversized_callback_is_refused(http: httpx.AsyncClient) -> None:
    response = await callback(http, {"exportId": "exp_1", "status": "failure", "messages": ["x" * 1000] * 70})
    assert response.status_code == 413


async def test_a_success_callback_moves_the_request_on_and_posted_syncs_it(
    http: httpx.AsyncClient, services: Services, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    # What the app sent the integrator on the way: a signed sync_job, then the export for the synced job.
    sync, export = integrator.received
    assert (sync.event, export.event) == ("sync_job", "create_budget")
    for sent in (sync, export):
        assert verify(SECRET, sent.headers["x-budgetbridge-timestamp"], sent.headers["x-budgetbridge-signature"],
                      sent.body, now=int(time.time()))
    assert export.json["job"]["erpJobId"] == "INT-JOB-7"
    assert {(row["costCode"], row["costType"], row["amount"]) for row in export.json["jobCostRows"]} == {
        ("03-300", "L", "1000.00"), ("05-120", "M", "2500.00"),
    }

    response = await callback(http, {"exportId": export_id, "status": "success", "erpReference": "VISTA-JC-4411"})

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "AWAITING_POSTING"}
    request = await request_of(http, tenant, request_id)
    assert request["status"] == "AWAITING_POSTING"
    assert request["erpReference"] == "VISTA-JC-4411" and request["exportedAt"] and request["postedAt"] is None
    assert request["budget"]["exportStatus"] == "AWAITING_POSTING"

    # The integrator's retry of the same callback is harmless.
    again = await callback(http, {"exportId": export_id, "status": "success", "erpReference": "VISTA-JC-4411"})
    assert again.status_code == 200 and again.json() == {"status": "AWAITING_POSTING"}

    posted = await callback(http, {"exportId": export_id, "status": "posted"})

    assert posted.status_code == 200, posted.text
    assert posted.json() == {"status": "SYNCED"}
    request = await request_of(http, tenant, request_id)
    assert request["status"] == "SYNCED" and request["postedAt"]
    assert request["erpReference"] == "VISTA-JC-4411"
    assert request["budget"]["exportStatus"] == "SYNCED"


async def test_a_posted_callback_before_the_export_is_written_is_a_409_and_changes_nothing(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    before = await snapshot(db, tenant.company_id)  # the request, its events, its entries, its job

    refused = await callback(http, {"exportId": export_id, "status": "posted", "erpReference": "SAGE-881"})

    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "error": "a posted callback cannot come before the export is written (status EXPORTING): report success "
                 "first",
        "code": "NOT_PENDING",
    }
    assert await snapshot(db, tenant.company_id) == before
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORTING"
    assert await job_status(db, request_id) == "AWAITING_CALLBACK"

    # In order, the same two reports go through.
    assert (await callback(http, {"exportId": export_id, "status": "success", "erpReference": "SAGE-881"})).json() \
        == {"status": "AWAITING_POSTING"}
    assert (await callback(http, {"exportId": export_id, "status": "posted"})).json() == {"status": "SYNCED"}
    request = await request_of(http, tenant, request_id)
    assert request["status"] == "SYNCED" and request["erpReference"] == "SAGE-881"
    assert request["exportedAt"] and request["postedAt"]


async def test_after_a_terminal_status_only_an_identical_replay_gets_a_200(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    success = {"exportId": export_id, "status": "success", "erpReference": "VISTA-JC-4411"}
    assert (await callback(http, success)).json() == {"status": "AWAITING_POSTING"}
    assert (await callback(http, {"exportId": export_id, "status": "posted"})).json() == {"status": "SYNCED"}
    synced = await snapshot(db, tenant.company_id)

    for replay in (success, {"exportId": export_id, "status": "posted"},
                   {"exportId": export_id, "status": "posted", "erpReference": "VISTA-JC-4411"}):
        again = await callback(http, replay)
        assert again.status_code == 200 and again.json() == {"status": "SYNCED"}, again.text
    refusals = [
        await callback(http, {"exportId": export_id, "status": "failure", "messages": ["Job P-100 is closed"]}),
        await callback(http, {**success, "erpReference": "VISTA-JC-9999"}),
        await callback(http, {"exportId": export_id, "status": "posted", "erpReference": "VISTA-JC-9999"}),
    ]

    assert [(r.status_code, r.json()["code"]) for r in refusals] == [(409, "NOT_PENDING")] * 3
    assert refusals[0].json()["error"] == "a failure callback does not fit the request's status SYNCED"
    assert "a repeat must carry the same erpReference" in refusals[1].json()["error"]
    assert await snapshot(db, tenant.company_id) == synced
    request = await request_of(http, tenant, request_id)
    assert (request["status"], request["erpReference"], request["failureMessage"]) == (
        "SYNCED", "VISTA-JC-4411", None
    )


async def test_a_failure_callback_fails_the_export_with_the_integrators_messages(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)

    response = await callback(http, {"exportId": export_id, "status": "failure",
                                     "messages": ["Job P-100 is closed in Vista", "Phase 09-900 is not set up"]})

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "EXPORT_FAILED"}
    request = await request_of(http, tenant, request_id)
    assert request["status"] == "EXPORT_FAILED"
    assert request["failureMessage"] == "Job P-100 is closed in Vista; Phase 09-900 is not set up"
    assert request["budget"]["exportStatus"] == "EXPORT_FAILED"

    # Posting cannot be reported for an export that failed, nor success: the callback is authentic but out of
    # place. The same failure again is a replay.
    failed = await snapshot(db, tenant.company_id)
    for late in ({"exportId": export_id, "status": "posted"},
                 {"exportId": export_id, "status": "success", "erpReference": "LATE-1"}):
        refused = await callback(http, late)
        assert refused.status_code == 409, refused.text
        assert refused.json() == {"error": f"a {late['status']} callback does not fit the request's status "
                                           "EXPORT_FAILED", "code": "NOT_PENDING"}
    replay = await callback(http, {"exportId": export_id, "status": "failure",
                                   "messages": ["Job P-100 is closed in Vista", "Phase 09-900 is not set up"]})
    assert replay.status_code == 200 and replay.json() == {"status": "EXPORT_FAILED"}
    assert await snapshot(db, tenant.company_id) == failed
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORT_FAILED"


# --- posting control totals on the `posted` callback ------------------------------------------------------------
# The export of exported_and_waiting carries two entries: 1000.00 and 2500.00.


async def totals_tenant(services: Services, integrator: Integrator, **options: str) -> Tenant:
    tenant = await make_tenant(services, connector=None)
    async with services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, "webhook",
                                          {**integrator.options, "secret": SECRET, **options})
        await uow.commit()
    return tenant


@pytest.mark.parametrize(
    ("totals", "message"),
    [
        ({"entryCount": 3, "totalAmount": "3500.00"}, "the posting shows 3 entries, but the request exported 2"),
        ({"entryCount": 2, "totalAmount": "7000.00"}, "the posting totals 7000.00, but the request's exported entries "
                                                      "total 3500.00"),
        ({"entryCount": 2, "totalAmount": "-3500.00"}, "the posting totals -3500.00"),
        ({"entryCount": 1}, "the posting shows 1 entry, but the request exported 2 entries"),
    ],
)
async def test_a_posted_callback_with_wrong_totals_is_a_409_and_changes_nothing(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator, totals: dict[str, Any],
    message: str,
) -> None:
    tenant = await totals_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    await callback(http, {"exportId": export_id, "status": "success", "erpReference": "JC-77"})
    before = await snapshot(db, tenant.company_id)

    refused = await callback(http, {"exportId": export_id, "status": "posted", **totals})

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "POSTING_TOTALS_MISMATCH"
    assert message in refused.json()["error"]
    assert await snapshot(db, tenant.company_id) == before
    assert (await request_of(http, tenant, request_id))["status"] == "AWAITING_POSTING"


async def test_a_posted_callback_with_the_right_totals_syncs_and_a_repeat_is_checked_too(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await totals_tenant(services, integrator)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    await callback(http, {"exportId": export_id, "status": "success", "erpReference": "JC-77"})
    request = await ok(http, tenant.token("approver"), "query($id: ID!) { erpRequest(id: $id) { entryCount "
                       "entriesTotal } }", id=request_id)
    assert request["erpRequest"] == {"entryCount": 2, "entriesTotal": "3500.00"}

    posted = await callback(http, {"exportId": export_id, "status": "posted", "entryCount": 2,
                                   "totalAmount": "3500.00"})

    assert posted.status_code == 200, posted.text
    assert posted.json() == {"status": "SYNCED"}
    again = await callback(http, {"exportId": export_id, "status": "posted", "entryCount": 2, "totalAmount": "3500"})
    assert again.status_code == 200 and again.json() == {"status": "SYNCED"}
    before = await snapshot(db, tenant.company_id)
    doubled = await callback(http, {"exportId": export_id, "status": "posted", "entryCount": 4,
                                    "totalAmount": "7000.00"})
    assert doubled.status_code == 409 and doubled.json()["code"] == "POSTING_TOTALS_MISMATCH"
    assert await snapshot(db, tenant.company_id) == before


async def test_a_connection_that_requires_totals_refuses_a_posted_callback_without_them(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await totals_tenant(services, integrator, require_posting_totals="true")
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    await callback(http, {"exportId": export_id, "status": "success"})
    before = await snapshot(db, tenant.company_id)

    refused = await callback(http, {"exportId": export_id, "status": "posted"})
    half = await callback(http, {"exportId": export_id, "status": "posted", "entryCount": 2})

    for response in (refused, half):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "VALIDATION_FAILED"
        assert "requires the posting journal's total amount" in response.json()["error"]
    assert "entry count" in refused.json()["error"]
    assert await snapshot(db, tenant.company_id) == before

    posted = await callback(http, {"exportId": export_id, "status": "posted", "entryCount": 2,
                                   "totalAmount": "3500.00"})
    assert posted.status_code == 200 and posted.json() == {"status": "SYNCED"}
    assert (await request_of(http, tenant, request_id))["status"] == "SYNCED"


@pytest.mark.parametrize(
    "body",
    [
        b'{"exportId": "exp_1", "status": "posted", "entryCount": "2"}',
        b'{"exportId": "exp_1", "status": "posted", "entryCount": -1}',
        b'{"exportId": "exp_1", "status": "posted", "entryCount": 2.0}',
        b'{"exportId": "exp_1", "status": "posted", "entryCount": true}',
        b'{"exportId": "exp_1", "status": "posted", "totalAmount": 3500.0}',
        b'{"exportId": "exp_1", "status": "posted", "totalAmount": "3500.001"}',
        b'{"exportId": "exp_1", "status": "posted", "totalAmount": "3.5e3"}',
    ],
)
async def test_malformed_posting_totals_are_a_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await callback(http, body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}


def test_the_documented_callback_examples_verify() -> None:
    """docs/webhook.md's signed callback examples: each signature verifies over its body at its timestamp."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "webhook.md").read_text()
    pattern = r"POST /erp/callbacks/webhook HTTP/1.1\n.*?Timestamp: (\d+)\n.*?Signature: (\S+)\n\n(\{.*?\})\n"
    examples = re.findall(pattern, text, re.S)
    assert len(examples) >= 2
    for timestamp, signature, body in examples:
        assert verify("whsec_example_4f9a2c7e1b3d5f60", timestamp, signature, body.encode(), now=int(timestamp))
    bodies = [orjson.loads(body) for _, _, body in examples]
    assert {"exportId": "bb-7c4f1e2a9d3b4c5e8f6a0b1c2d3e4f5a", "status": "posted", "entryCount": 4,
            "totalAmount": "200.00"} in bodies


# --- what the integrator answers reaches users only in our words ------------------------------------------------


async def every_stored_text(db: Database) -> str:
    """Every row of every table, as text: where a leaked answer would have been kept (requests, events, jobs,
    notifications and their outbox)."""
    from persistence.tables import metadata

    async with db.read() as conn:
        rows = [repr(tuple(row)) for table in metadata.sorted_tables for row in await conn.execute(select(table))]
    return "\n".join(rows)


async def test_an_unsigned_refusal_reaches_no_user_message_event_or_notification(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    """An endpoint that is not the integrator (a wrong URL) answers with what it has: its body must not reach
    the approver's failureMessage, the history, the notifications or a GraphQL error."""
    leak = f"internal-token-{time.time_ns()} db=10.0.0.9"
    tenant = await webhook_tenant(services, integrator)
    integrator.defaults["sync_job"] = Reply(400, {"error": leak})
    await add_lines_and_lock(http, tenant)

    sync = (await gql(http, tenant.token("admin"), SYNC_PROJECT, p=tenant.project_id))["data"]
    assert sync["syncProjectToERP"]["userErrors"] == [{
        "code": "ERP_SYNC_FAILED", "field": None,
        "message": "the ERP refused the job sync: the integrator refused the sync job (HTTP 400)",
    }]
    integrator.defaults["sync_job"] = Reply(200, {"erpJobId": "INT-JOB-7"})
    integrator.defaults["create_budget"] = Reply(422, {"message": leak, "messages": [leak]})
    await ok(http, tenant.token("admin"), SYNC_PROJECT, p=tenant.project_id)
    sent = await ok(http, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
    request_id = sent["sendToERP"]["erpRequest"]["id"]
    await ok(http, tenant.token("approver"), DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})

    failed = await wait_for(lambda: request_of(http, tenant, request_id), lambda r: r["status"] == "EXPORT_FAILED")

    assert failed["failureMessage"] == "the integrator refused the create budget (HTTP 422)"
    history = await ok(http, tenant.token("approver"), HISTORY, b=tenant.budget_id)
    reasons = [e["node"]["reason"] for e in history["budget"]["history"]["edges"]]
    assert "the integrator refused the create budget (HTTP 422)" in reasons
    assert leak not in await every_stored_text(db)


HISTORY = "query($b: ID!) { budget(id: $b) { history(first: 50) { edges { node { type reason } } } } }"


async def add_lines_and_lock(http: httpx.AsyncClient, tenant: Tenant) -> None:
    await add_line(http, tenant, "03-300", "L", "1000.00")
    await ok(http, tenant.token("admin"), LOCK, i={"budgetId": tenant.budget_id})
