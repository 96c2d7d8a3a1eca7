"""/metrics: scraped after a real workflow and checked value by value, protected by its token, bounded in its
labels, summed over `serve --workers 2`, and the Grafana dashboard queries only metrics a scrape has."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app import metrics
from app.export_worker import build_worker
from app.main import Runtime, create_app
from app.notifier import build_notifier
from app.settings import Settings
from persistence.database import Database
from persistence.tables import export_jobs
from persistence.unit_of_work import OutboxStatus
from resolvers import notifications
from resolvers.context import Services
from tests.e2e.conftest import ERP_REQUEST, GENEROUS_RATE_LIMITS, ready_to_send
from tests.e2e.test_scale_out import (
    REDIS_URL,
    ProcessOutput,
    budgetbridge,
    host_port,
    redis_alive,
    require,
    server_env,
    terminate,
)
from tests.live_server import free_port, live_server, reap_runtime, server_settings_for
from tests.support import JWT_SECRET, make_tenant
from tests.waiting import eventually
from tests.ws_support import initialise, latest_sequence, raw_socket, receive, subscribe

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
TOKEN = "metrics-token-" + "m" * 20


@dataclass
class Scrape:
    """One /metrics answer, parsed: every sample by name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: set[str]
    text: str

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        families: set[str] = set()
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(samples, families, text)

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist yet (counters start there)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for sample, labels in self.samples if sample == name and label in dict(labels)}

    def sample_names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def scrape(client: httpx.AsyncClient, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return Scrape.parse(response.text)


@dataclass
class App:
    client: httpx.AsyncClient
    runtime: Runtime
    settings: Settings


@pytest.fixture
async def quiet_app(db: Database) -> AsyncIterator[App]:
    """The app without its export worker and notifier: the test runs them when it wants to, for its own
    company only, so the queue and the outbox hold still between two scrapes."""
    settings = Settings(database_url=db.url, jwt_secret=JWT_SECRET, **GENEROUS_RATE_LIMITS)
    application = create_app(settings, run_worker=False)
    try:
        async with (
            LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
        ):
            yield App(client, application.state.runtime, settings)
    finally:
        await reap_runtime(getattr(application.state, "runtime", None), "the app")


async def graphql(client: httpx.AsyncClient, token: str | None, query: str, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


SEND = """mutation SendBudget($i: BudgetActionInput!) {
  sendToERP(input: $i) { erpRequest { id status } userErrors { code } } }"""
ACCEPT = """mutation AcceptExport($i: DecideExportInput!) {
  decideExport(input: $i) { erpRequest { id status } userErrors { code } } }"""
UNLOCK = """mutation UnlockBudget($i: BudgetActionInput!) {
  unlockBudget(input: $i) { budget { locked } userErrors { code } } }"""
OP = "budgetbridge_graphql_operation_duration_seconds_count"
ERRORS = "budgetbridge_graphql_errors_total"
HTTP = "budgetbridge_http_request_duration_seconds_count"


async def test_a_scrape_after_send_accept_and_export_counts_each_step(
    quiet_app: App, services: Services, db: Database
) -> None:
    client, runtime = quiet_app.client, quiet_app.runtime
    tenant = await make_tenant(services)
    await ready_to_send(client, tenant)
    before = await scrape(client)

    sent = await graphql(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
    request_id = sent["data"]["sendToERP"]["erpRequest"]["id"]
    sent_scrape = await scrape(client)
    # The request arrived: its approver's email waits in the outbox (nothing delivers it yet).
    assert sent_scrape.value("budgetbridge_notification_outbox_depth", status="PENDING") == (
        before.value("budgetbridge_notification_outbox_depth", status="PENDING") + 1
    )
    accepted = await graphql(client, tenant.token("approver"), ACCEPT,
                             i={"erpRequestId": request_id, "decision": "ACCEPT"})
    assert accepted["data"]["decideExport"]["erpRequest"]["status"] == "EXPORTING", accepted

    queued = await scrape(client)
    assert queued.value("budgetbridge_export_jobs", state="QUEUED") == (
        before.value("budgetbridge_export_jobs", state="QUEUED") + 1
    )
    assert queued.value("budgetbridge_database_up") == 1
    # The job has been due since the turn of the century: the oldest due job's age says so.
    since = datetime(1999, 1, 1, tzinfo=UTC)
    async with db.unit_of_work() as uow:
        await uow.connection.execute(
            update(export_jobs).where(export_jobs.c.request_id == request_id).values(next_attempt_at=since)
        )
        await uow.commit()
    overdue = await scrape(client)
    age = overdue.value("budgetbridge_export_oldest_due_job_age_seconds")
    assert abs(age - (datetime.now(UTC) - since).total_seconds()) < 120, age

    # The worker exports (this company's jobs only); the notifier tries the email on an SMTP port where
    # nothing listens: a failure that may pass, retried later.
    worker = build_worker(quiet_app.settings, runtime.services, company_id=tenant.company_id)
    assert await worker.run_once() == 1
    unreachable = replace(quiet_app.settings, smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_timeout_seconds=5)
    notifier = build_notifier(unreachable, runtime.services, company_id=tenant.company_id)
    assert await notifier.deliver_due() == 1
    exported = await graphql(client, tenant.token("approver"), ERP_REQUEST, id=request_id)
    assert exported["data"]["erpRequest"]["status"] == "AWAITING_POSTING", exported

    refused = await graphql(client, tenant.token("admin"), UNLOCK, i={"budgetId": tenant.budget_id})
    assert [e["code"] for e in refused["data"]["unlockBudget"]["userErrors"]] == ["AWAITING_POSTING"]
    anonymous = await graphql(client, None, "query Whoami { viewer { id } }")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    after = await scrape(client)

    def grew(name: str, by: float, **labels: str) -> None:
        assert after.value(name, **labels) - before.value(name, **labels) == by, (name, labels)

    grew(OP, 1, operation="SendBudget", type="mutation", outcome="ok")
    grew(OP, 1, operation="AcceptExport", type="mutation", outcome="ok")
    grew(OP, 1, operation="UnlockBudget", type="mutation", outcome="refused")
    grew(ERRORS, 1, code="AWAITING_POSTING", kind="user_error")
    grew(ERRORS, 1, code="UNAUTHENTICATED", kind="error")
    grew("budgetbridge_export_attempts_total", 1, connector="embedded", outcome="success")
    grew("budgetbridge_connector_call_duration_seconds_count", 1, connector="embedded", call="export", outcome="ok")
    grew("budgetbridge_notification_deliveries_total", 1, channel="email", outcome="retry")
    # Every request to /graphql since the first scrape, the refused and unauthenticated ones included.
    grew(HTTP, 5, route="/graphql", method="POST", status="200")
    grew(HTTP, 4, route="/metrics", method="GET", status="200")  # the first and those in between
    assert after.value("budgetbridge_export_jobs", state="QUEUED") == before.value(
        "budgetbridge_export_jobs", state="QUEUED")
    assert after.value("budgetbridge_export_oldest_due_job_age_seconds") < age
    # The email waits for its next try (not due yet, so it does not age the outbox).
    assert after.value("budgetbridge_notification_outbox_depth", status="PENDING") == before.value(
        "budgetbridge_notification_outbox_depth", status="PENDING") + 1
    # Connections go back to their pool: one held now shows, and nothing else was left checked out.
    assert after.value("budgetbridge_db_pool_connections_in_use") == before.value(
        "budgetbridge_db_pool_connections_in_use")
    async with runtime.db.read():
        held = await scrape(client)
    assert held.value("budgetbridge_db_pool_connections_in_use") == (
        after.value("budgetbridge_db_pool_connections_in_use") + 1
    )
    # The email waiting for its retry is closed, so that no later test's notifier finds it (shared database).
    later = datetime.now(UTC) + timedelta(days=1)
    assert await notifications.close_undeliverable(
        runtime.services, later, "EMAIL", OutboxStatus.NOT_SENT_NO_SMTP, "closed by the test", tenant.company_id
    ) == 1


async def test_open_websockets_subscriptions_and_the_event_tail_lag(services: Services, db: Database) -> None:
    tenant = await make_tenant(services)
    async with live_server(server_settings_for(db.url)) as server, httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}", timeout=15
    ) as client:
        await ready_to_send(client, tenant)
        before = await scrape(client)
        after_sequence = await latest_sequence(services, tenant.company_id)
        async with raw_socket(server.ws_url) as ws:
            await initialise(ws, tenant.token("approver"))
            await subscribe(ws, "1", "subscription($a: String) { exportStatusChanged(after: $a) { status } }",
                            {"a": after_sequence})
            wakeups = server.wakeups
            assert wakeups is not None
            await wakeups.until(lambda: any(s.parked for s in wakeups.subscriptions),
                                what="the subscription to catch up")
            following = await scrape(client)
            assert following.value("budgetbridge_websockets_open") == before.value("budgetbridge_websockets_open") + 1
            assert following.value("budgetbridge_subscriptions_open") == (
                before.value("budgetbridge_subscriptions_open") + 1
            )
            await graphql(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
            message = await receive(ws)
            assert message["payload"]["data"]["exportStatusChanged"]["status"] == "PENDING_ACCEPTANCE", message
            delivered = await scrape(client)
            assert delivered.value("budgetbridge_event_tail_lag_seconds_count") > before.value(
                "budgetbridge_event_tail_lag_seconds_count")

        async def closed() -> bool:
            now = await scrape(client)
            return now.value("budgetbridge_websockets_open") == before.value("budgetbridge_websockets_open") and (
                now.value("budgetbridge_subscriptions_open") == before.value("budgetbridge_subscriptions_open"))

        await eventually(closed, timeout=10, what="the closed socket and its subscription to leave the gauges")


async def test_the_metrics_token_is_required_when_set(db: Database) -> None:
    settings = Settings(database_url=db.url, jwt_secret=JWT_SECRET, metrics_token=TOKEN)
    application = create_app(settings, run_worker=False)
    try:
        async with (
            LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
        ):
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN},
                            {"Authorization": f"Basic {TOKEN}"}):
                refused = await client.get("/metrics", headers=headers)
                assert refused.status_code == 401, (headers, refused.text)
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert "budgetbridge_" not in refused.text.replace("BUDGETBRIDGE_", "")
            allowed = await scrape(client, TOKEN)
            assert "budgetbridge_http_request_duration_seconds" in allowed.families
            # The refusals were counted like any request, and nothing else was.
            assert allowed.value(HTTP, route="/metrics", method="GET", status="401") >= 4
    finally:
        await reap_runtime(getattr(application.state, "runtime", None), "the app")


