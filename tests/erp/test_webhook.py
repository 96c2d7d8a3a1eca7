"""The integrator webhook connector against a real HTTP integrator (uvicorn on a loopback port)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain.budget import BudgetState, SendConditions, send_blockers
from domain.export import EntryKind, ExportedEntry, request_kind
from domain.permissions import PermissionLevel, ProjectAccess
from domain.status import TRANSITIONS, WITHDRAWN, ExportStatus
from erp.base import ConnectorConfigError, ConnectorError, ExportBatch, ExportItem, JobSpec
from erp.registry import ConnectorRegistry
from erp.signing import sign, verify
from erp.webhook import WebhookConnector, event_name
from persistence.database import Database
from tests.erp.webhook_server import Integrator, Reply, bound_socket, running_integrator

SECRET = "integrator-shared-secret-0123456789"
NOW = 1_718_000_000


@pytest.fixture
async def integrator() -> AsyncIterator[Integrator]:
    async with running_integrator() as server:
        server.secret = SECRET  # its answers are signed, so their messages may be shown
        yield server


@pytest.fixture
async def connector(integrator: Integrator) -> AsyncIterator[WebhookConnector]:
    webhook = WebhookConnector({**integrator.options, "secret": SECRET, "timeout_seconds": 5}, clock=lambda: NOW)
    yield webhook
    await webhook.aclose()


def item(entry_id: str, line: str, code: str, ctype: str, amount: str, **extra: Any) -> ExportItem:
    return ExportItem(
        entry_id=entry_id, line_item_id=line, cost_code=code, cost_code_description=f"Cost code {code}",
        cost_type=ctype, sub_job=extra.pop("sub_job", None), description=extra.pop("description", None),
        kind=extra.pop("kind", "ORIGINAL_BUDGET"), amount=Decimal(amount), **extra,
    )


def create_batch() -> ExportBatch:
    return ExportBatch(
        export_id="exp_create_1", company_id="Company_1", request_id="ErpRequest_1", request_sequence=1,
        request_kind="CREATE_BUDGET", erp_job_id="JOB-P-100", job_number="P-100", job_name="Riverside MOB",
        export_date=date(2024, 6, 10),
        items=(
            item("ent_1", "line_concrete", "03-300", "L", "1000.00", description="Footings",
                 quantity=Decimal("12.5"), unit_of_measure="CY", unit_cost=Decimal("80.00")),
            item("ent_2", "line_steel", "05-120", "M", "2500.50"),
            item("ent_3", "line_finish", "09-900", "S", "750.00", sub_job="PHASE-2"),
        ),
    )


def update_batch() -> ExportBatch:
    return ExportBatch(
        export_id="exp_update_2", company_id="Company_1", request_id="ErpRequest_2", request_sequence=2,
        request_kind="UPDATE_BUDGET", erp_job_id="JOB-P-100", job_number="P-100", job_name="Riverside MOB",
        export_date=date(2024, 7, 1),
        items=(
            # the concrete line's original amount went down by 100, and modification 1 moved 250 into it
            item("ent_4", "line_concrete", "03-300", "L", "-100.00", description="Footings"),
            item("ent_5", "line_concrete", "03-300", "L", "250.00", description="Footings",
                 kind="BUDGET_MODIFICATION", modification_number=1, modification_notes="Owner change #4"),
            # ... out of the steel line
            item("ent_6", "line_steel", "05-120", "M", "-250.00", kind="BUDGET_MODIFICATION",
                 modification_number=1, modification_notes="Owner change #4"),
            # a new line added after the first export
            item("ent_7", "line_paint", "09-900", "L", "300", sub_job="PHASE-2", description="Touch-up"),
        ),
    )


def job() -> JobSpec:
    return JobSpec(company_id="Company_1", project_id="Project_1", number="P-100", name="Riverside MOB",
                   cost_codes=(("03-300", "Cast-in-place concrete"), ("05-120", "Structural steel")),
                   cost_types=(("L", "Labor"), ("M", "Material")),
                   pairs=(("03-300", "L"), ("05-120", "M")))


# --- payloads -------------------------------------------------------------------------------------------


async def test_create_budget_event_carries_the_job_rows_and_transactions(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(200, {"status": "success", "erpReference": "VISTA-JC-881"}))

    receipt = await connector.export(create_batch())

    assert receipt.erp_reference == "VISTA-JC-881" and receipt.deferred is False
    (request,) = integrator.received
    assert request.method == "POST" and request.path == "/budgetbridge/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.event == "create_budget"
    assert request.delivery_id == "exp_create_1"
    assert request.headers["x-budgetbridge-timestamp"] == str(NOW)
    assert request.json == {
        "event": "create_budget",
        "deliveryId": "exp_create_1",
        "exportId": "exp_create_1",
        "requestId": "ErpRequest_1",
        "requestSequence": 1,
        "exportDate": "2024-06-10",
        "job": {"erpJobId": "JOB-P-100", "number": "P-100", "name": "Riverside MOB"},
        "jobCostRows": [
            {"costCode": "03-300", "costType": "L", "subJob": None, "description": "Footings", "amount": "1000.00"},
            {"costCode": "05-120", "costType": "M", "subJob": None, "description": "Cost code 05-120",
             "amount": "2500.50"},
            {"costCode": "09-900", "costType": "S", "subJob": "PHASE-2", "description": "Cost code 09-900",
             "amount": "750.00"},
        ],
        "transactions": [
            {"entryId": "ent_1", "kind": "ORIGINAL_BUDGET", "costCode": "03-300", "costType": "L", "subJob": None,
             "amount": "1000.00", "quantity": "12.5", "unitOfMeasure": "CY", "unitCost": "80.00",
             "modificationNumber": None, "notes": None},
            {"entryId": "ent_2", "kind": "ORIGINAL_BUDGET", "costCode": "05-120", "costType": "M", "subJob": None,
             "amount": "2500.50", "quantity": None, "unitOfMeasure": None, "unitCost": None,
             "modificationNumber": None, "notes": None},
            {"entryId": "ent_3", "kind": "ORIGINAL_BUDGET", "costCode": "09-900", "costType": "S",
             "subJob": "PHASE-2", "amount": "750.00", "quantity": None, "unitOfMeasure": None, "unitCost": None,
             "modificationNumber": None, "notes": None},
        ],
    }
    # Amounts travel as exact decimal strings, never as JSON numbers.
    assert b'"amount":"2500.50"' in request.body and b"2500.5," not in request.body


async def test_update_budget_event_carries_deltas_and_modifications(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(200, {"status": "success", "erpReference": "VISTA-CO-12"}))

    receipt = await connector.export(update_batch())

    assert receipt.erp_reference == "VISTA-CO-12"
    (request,) = integrator.received
    body = request.json
    assert request.event == body["event"] == "update_budget"
    assert body["requestSequence"] == 2 and body["requestId"] == "ErpRequest_2"
    assert body["deliveryId"] == body["exportId"] == request.delivery_id == "exp_update_2"
    # One row per line: the line's total in this request (-100 + 250 on concrete, -250 on steel).
    assert body["jobCostRows"] == [
        {"costCode": "03-300", "costType": "L", "subJob": None, "description": "Footings", "amount": "150.00"},
        {"costCode": "05-120", "costType": "M", "subJob": None, "description": "Cost code 05-120",
         "amount": "-250.00"},
        {"costCode": "09-900", "costType": "L", "subJob": "PHASE-2", "description": "Touch-up", "amount": "300.00"},
    ]
    assert [(t["entryId"], t["kind"], t["amount"], t["modificationNumber"], t["notes"])
            for t in body["transactions"]] == [
        ("ent_4", "ORIGINAL_BUDGET", "-100.00", None, None),
        ("ent_5", "BUDGET_MODIFICATION", "250.00", 1, "Owner change #4"),
        ("ent_6", "BUDGET_MODIFICATION", "-250.00", 1, "Owner change #4"),
        ("ent_7", "ORIGINAL_BUDGET", "300.00", None, None),
    ]


async def test_a_line_whose_changes_cancel_out_is_zero_never_negative_zero(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    batch = ExportBatch(
        export_id="exp_zero", company_id="C", request_id="R", request_sequence=3, request_kind="UPDATE_BUDGET",
        erp_job_id="J", job_number="P-1", job_name="Zero", export_date=date(2024, 1, 2),
        items=(item("e1", "l1", "03-300", "L", "-40.00"), item("e2", "l1", "03-300", "L", "40.00",
                                                              kind="BUDGET_MODIFICATION", modification_number=2)),
    )
    await connector.export(batch)
    assert integrator.received[0].json["jobCostRows"][0]["amount"] == "0.00"


# --- the event name: create_budget only when nothing of the budget reached the ERP before --------------------


@pytest.mark.parametrize(("kind", "event"), [("CREATE_BUDGET", "create_budget"), ("UPDATE_BUDGET", "update_budget")])
def test_the_event_name_follows_the_request_kind(kind: str, event: str) -> None:
    assert event_name(dataclasses.replace(create_batch(), request_kind=kind)) == event


def test_an_unknown_request_kind_is_refused() -> None:
    with pytest.raises(ConnectorError, match="unknown request kind"):
        event_name(dataclasses.replace(create_batch(), request_kind="REPLACE_BUDGET"))


async def test_a_later_send_after_withdrawn_ones_is_still_create_budget(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    # Sends 1 and 2 were retrieved / rejected: nothing reached the ERP, so send 3 creates the budget there.
    third = dataclasses.replace(create_batch(), export_id="exp_create_3", request_sequence=3,
                                request_kind=request_kind(_earlier(ExportStatus.RETRIEVED, ExportStatus.REJECTED)))
    await connector.export(third)
    (request,) = integrator.received
    assert request.event == request.json["event"] == "create_budget"
    assert request.json["requestSequence"] == 3


def _earlier(*statuses: ExportStatus) -> list[ExportedEntry]:
    """One exported entry per earlier request, in the given statuses (as resolvers.views builds them)."""
    return [
        ExportedEntry(line_item_id="L1", kind=EntryKind.ORIGINAL_BUDGET, source_id="L1", amount=Decimal("10.00"),
                      withdrawn=status in WITHDRAWN, synced=status is ExportStatus.SYNCED)
        for status in statuses
    ]


@pytest.mark.parametrize(
    ("earlier", "kind"),
    [
        ((), "CREATE_BUDGET"),
        ((ExportStatus.RETRIEVED,), "CREATE_BUDGET"),
        ((ExportStatus.REJECTED,), "CREATE_BUDGET"),
        ((ExportStatus.RETRIEVED, ExportStatus.REJECTED, ExportStatus.RETRIEVED), "CREATE_BUDGET"),
        ((ExportStatus.SYNCED,), "UPDATE_BUDGET"),
        ((ExportStatus.SYNCED, ExportStatus.RETRIEVED), "UPDATE_BUDGET"),
        ((ExportStatus.REJECTED, ExportStatus.SYNCED, ExportStatus.REJECTED), "UPDATE_BUDGET"),
    ],
)
def test_a_request_creates_the_budget_until_an_earlier_export_reached_the_erp(
    earlier: tuple[ExportStatus, ...], kind: str
) -> None:
    assert request_kind(_earlier(*earlier)) == kind


def test_no_send_can_follow_a_request_that_is_live_but_has_not_reached_the_erp() -> None:
    """request_kind counts every request that was not retrieved or rejected as having reached the ERP. That is
    exact only because a new send is refused while the latest request is on its way (an accepted request whose
    export FAILED must be retried, not followed by another send) and every status a send may follow is final.
    If the state machine changes so that this no longer holds, this test fails and the event name needs its
    own field on the batch."""
    everything_else_allows = SendConditions(
        erp_connected=True, exports_budget=True, exports_modifications=True, supports_sub_jobs=True,
        project_synced=True, unsynced_cost_codes=(), unsynced_cost_types=(), sub_job_lines=(),
        has_pending_modifications=True, has_pending_original=True, nothing_to_send=False,
    )
    admin = ProjectAccess(budget_permission=PermissionLevel.ADMIN)
    sendable = {
        status for status in ExportStatus
        if not send_blockers(BudgetState(id="B", project_id="P", locked=True, version=3, export_status=status),
                             admin, everything_else_allows)
    }
    assert ExportStatus.EXPORT_FAILED not in sendable
    assert sendable == {ExportStatus.NOT_SENT, ExportStatus.RETRIEVED, ExportStatus.REJECTED, ExportStatus.SYNCED}
    for status in sendable - {ExportStatus.NOT_SENT}:
        assert not [action for (source, action) in TRANSITIONS if source is status], f"{status} is not final"
        reached_the_erp = status is ExportStatus.SYNCED
        assert (status not in WITHDRAWN) == reached_the_erp
        assert request_kind(_earlier(status)) == ("UPDATE_BUDGET" if reached_the_erp else "CREATE_BUDGET")


# --- signature and delivery id --------------------------------------------------------------------------


async def test_the_signature_verifies_with_the_shared_secret_only(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    await connector.export(create_batch())

    (request,) = integrator.received
    timestamp, signature = request.headers["x-budgetbridge-timestamp"], request.headers["x-budgetbridge-signature"]
    assert signature == sign(SECRET, NOW, request.body)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify(SECRET, timestamp, signature, request.body, now=NOW)
    assert verify(SECRET, timestamp, signature, request.body, now=NOW + 299)
    assert not verify("another-secret-0123456789", timestamp, signature, request.body, now=NOW)
    assert not verify(SECRET, timestamp, signature, request.body.replace(b"1000.00", b"9000.00"), now=NOW)
    assert not verify(SECRET, str(NOW + 1), signature, request.body, now=NOW)  # the timestamp is signed too
    assert not verify(SECRET, timestamp, signature, request.body, now=NOW + 301)


async def test_a_retry_carries_the_same_delivery_id_and_body_with_a_fresh_signature(integrator: Integrator) -> None:
    clock = iter([NOW, NOW + 7])
    webhook = WebhookConnector({**integrator.options, "secret": SECRET}, clock=lambda: next(clock))
    integrator.reply(Reply(503, {"message": "ERP maintenance window"}),
                     Reply(200, {"status": "success", "erpReference": "JC-77"}))
    try:
        with pytest.raises(ConnectorError) as failed:
            await webhook.export(create_batch())
        assert failed.value.retryable is True
        receipt = await webhook.export(create_batch())
    finally:
        await webhook.aclose()

    assert receipt.erp_reference == "JC-77"
    first, second = integrator.received
    assert first.delivery_id == second.delivery_id == "exp_create_1"
    assert first.body == second.body  # the integrator may de-duplicate on the delivery id or on the content
    assert first.headers["x-budgetbridge-timestamp"] == str(NOW)
    assert second.headers["x-budgetbridge-timestamp"] == str(NOW + 7)
    assert verify(SECRET, second.headers["x-budgetbridge-timestamp"], second.headers["x-budgetbridge-signature"],
                  second.body, now=NOW + 7)
    assert first.headers["x-budgetbridge-signature"] != second.headers["x-budgetbridge-signature"]


# --- answers --------------------------------------------------------------------------------------------


async def test_a_server_error_is_retryable(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(500, body=b"Internal Server Error"))

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert failed.value.retryable is True
    assert "HTTP 500" in str(failed.value)


async def test_a_client_error_is_final_and_carries_the_integrators_message(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(422, {"message": "Cost code 03-300 unknown"}))

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert failed.value.retryable is False
    assert "Cost code 03-300 unknown" in str(failed.value)
    assert "HTTP 422" in str(failed.value)


async def test_too_many_requests_is_retryable(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(429, {"message": "slow down"}))

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert failed.value.retryable is True and "slow down" in str(failed.value)


async def test_a_slow_integrator_times_out_retryably(integrator: Integrator) -> None:
    webhook = WebhookConnector({**integrator.options, "secret": SECRET, "timeout_seconds": 0.3})
    integrator.reply(Reply(200, {"status": "success", "erpReference": "late"}, delay=5))
    started = time.monotonic()
    try:
        with pytest.raises(ConnectorError) as failed:
            await webhook.export(create_batch())
    finally:
        await webhook.aclose()

    assert failed.value.retryable is True
    assert "0.3 s" in str(failed.value)
    assert time.monotonic() - started < 3
    assert len(integrator.received) == 1  # it did arrive; the answer was too late


async def test_an_unreachable_integrator_is_retryable() -> None:
    with bound_socket() as sock:  # a port that is bound but not listening: connections are refused
        port = sock.getsockname()[1]
        webhook = WebhookConnector({"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET, "timeout_seconds": 2,
                                    "allow_private_network": True})
        try:
            with pytest.raises(ConnectorError) as failed:
                await webhook.export(create_batch())
        finally:
            await webhook.aclose()

    assert failed.value.retryable is True
    assert "could not reach the integrator" in str(failed.value)


async def test_immediate_success_returns_the_erp_reference(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(201, {"status": "success", "erpReference": "SAGE-BATCH-0042"}))

    receipt = await connector.export(create_batch())

    assert (receipt.erp_reference, receipt.deferred) == ("SAGE-BATCH-0042", False)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(202, {"status": "accepted"}),
        Reply(200, {"status": "accepted"}),
        Reply(202),
        Reply(204),
        Reply(200),
    ],
    ids=["202-accepted", "200-accepted", "202-empty", "204", "200-empty"],
)
async def test_an_accepted_export_is_deferred_to_the_callback(
    integrator: Integrator, connector: WebhookConnector, reply: Reply
) -> None:
    integrator.reply(reply)

    receipt = await connector.export(create_batch())

    assert receipt.deferred is True and receipt.erp_reference is None


async def test_a_reported_failure_is_final_with_all_messages(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(200, {"status": "failure",
                                 "messages": ["Job P-100 is closed", "Cost type S is not set up on 09-900"]}))

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert failed.value.retryable is False
    assert str(failed.value) == "Job P-100 is closed; Cost type S is not set up on 09-900"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, body=b"<html>OK</html>"), "not JSON"),
        (Reply(200, ["success"]), "not an object"),
        (Reply(200, {"status": "done"}), "with a status that is not success, accepted or failure"),
        (Reply(302, body=b""), "redirect"),
    ],
    ids=["html", "array", "unknown-status", "redirect"],
)
async def test_an_answer_outside_the_protocol_fails_the_export(
    integrator: Integrator, connector: WebhookConnector, reply: Reply, expected: str
) -> None:
    integrator.reply(reply)

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert failed.value.retryable is False
    assert expected in str(failed.value)


# --- sync_job -------------------------------------------------------------------------------------------


async def test_sync_job_returns_the_integrators_job_id(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(200, {"erpJobId": "VISTA-JOB-24017"}))

    assert await connector.sync_job(job()) == "VISTA-JOB-24017"

    (request,) = integrator.received
    assert request.event == "sync_job"
    assert verify(SECRET, request.headers["x-budgetbridge-timestamp"], request.headers["x-budgetbridge-signature"],
                  request.body, now=NOW)
    body = request.json
    assert body["deliveryId"] == request.delivery_id and body["deliveryId"].startswith("sync-")
    assert body == {
        "event": "sync_job",
        "deliveryId": request.delivery_id,
        "job": {"projectId": "Project_1", "number": "P-100", "name": "Riverside MOB"},
        "costCodes": [{"code": "03-300", "description": "Cast-in-place concrete"},
                      {"code": "05-120", "description": "Structural steel"}],
        "costTypes": [{"code": "L", "name": "Labor"}, {"code": "M", "name": "Material"}],
        "pairs": [{"costCode": "03-300", "costType": "L"}, {"costCode": "05-120", "costType": "M"}],
    }


async def test_sync_job_without_an_id_in_the_answer_uses_the_job_number(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(204))
    assert await connector.sync_job(job()) == "P-100"


async def test_sync_job_errors_are_connector_errors(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(400, {"error": "job number P-100 is taken by another company"}), Reply(502))

    with pytest.raises(ConnectorError) as refused:
        await connector.sync_job(job())
    with pytest.raises(ConnectorError) as failed:
        await connector.sync_job(job())

    assert refused.value.retryable is False and "job number P-100 is taken" in str(refused.value)
    assert failed.value.retryable is True


# --- configuration --------------------------------------------------------------------------------------


async def test_capabilities_follow_the_options() -> None:
    default = WebhookConnector({"url": "https://hooks.example.com/bb", "secret": SECRET})
    custom = WebhookConnector({"url": "http://10.0.0.5:8080/bb", "secret": SECRET, "allow_private_network": "true",
                               "supports_sub_jobs": False,
                               "requires_posting": "false", "timeout_seconds": "2.5"})
    try:
        assert default.name == "webhook" and default.display_name == "Integrator webhook"
        caps = default.capabilities
        assert (caps.exports_budget, caps.exports_modifications, caps.supports_sub_jobs, caps.requires_posting,
                caps.exports_quantities) == (True, True, True, True, True)
        assert default.timeout_seconds == 10
        assert custom.capabilities.supports_sub_jobs is False and custom.capabilities.requires_posting is False
        assert custom.timeout_seconds == 2.5
        assert await default.posted("exp_1") is None
        await default.mark_posted("exp_1")
    finally:
        await default.aclose()
        await custom.aclose()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"secret": SECRET}, "url"),
        ({"url": "", "secret": SECRET}, "url"),
        ({"url": "ftp://example.com/drop", "secret": SECRET}, "url"),
        ({"url": "example.com/hook", "secret": SECRET}, "url"),
        ({"url": "http:///hook", "secret": SECRET}, "url"),
        ({"url": 42, "secret": SECRET}, "url"),
        ({"url": "https://example.com/hook"}, "secret"),
        ({"url": "https://example.com/hook", "secret": "too-short"}, "secret"),
        ({"url": "https://example.com/hook", "secret": 1234567890123456789}, "secret"),
        ({"url": "https://example.com/hook", "secret": SECRET, "timeout_seconds": 0}, "timeout_seconds"),
        ({"url": "https://example.com/hook", "secret": SECRET, "timeout_seconds": "soon"}, "timeout_seconds"),
        ({"url": "https://example.com/hook", "secret": SECRET, "timeout_seconds": 3600}, "timeout_seconds"),
        ({"url": "https://example.com/hook", "secret": SECRET, "supports_sub_jobs": "maybe"}, "supports_sub_jobs"),
        ({"url": "https://example.com/hook", "secret": SECRET, "requires_posting": 2}, "requires_posting"),
        ({"url": "http://example.com/hook", "secret": SECRET}, "must use https"),
        ({"url": "http://127.0.0.1:8080/hook", "secret": SECRET}, "must use https"),
        ({"url": "https://example.com/hook", "secret": SECRET, "allow_private_network": "maybe"},
         "allow_private_network"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConnectorConfigError, match=named):
        WebhookConnector(options)


async def test_the_registry_builds_and_closes_the_webhook_connector(db: Database) -> None:
    registry = ConnectorRegistry(db)
    options = {"url": "https://hooks.example.com/bb", "secret": SECRET}
    connector = registry.get("webhook", options)
    assert isinstance(connector, WebhookConnector)
    assert registry.get("webhook", dict(options)) is connector  # cached per options
    await registry.aclose()
    assert connector._client.is_closed
