"""Prometheus metrics: what is recorded where, and `/metrics` that exposes them.

Every process records into prometheus-client's metrics. Under `budgetbridge serve --workers N` each worker
is a process of its own, so the library's multiprocess mode is used: with PROMETHEUS_MULTIPROC_DIR set (serve
sets one up for its children, see `prepare_multiprocess_dir`), each process writes its values to files there
and whichever worker answers a scrape adds up every process's files. The library reads that variable when it
is first imported, so it must be in the environment before the worker processes start.

Three kinds of values:
- counters and histograms recorded where things happen (HTTP requests, GraphQL operations and their errors,
  export attempts and connector calls, notification deliveries, the event tail's lag);
- gauges of what is open in each process (WebSockets, subscriptions, database connections in use), kept
  with inc/dec and summed over the live processes;
- the export queue and notification outbox, read from the database at scrape time
  (persistence.pipeline_stats): shared state, the same whichever process answers.

Label values are bounded: routes are the app's route templates, operation names are capped per process
(`BoundedNames`), error codes are the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hmac
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("budgetbridge.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_DATABASE_TIMEOUT = 2.0  # a scrape answers even when the database does not (database_up 0)

if os.environ.get(MULTIPROC_ENV):
    # The library writes into it from the first metric below on: a missing directory would stop the import.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

# --- what is recorded --------------------------------------------------------------------------------------

HTTP_SECONDS = Histogram(
    "budgetbridge_http_request_duration_seconds",
    "HTTP requests by route template, method and status code",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GRAPHQL_SECONDS = Histogram(
    "budgetbridge_graphql_operation_duration_seconds",
    "GraphQL operations over HTTP (parse, validation and execution) by operation name, type and outcome "
    "(ok, refused: a mutation answered userErrors, error: errors beside data, invalid: refused before execution)",
    ["operation", "type", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GRAPHQL_ERRORS = Counter(
    "budgetbridge_graphql_errors",
    "GraphQL errors by extensions.code; kind is error (top-level, the edge's refusals included) or user_error",
    ["code", "kind"],
)
RESPONSE_CACHE = Counter(
    "budgetbridge_response_cache",
    "Cacheable queries by outcome (hit: served from this process's cache, not_modified: 304, miss: executed, "
    "stored: kept after a miss, too_large: over the byte budget)",
    ["outcome"],
)
EXPORT_ATTEMPTS = Counter(
    "budgetbridge_export_attempts",
    "Export attempts by connector and outcome (success, retry: requeued with backoff, failed: EXPORT_FAILED)",
    ["connector", "outcome"],
)
CONNECTOR_SECONDS = Histogram(
    "budgetbridge_connector_call_duration_seconds",
    "ERP connector calls (export, posted) by connector and outcome (ok, error, timeout)",
    ["connector", "call", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
NOTIFICATIONS = Counter(
    "budgetbridge_notification_deliveries",
    "Notification delivery attempts by channel and outcome (sent, retry, failed)",
    ["channel", "outcome"],
)
EVENT_TAIL_LAG = Histogram(
    "budgetbridge_event_tail_lag_seconds",
    "From an event's commit until this process's live event tail read it, while subscribers follow the tail",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
WEBSOCKETS_OPEN = Gauge(
    "budgetbridge_websockets_open", "Accepted WebSocket connections now open", multiprocess_mode="livesum"
)
SUBSCRIPTIONS_OPEN = Gauge(
    "budgetbridge_subscriptions_open", "Live GraphQL subscriptions now open", multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "budgetbridge_db_pool_connections_in_use",
    "Database connections checked out of the pools now (each process: at most 10 + 20 overflow on PostgreSQL)",
    multiprocess_mode="livesum",
)



def _start_at_zero() -> None:
    """The series alerts watch exist from the start with 0: Prometheus's increase() cannot see a counter's
    first increment when the series is born with it (the first failed export after a restart would not alert)."""
    from erp.registry import CONNECTORS

    for connector in CONNECTORS:
        for outcome in ("success", "retry", "failed"):
            EXPORT_ATTEMPTS.labels(connector, outcome)
    for channel in ("email", "chat"):
        for outcome in ("sent", "retry", "failed"):
            NOTIFICATIONS.labels(channel, outcome)
    GRAPHQL_ERRORS.labels("INTERNAL_SERVER_ERROR", "error")


_start_at_zero()


class BoundedNames:
    """Label values chosen by clients (operation names), capped: the first `limit` distinct well-formed names
    a process sees keep their own series, later ones and malformed ones are `other`."""

    NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self._known:
            return name
        if self.NAME.fullmatch(name) is None or len(self._known) >= self.limit:
            return "other"
        self._known.add(name)
        return name


OPERATION_NAMES = BoundedNames()
ERROR_CODES = BoundedNames(limit=200)  # the server's own codes: bounded anyway, capped for safety
_OPERATION = re.compile(r"\b(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?")


def describe_operation(document: str, operation_name: str | None) -> tuple[str, str]:
    """(name, type) of the operation a document runs, cheaply, without parsing it: the named operation's
    keyword, or the document's first operation (`{ ... }` alone is an anonymous query)."""
    for match in _OPERATION.finditer(document[:20_000]):
        if operation_name is None or match.group(2) == operation_name:
            return OPERATION_NAMES.label(match.group(2)), match.group(1)
    if operation_name is not None:  # not in the document (GraphQL refuses it): not a name worth a series
        return "other", "query"
    return "anonymous", "query"