def test_a_short_metrics_token_stops_the_start() -> None:
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match="BUDGETBRIDGE_METRICS_TOKEN"):
        Settings.from_env({"BUDGETBRIDGE_METRICS_TOKEN": "short"})
    assert Settings.from_env({"BUDGETBRIDGE_METRICS_TOKEN": TOKEN}).metrics_token == TOKEN


async def test_operation_names_chosen_by_clients_are_capped(
    quiet_app: App, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process keeps the first N names it sees (100 in production; 5 here, so that the suite's other
    # tests keep their names whatever the order).
    monkeypatch.setattr(metrics, "OPERATION_NAMES", metrics.BoundedNames(limit=5))
    tenant = await make_tenant(services)
    token = tenant.token("reader")
    before = await scrape(quiet_app.client)
    names = [f"Probe{os.getpid()}x{i}" for i in range(8)]
    for name in [*names, *names]:
        body = await graphql(quiet_app.client, token, f"query {name} {{ viewer {{ id }} }}")
        assert "errors" not in body, body
    after = await scrape(quiet_app.client)
    for name in names[:5]:
        assert after.value(OP, operation=name, type="query", outcome="ok") == 2
    assert not set(names[5:]) & after.label_values(OP, "operation")
    assert after.value(OP, operation="other", type="query", outcome="ok") - before.value(
        OP, operation="other", type="query", outcome="ok") == 6


def test_operations_are_named_from_the_document_when_the_request_does_not_name_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "OPERATION_NAMES", metrics.BoundedNames(limit=5))
    assert metrics.describe_operation("# a comment\nmutation SendIt($i: X) { a }", None) == ("SendIt", "mutation")
    assert metrics.describe_operation("query A { a } mutation B { b }", "B") == ("B", "mutation")
    assert metrics.describe_operation("{ viewer { id } }", None) == ("anonymous", "query")
    assert metrics.describe_operation("query { a }", None) == ("anonymous", "query")
    assert metrics.describe_operation("query A { a }", "Missing") == ("other", "query")
    assert metrics.describe_operation("subscription { exportStatusChanged { status } }", None)[1] == "subscription"


async def test_the_grafana_dashboard_queries_only_metrics_a_scrape_has(quiet_app: App, services: Services) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["panels"] and dashboard.get("schemaVersion", 0) >= 30
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions, "the dashboard has no queries"
    # Every metric a query names exists in a scrape (histograms by their _bucket/_count/_sum samples).
    tenant = await make_tenant(services)
    await graphql(quiet_app.client, tenant.token("reader"), "query Warm { viewer { id } }")
    available = (await scrape(quiet_app.client)).sample_names() | set(_ALWAYS_RECORDED)
    named = {name for expr in expressions for name in re.findall(r"\bbudgetbridge_[a-z_]+", expr)}
    assert named, expressions
    assert named <= available, sorted(named - available)
    # Each metric family the app exposes is on the dashboard (the dashboard is the operator's overview).
    families = {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in available
                if n.startswith("budgetbridge_")}
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in named}
    assert families <= shown, sorted(families - shown)


