"""OpenTelemetry tracing, through an in-memory exporter: a span per HTTP request, per GraphQL operation (named
by the semantic conventions, with the SQL it ran inside), per export job and per ERP connector call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app import tracing
from app.export_worker import ExportWorker
from app.main import create_app
from app.settings import SettingsError
from persistence.database import Database
from tests.e2e.conftest import GENEROUS_RATE_LIMITS
from tests.erp.workflow import accept, add_line, lock_and_send
from tests.live_server import live_server, reap_runtime, server_settings_for
from tests.support import JWT_SECRET, Tenant
from tests.ws_support import initialise, raw_socket, receive, subscribe


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


@pytest.fixture
async def traced_client(spans: InMemorySpanExporter, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app built while tracing is on (the middleware and the engine's instrumentation are set up then)."""
    from app.settings import Settings

    application = create_app(Settings(database_url=db.url, jwt_secret=JWT_SECRET, **GENEROUS_RATE_LIMITS),
                             run_worker=False)
    try:
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield http
    finally:
        await reap_runtime(getattr(application.state, "runtime", None), "the traced app")


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def children(spans: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    parent_id = parent.context.span_id
    return [s for s in spans.get_finished_spans() if s.parent is not None and s.parent.span_id == parent_id]


async def test_a_graphql_request_has_a_server_span_an_operation_span_and_its_sql_inside(
    traced_client: httpx.AsyncClient, tenant: Tenant, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    response = await traced_client.post("/graphql", json={"query": "query Me { viewer { id name } }"},
                                        headers={"authorization": f"Bearer {tenant.token('reader')}"})
    assert response.status_code == 200, response.text

    (operation,) = named(spans, "query Me")
    attributes = dict(operation.attributes or {})
    assert attributes["graphql.operation.name"] == "Me" and attributes["graphql.operation.type"] == "query"
    assert attributes["budgetbridge.outcome"] == "ok"
    assert attributes["budgetbridge.request_id"] == response.headers["x-request-id"]
    assert attributes["enduser.id"] == tenant.users["reader"]
    assert operation.status.status_code is not StatusCode.ERROR

    (server,) = [s for s in spans.get_finished_spans() if s.name.startswith("POST")]
    assert operation.parent is not None and server.context is not None
    assert operation.parent.span_id == server.context.span_id
    sql = [s for s in children(spans, operation) if "db.system" in (s.attributes or {})
           or "db.system.name" in (s.attributes or {})]
    assert sql, [s.name for s in spans.get_finished_spans()]  # the viewer's user row, read inside the operation


async def test_a_failed_operation_is_an_error_span_with_its_code(
    traced_client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    await traced_client.post("/graphql", json={"query": "query Anonymous { viewer { id } }"})
    (operation,) = named(spans, "operation")  # refused before the document was read
    assert dict(operation.attributes or {})["budgetbridge.outcome"] == "UNAUTHENTICATED"
    assert operation.status.status_code is StatusCode.ERROR


async def test_probes_are_not_traced(traced_client: httpx.AsyncClient, spans: InMemorySpanExporter) -> None:
    spans.clear()
    assert (await traced_client.get("/healthz")).status_code == 200
    assert spans.get_finished_spans() == ()


async def test_an_export_job_has_a_span_with_the_connector_call_inside(
    tenant: Tenant, spans: InMemorySpanExporter
) -> None:
    await add_line(tenant, "03-300", "L", "1200.00")
    request_id = await lock_and_send(tenant)
    await accept(tenant, request_id)
    spans.clear()
    worker = ExportWorker(tenant.services, poll_seconds=0.05, timeout_seconds=5, company_id=tenant.company_id)
    assert await worker.run_once() == 1

    (job,) = named(spans, "export job")
    attributes = dict(job.attributes or {})
    assert attributes["budgetbridge.erp_request.id"] == request_id
    assert attributes["budgetbridge.export.attempt"] == 1
    assert attributes["budgetbridge.outcome"] == "AWAITING_POSTING"
    (call,) = named(spans, "erp export")
    assert dict(call.attributes or {})["budgetbridge.erp.connector"] == "embedded"
    assert call in children(spans, job)


def test_tracing_is_on_only_when_the_standard_variables_ask() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"})


async def test_a_websocket_operation_has_a_span_of_its_own(
    db: Database, tenant: Tenant, spans: InMemorySpanExporter
) -> None:
    async with live_server(server_settings_for(db.url)) as server, raw_socket(server.ws_url) as ws:
        await initialise(ws, tenant.token("reader"))
        await subscribe(ws, "q", "query Me { viewer { id } }")
        assert (await receive(ws))["payload"]["data"]["viewer"]["id"] == tenant.users["reader"]
        assert (await receive(ws))["type"] == "complete"
    (operation,) = named(spans, "query Me")
    attributes = dict(operation.attributes or {})
    assert str(attributes["budgetbridge.request_id"]).endswith(".1") and attributes["budgetbridge.outcome"] == "ok"
    assert operation.parent is None  # WebSocket frames are not traced; each operation is a trace of its own


def test_an_exporter_we_do_not_ship_stops_the_start_with_one_line() -> None:
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER: 'zipkin' is not otlp, console or none"):
        tracing.setup_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert not tracing.enabled()