def record_operation(operation_name: Any, document: str, result: Any, seconds: float) -> None:
    """A GraphQL operation over HTTP has run (strawberry's ExecutionResult)."""
    name, kind = describe_operation(document, operation_name if isinstance(operation_name, str) else None)
    errors = list(result.errors or [])
    user_codes = list(_user_error_codes(result.data))
    if result.data is None and errors:
        outcome = "invalid"
    elif errors:
        outcome = "error"
    elif user_codes:
        outcome = "refused"
    else:
        outcome = "ok"
    GRAPHQL_SECONDS.labels(name, kind, outcome).observe(seconds)
    for error in errors:
        record_error_code((error.extensions or {}).get("code"))
    for code in user_codes:
        GRAPHQL_ERRORS.labels(ERROR_CODES.label(code), "user_error").inc()


def record_response_cache(outcome: str) -> None:
    """A cacheable query was looked up in, or stored to, the response cache (app.response_cache)."""
    RESPONSE_CACHE.labels(outcome).inc()


def record_cached_operation(operation_name: Any, document: str, seconds: float) -> None:
    """A query answered from the response cache (or 304): an operation like any other, and a complete one."""
    name, kind = describe_operation(document, operation_name if isinstance(operation_name, str) else None)
    GRAPHQL_SECONDS.labels(name, kind, "ok").observe(seconds)


def record_error_code(code: object) -> None:
    """A top-level GraphQL error (also the edge's refusals: UNAUTHENTICATED, RATE_LIMITED, ...)."""
    label = ERROR_CODES.label(code) if isinstance(code, str) else "NONE"
    GRAPHQL_ERRORS.labels(label, "error").inc()


def _user_error_codes(data: Any) -> Iterator[str]:
    if not isinstance(data, dict):
        return
    for payload in data.values():
        if isinstance(payload, dict) and isinstance(payload.get("userErrors"), list):
            for error in payload["userErrors"]:
                code = error.get("code") if isinstance(error, dict) else None
                yield str(getattr(code, "value", code))