# A series that exists once a connector was called (a labelled histogram has no sample before); the workflow
# test above proves it is recorded.
_ALWAYS_RECORDED = ("budgetbridge_connector_call_duration_seconds_bucket",)


def test_the_counters_alerts_watch_start_at_zero() -> None:
    """So that increase() sees their first increment (README, Production: the alerts)."""
    from prometheus_client import REGISTRY

    text = generate_latest(REGISTRY).decode()
    for series in ('budgetbridge_export_attempts_total{connector="embedded",outcome="failed"}',
                   'budgetbridge_notification_deliveries_total{channel="email",outcome="failed"}',
                   'budgetbridge_graphql_errors_total{code="INTERNAL_SERVER_ERROR",kind="error"}'):
        assert series in text, series


async def test_two_worker_processes_are_summed_whichever_answers_the_scrape(tmp_path: Path) -> None:
    """`serve --workers 2` with PROMETHEUS_MULTIPROC_DIR: what a dead process left there is removed at start,
    and once both workers have served requests, every scrape (answered by either) counts all of them."""
    require(await redis_alive(*host_port(REDIS_URL)), f"Redis at {REDIS_URL} is not reachable")
    directory = tmp_path / "metrics"
    directory.mkdir()
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    stale = directory / f"counter_{gone.pid}.db"
    stale.write_bytes(b"left by a process that died")
    env = server_env(database_url=f"sqlite:///{tmp_path / 'bb.db'}", jwt_secret=JWT_SECRET, broadcast_url=REDIS_URL,
                     run_export_worker="false")
    env[metrics.MULTIPROC_ENV] = str(directory)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *budgetbridge(), "serve", "--port", str(port), "--workers", "2", env=env, cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output = ProcessOutput(process, tmp_path / "serve.log")
    try:
        await output.changes.until(lambda: output.text.count("Application startup complete") >= 2 or output.closed,
                                   timeout=60, what=lambda: f"two workers to start:\n{output.text[-3000:]}")
        assert output.text.count("Application startup complete") >= 2, output.text[-3000:]
        assert not stale.exists(), "the dead process's file is still there"
        sent = 0

        async def both_workers_served() -> bool:
            nonlocal sent
            # A connection of its own per request: the kernel hands each to whichever worker accepts first.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                assert (await fresh.get("/healthz")).status_code == 200
            sent += 1
            return sum(1 for count in _healthz_by_pid(directory).values() if count > 0) >= 2

        await eventually(both_workers_served, timeout=60, what="requests served by both workers")
        counts = _healthz_by_pid(directory)
        assert sum(counts.values()) == sent, counts
        for _ in range(6):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                answer = await scrape(fresh)
            assert answer.value(HTTP, route="/healthz", method="GET", status="200") == sent, counts
            assert answer.value("budgetbridge_database_up") == 1
    finally:
        await terminate(process)
        await output.close()


def _healthz_by_pid(directory: Path) -> dict[int, float]:
    """Each process's own count of answered /healthz requests, from its file in the metrics directory."""
    counts: dict[int, float] = {}
    for path in directory.glob("histogram_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name == HTTP and sample.labels.get("route") == "/healthz":
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts
