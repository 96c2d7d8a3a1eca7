"""Structured logs as an operator reads them: one JSON object per line, one access line per GraphQL operation
saying who, what, how it ended and how long it took, and nothing a client sent (query text, variables,
tokens) at INFO."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.export_worker import ExportWorker
from erp.base import ExportReceipt
from resolvers import queries
from tests.e2e.conftest import line_fields
from tests.erp.fakes import ScriptedConnector, failures
from tests.erp.test_export_pipeline import accepted_with, worker_for
from tests.erp.workflow import ADD_LINE, SEND, accept, add_line, lock_and_send
from tests.notify.smtp_server import running_smtp
from tests.notify.support import notifier_for
from tests.ops.conftest import CapturedLog
from tests.support import Tenant, make_tenant

ME = "query Me { viewer { id } }"


async def post(
    client: httpx.AsyncClient, query: str, *, token: str | None = None, request_id: str | None = None, **variables: Any
) -> httpx.Response:
    headers = {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if request_id is not None:
        headers["x-request-id"] = request_id
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def test_an_operation_writes_one_json_access_line_with_who_what_outcome_and_duration(
    client: httpx.AsyncClient, tenant: Tenant, captured_log: CapturedLog
) -> None:
    response = await post(client, ME, token=tenant.token("reader"), request_id="ops-me-1")
    assert response.status_code == 200 and response.json()["data"]["viewer"]["id"] == tenant.users["reader"]

    (line,) = captured_log.access("ops-me-1")
    assert line["level"] == "INFO" and line["logger"] == "budgetbridge.access"
    assert line["message"].startswith("graphql query Me -> ok in ")
    assert (line["user_id"], line["company_id"]) == (tenant.users["reader"], tenant.company_id)
    assert (line["operation"], line["operation_type"], line["outcome"]) == ("Me", "query", "ok")
    assert line["transport"] == "http"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None  # ISO 8601 with its zone


async def test_each_outcome_is_named_and_nothing_the_client_sent_is_logged_at_info(
    client: httpx.AsyncClient, tenant: Tenant, captured_log: CapturedLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, secret = tenant.token("admin"), "SECRET-VARIABLE-7731"

    # A refusal the domain explains: userErrors in a 200 answer.
    sent = await post(client, SEND, token=admin, request_id="ops-user-error", b=tenant.budget_id)
    assert sent.json()["data"]["sendToERP"]["userErrors"], sent.text
    # A variable that is not a decimal: its value is in the error message the client gets, not in the log.
    fields = {**line_fields(tenant, "03-300", "L", "1.00"), "originalAmount": secret}
    bad = await post(client, ADD_LINE, token=admin, request_id="ops-bad-input",
                     i={"budgetId": tenant.budget_id, "item": fields})
    assert bad.json()["errors"], bad.text
    # No token; then a bug.
    await post(client, ME, request_id="ops-anonymous")

    async def broken(ctx: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(queries, "cost_codes", broken)
    failed = await post(client, "query Codes { costCodes { id } }", token=admin, request_id="ops-bug")
    (error,) = failed.json()["errors"]

    outcomes = {rid: [line["outcome"] for line in captured_log.access(rid)]
                for rid in ("ops-user-error", "ops-bad-input", "ops-anonymous", "ops-bug")}
    assert outcomes == {
        "ops-user-error": ["user_error"],
        "ops-bad-input": ["GRAPHQL_VALIDATION_FAILED"],  # graphql-core's own errors carry no code
        "ops-anonymous": ["UNAUTHENTICATED"],
        "ops-bug": ["INTERNAL_SERVER_ERROR"],
    }
    # The bug's traceback is logged once, at ERROR, under the same request id, with the error id the client got.
    (traceback_line,) = [line for line in captured_log.lines() if "exception" in line]
    assert traceback_line["level"] == "ERROR" and traceback_line["request_id"] == "ops-bug"
    assert error["extensions"]["errorId"] in traceback_line["message"]
    assert "secret internals" in traceback_line["exception"]

    logged = captured_log.text()
    for sent_by_client in (secret, admin, "viewer { id }", "createBudgetLineItem"):
        assert sent_by_client not in logged


@pytest.mark.parametrize("captured_log", ["text"], indirect=True)
async def test_the_default_text_format_is_one_readable_line_with_the_same_fields(
    client: httpx.AsyncClient, tenant: Tenant, captured_log: CapturedLog
) -> None:
    await post(client, ME, token=tenant.token("reader"), request_id="ops-text-1")
    (line,) = [line for line in captured_log.text().splitlines() if "request_id=ops-text-1" in line]
    pattern = (
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO budgetbridge\.access: graphql query Me -> ok in [\d.]+ ms "
        rf"\[request_id=ops-text-1 user_id={tenant.users['reader']} company_id={tenant.company_id} operation=Me "
        r"operation_type=query outcome=ok duration_ms=[\d.]+ transport=http\]"
    )
    assert re.fullmatch(pattern, line), line


async def test_the_export_worker_logs_each_jobs_start_outcome_and_attempt(
    tenant: Tenant, captured_log: CapturedLog
) -> None:
    await add_line(tenant, "03-300", "L", "1200.00")
    request_id = await lock_and_send(tenant)
    await accept(tenant, request_id)
    worker = ExportWorker(tenant.services, poll_seconds=0.05, timeout_seconds=5, company_id=tenant.company_id)
    assert await worker.run_once() == 1

    lines = [line for line in captured_log.lines() if line.get("erp_request_id") == request_id]
    assert [(line["level"], line["message"].split(" in ")[0]) for line in lines] == [
        ("INFO", f"export of {request_id} started (attempt 1)"),
        ("INFO", f"export of {request_id} -> AWAITING_POSTING (attempt 1)"),
    ]
    finished = lines[1]
    assert (finished["attempt"], finished["outcome"]) == (1, "AWAITING_POSTING")
    assert finished["company_id"] == tenant.company_id
    assert isinstance(finished["duration_ms"], float)


async def test_notifications_log_each_deliverys_start_outcome_and_attempt(
    services: Any, captured_log: CapturedLog
) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port)
        request_id = await lock_and_send(tenant)
        assert await notifier.deliver_due() == 1
        assert len(mail.received) == 1

    lines = [line for line in captured_log.lines() if line.get("erp_request_id") == request_id
             and line["logger"] == "budgetbridge.notifications"]
    assert [line["message"].split(" in ")[0].split(" ", 2)[2] for line in lines] == [
        "REQUEST_ARRIVED by EMAIL started (attempt 1)",
        "-> SENT (attempt 1)",
    ], lines
    assert {(line["attempt"], line["company_id"], line["channel"]) for line in lines} == {
        (1, tenant.company_id, "EMAIL")
    }
    assert lines[1]["outcome"] == "SENT"
    ours = [line for line in captured_log.lines() if line["logger"].startswith("budgetbridge")]
    assert "approver@example.com" not in str(ours)  # people are named by id, not by address


async def test_a_failed_export_attempt_is_a_warning_then_the_retry_is_attempt_two(
    services: Any, captured_log: CapturedLog
) -> None:
    connector = ScriptedConnector(outcomes=[*failures("ERP busy"), ExportReceipt("DOC-7")])
    scripted, tenant, request_id = await accepted_with(services, connector)
    worker = worker_for(scripted, tenant)
    assert await worker.run_once() == 2  # no backoff in this policy: due again at once

    lines = [line for line in captured_log.lines() if line.get("erp_request_id") == request_id]
    assert [(line["level"], line["message"].split(" in ")[0]) for line in lines] == [
        ("INFO", f"export of {request_id} started (attempt 1)"),
        ("WARNING", f"export of {request_id} failed (attempt 1): ERP busy"),
        ("INFO", f"export of {request_id} -> RETRYING (attempt 1)"),
        ("INFO", f"export of {request_id} started (attempt 2)"),
        ("INFO", f"export of {request_id} -> AWAITING_POSTING (attempt 2)"),
    ]
    assert lines[1]["retryable"] is True