@contextlib.contextmanager
def connector_call(connector: str | None, call: str) -> Iterator[None]:
    """Time one call of an ERP connector (inside its timeout: a cancellation is the timeout firing)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except asyncio.CancelledError:
        outcome = "timeout"
        raise
    finally:
        CONNECTOR_SECONDS.labels(connector or "none", call, outcome).observe(time.perf_counter() - started)


def record_export_attempt(connector: str | None, status: object, *, succeeded: bool) -> None:
    """After the worker recorded an attempt's outcome (`status`: the request's new status, if it changed)."""
    failed = getattr(status, "value", status) == "EXPORT_FAILED"
    outcome = "success" if succeeded else ("failed" if failed else "retry")
    EXPORT_ATTEMPTS.labels(connector or "none", outcome).inc()


def record_delivery(channel: str, status: object) -> None:
    """A notification attempt's outcome: SENT, PENDING (to retry) or FAILED."""
    value = getattr(status, "value", status)
    outcome = {"SENT": "sent", "PENDING": "retry", "FAILED": "failed"}.get(str(value))
    if outcome is not None:
        NOTIFICATIONS.labels(channel.lower(), outcome).inc()


@contextlib.contextmanager
def tracking(gauge: Gauge) -> Iterator[None]:
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def watch_pool(engine: Any) -> None:
    """Count the engine's checked-out connections (SQLAlchemy pool events; an invalidated one checks in too)."""
    from sqlalchemy import event

    event.listen(engine.sync_engine, "checkout", lambda *_: DB_POOL_IN_USE.inc())
    event.listen(engine.sync_engine, "checkin", lambda *_: DB_POOL_IN_USE.dec())


class EventTailLag:
    """Stands between the live event tail (resolvers.event_tail) and the read store, and records how long
    after its commit each event was read. Only while the tail is being followed: a company's tail read again
    after a quiet spell with nobody subscribed would report hours that no subscriber waited."""

    def __init__(self, reads: Any, *, followed_within: float) -> None:
        self._reads = reads
        self._followed_within = followed_within
        self._last_read: dict[str, float] = {}

    async def latest_sequence(self, company_id: str) -> int:
        sequence: int = await self._reads.latest_sequence(company_id)
        self._last_read[company_id] = time.monotonic()
        return sequence

    async def company_events_after(self, company_id: str, after: int, *, limit: int) -> list[Any]:
        events: list[Any] = await self._reads.company_events_after(company_id, after, limit=limit)
        now, followed = time.monotonic(), self._last_read.get(company_id)
        self._last_read[company_id] = now
        if len(self._last_read) > 10_000:  # companies come and go; forget them all rather than grow
            self._last_read = {company_id: now}
        if followed is not None and now - followed <= self._followed_within:
            wall = datetime.now(UTC)
            for event in events:
                EVENT_TAIL_LAG.observe(max(0.0, (wall - event.occurred_at).total_seconds()))
        return events

    async def relations_of_events(self, events: Sequence[Any]) -> Any:
        return await self._reads.relations_of_events(events)


