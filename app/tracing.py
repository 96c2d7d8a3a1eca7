"""OpenTelemetry tracing, optional: off unless the standard OTEL_* variables ask for it (and the `[otel]`
extra is installed), so a plain install imports no OpenTelemetry at all.

On, it traces HTTP requests (ASGI instrumentation; WebSockets are traced per operation instead of per
frame), SQL statements (SQLAlchemy instrumentation), and a span of our own for each GraphQL operation
(app.operations), export job and ERP connector call (app.export_worker), exported over OTLP (or printed, with
OTEL_TRACES_EXPORTER=console). The exporter reads its own settings (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, ...).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("budgetbridge.tracing")

# Set any of these (and OTEL_TRACES_EXPORTER is not `none`) and tracing is on.
TRIGGERS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER")
UNTRACED_PATHS = "/healthz,/readyz,/metrics"
INSTRUMENTATION = "budgetbridge"


@dataclass
class _Tracing:
    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    tracer: Any  # opentelemetry.trace.Tracer


_active: _Tracing | None = None


def wanted(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in TRIGGERS)


def setup_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on when the environment asks for it (once per process); whether it is on."""
    if _active is not None or not wanted(env):
        return _active is not None
    env = os.environ if env is None else env
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise SettingsError(
            "OTEL_* tracing variables are set but OpenTelemetry is not installed: pip install 'budgetbridge[otel]'"
        ) from None
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise SettingsError(f"OTEL_TRACES_EXPORTER: {exporter_name!r} is not otlp, console or none")
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "budgetbridge"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # so other instrumented libraries join the same traces
    enable(provider)
    log.info("tracing on: %s exporter", exporter_name)
    return True


def enable(provider: Any) -> None:
    """Trace through `provider` (a TracerProvider); tests hand in one with an in-memory exporter."""
    global _active
    _active = _Tracing(provider=provider, tracer=provider.get_tracer(INSTRUMENTATION))


def disable() -> None:
    """Stop tracing (tests): the SQLAlchemy instrumentation is removed too."""
    global _active
    if _active is None:
        return
    _active = None
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def enabled() -> bool:
    return _active is not None


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace this engine's statements. The instrumentation is one per process, so it moves to the newest
    engine (a process serves from one database; `serve` checks the database with another before starting)."""
    if _active is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # No SQL comments: statements stay as written (and cacheable); the span has the statement text. The
    # instrumentation declares SQLAlchemy < 2.1 although it works with 2.1 (tests/ops/test_tracing.py).
    instrumentor.instrument(
        engine=engine.sync_engine, tracer_provider=_active.provider, enable_commenter=False, skip_dep_check=True
    )


def asgi_middleware(app: ASGIApp) -> ASGIApp:
    """The ASGI instrumentation for HTTP (a span per request, none for probes); WebSockets pass by, their
    operations have spans of their own (a span per frame of a long subscription would say nothing)."""
    if _active is None:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    traced = OpenTelemetryMiddleware(
        app, excluded_urls=UNTRACED_PATHS, tracer_provider=_active.provider, exclude_spans=["receive", "send"]
    )

    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await traced(scope, receive, send)
        else:
            await app(scope, receive, send)

    return http_only


class Span:
    """A span of ours, or nothing when tracing is off (the same calls either way)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, key: str, value: str | int | float | bool | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        if self._span is not None:
            self._span.update_name(name)

    def fail(self, description: str) -> None:
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, description))


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, object] | None = None) -> Iterator[Span]:
    """A span around the block, child of the current one; an exception escaping it is recorded on it."""
    if _active is None:
        yield Span()
        return
    present = {k: v for k, v in (attributes or {}).items() if isinstance(v, str | int | float | bool)}
    with _active.tracer.start_as_current_span(name, attributes=present) as current:
        yield Span(current)