class HttpMetricsMiddleware:
    """Times every HTTP request by route template and status, and counts open WebSockets (pure ASGI, so
    streaming responses and WebSockets pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any answer: the server answers 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            method = scope.get("method", "GET")
            HTTP_SECONDS.labels(
                _route(scope), method if method in ("GET", "POST", "HEAD") else "other", str(status)
            ).observe(time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def watching_send(message: Message) -> None:
            nonlocal accepted
            await send(message)
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                WEBSOCKETS_OPEN.inc()

        try:
            await self.app(scope, receive, watching_send)
        finally:
            if accepted:
                WEBSOCKETS_OPEN.dec()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


# --- multiprocess mode -------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(workers: int) -> str | None:
    """Before `serve` starts its worker processes. With PROMETHEUS_MULTIPROC_DIR set (the operator's choice,
    e.g. a directory `budgetbridge worker` shares): create it and delete what dead processes left there, so
    a restart starts from zero while a running `budgetbridge worker`'s files stay. Unset and several
    workers: a fresh directory of our own, named in the environment the workers inherit."""
    path = multiprocess_dir()
    if path is None:
        if workers <= 1:
            return None  # one process: plain in-memory metrics
        import tempfile

        path = tempfile.mkdtemp(prefix="budgetbridge-metrics-")
        os.environ[MULTIPROC_ENV] = path
        return path
    os.makedirs(path, exist_ok=True)
    for pid, files in _files_by_pid(path).items():
        if not _alive(pid):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)
    return path


def remove_own_dir(path: str | None) -> None:
    """After serve stopped: the directory it made for itself goes (one the operator named stays)."""
    if path is not None and os.path.basename(path).startswith("budgetbridge-metrics-"):
        shutil.rmtree(path, ignore_errors=True)


def _files_by_pid(path: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for name in glob.glob(os.path.join(path, "*.db")):
        stem = os.path.basename(name)[: -len(".db")]
        pid = stem.rpartition("_")[2]
        if pid.isdigit():
            found.setdefault(int(pid), []).append(name)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _forget_dead_gauges(path: str) -> None:
    """The open-things gauges of a worker that died (uvicorn restarts it under a new pid) stop counting."""
    for pid in _files_by_pid(path):
        if not _alive(pid):
            mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


# --- the scrape --------------------------------------------------------------------------------------------


class _StatsCollector:
    """The database's share of a scrape (read before rendering: collectors cannot await)."""

    def __init__(self, stats: Any | None) -> None:
        self.stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("budgetbridge_database_up", "Whether this scrape could read the database (1) or not")
        up.add_metric([], 0.0 if self.stats is None else 1.0)
        yield up
        stats = self.stats
        if stats is None:
            return
        jobs = GaugeMetricFamily(
            "budgetbridge_export_jobs", "Export jobs in flight by state (QUEUED, RUNNING, AWAITING_CALLBACK)",
            labels=["state"],
        )
        for state, count in sorted(stats.jobs_by_state.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "budgetbridge_export_oldest_due_job_age_seconds",
            "How long the longest-waiting due export job has been due (0: none waits)",
            value=stats.oldest_due_job_seconds,
        )
        outbox = GaugeMetricFamily(
            "budgetbridge_notification_outbox_depth", "Notifications not delivered yet by status (PENDING, SENDING)",
            labels=["status"],
        )
        for status, count in sorted(stats.outbox_by_status.items()):
            outbox.add_metric([status], count)
        yield outbox
        yield GaugeMetricFamily(
            "budgetbridge_notification_oldest_due_age_seconds",
            "How long the longest-waiting due notification has been due (0: none waits)",
            value=stats.oldest_due_notification_seconds,
        )


async def _read_stats(db: Any) -> Any | None:
    from persistence.pipeline_stats import read_pipeline_stats

    try:
        async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT), db.read() as conn:
            return await read_pipeline_stats(conn, datetime.now(UTC))
    except Exception as exc:  # the scrape still shows everything else, and database_up 0
        log.warning("metrics: the database could not be read: %r", exc)
        return None


def render(stats: Any | None) -> bytes:
    path = multiprocess_dir()
    if path is None:
        recorded = generate_latest(REGISTRY)
    else:
        _forget_dead_gauges(path)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        recorded = generate_latest(registry)
    database = CollectorRegistry(auto_describe=False)
    database.register(_StatsCollector(stats))
    return recorded + generate_latest(database)


def authorized(request: Request, token: str | None) -> bool:
    if not token:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


async def metrics_endpoint(request: Request) -> Response:
    runtime = request.app.state.runtime
    if not authorized(request, runtime.settings.metrics_token):
        return Response(
            "a valid bearer token is required (BUDGETBRIDGE_METRICS_TOKEN)\n", status_code=401,
            media_type="text/plain", headers={"www-authenticate": 'Bearer realm="metrics"'},
        )
    return Response(render(await _read_stats(runtime.db)), media_type=CONTENT_TYPE_LATEST)
