"""One access line and one trace span per GraphQL operation, over HTTP and WebSocket alike.

The line says who (user, company: app.logs fills them in), what (operation type and name, once the document
is parsed), how it ended and how long it took:

    graphql mutation SendBudget -> user_error in 41.2 ms   (outcome: ok, user_error or the error's code)

The outcome is read from what the client is sent (`note_body`): the first error's `extensions.code`, else
`user_error` when a mutation answered `userErrors`, else `ok`. The same place puts the request id into
`extensions.requestId` of every error, so a client quoting an error names the request in the log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from strawberry.extensions import SchemaExtension

from app import tracing
from app.logs import LogScope, current

if TYPE_CHECKING:
    from resolvers.context import Viewer

log = logging.getLogger("budgetbridge.access")

OK = "ok"
USER_ERROR = "user_error"
MAX_NAME = 100  # an operation name is the client's text: a bounded amount of it is logged
# An error without a code is graphql-core's own: mostly validation (as schema.build.ReportErrors logs it).
UNKNOWN_ERROR = "GRAPHQL_VALIDATION_FAILED"


def outcome_of(body: Mapping[str, Any]) -> str:
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        code = (first.get("extensions") or {}).get("code") if isinstance(first, dict) else None
        return str(code) if code else UNKNOWN_ERROR
    data = body.get("data")
    if isinstance(data, dict) and any(isinstance(v, dict) and v.get("userErrors") for v in data.values()):
        return USER_ERROR
    return OK


def _with_request_id(error: Any, request_id: str) -> Any:
    if not isinstance(error, dict):
        return error
    return {**error, "extensions": {**(error.get("extensions") or {}), "requestId": request_id}}


def note_body(body: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL response body (or a WebSocket payload) about to be sent: its errors with the request id,
    and its outcome noted for the access line."""
    scope = current()
    if scope is None:
        return body
    scope.note_outcome(outcome_of(body))
    errors = body.get("errors")
    if not errors:
        return body
    tagged = (
        [_with_request_id(e, scope.request_id) for e in errors]
        if isinstance(errors, list)
        else _with_request_id(errors, scope.request_id)
    )
    return {**body, "errors": tagged}


def note_ws_message(message: Any) -> Any:
    """A graphql-transport-ws or graphql-ws message about to be sent, treated like a body (errors tagged,
    outcome noted); other messages pass unchanged."""
    if not isinstance(message, dict):
        return message
    kind, payload = message.get("type"), message.get("payload")
    if kind == "error" and payload is not None:  # a list of errors (transport-ws) or one error (graphql-ws)
        return {**message, "payload": note_body({"errors": payload})["errors"]}
    if kind in ("next", "data") and isinstance(payload, dict):
        return {**message, "payload": note_body(payload)}
    return message


def note_viewer(viewer: Viewer | None) -> None:
    scope = current()
    if scope is not None and viewer is not None:
        scope.user_id = viewer.actor.user_id
        scope.company_id = viewer.actor.company_id


class NoteOperation(SchemaExtension):
    """Tells the access line the operation's name and type once the document is parsed."""

    def on_validate(self) -> Iterator[None]:
        scope = current()
        if scope is not None:
            execution = self.execution_context
            name = execution.operation_name
            scope.operation = name[:MAX_NAME] if name else scope.operation
            with contextlib.suppress(RuntimeError):  # no operation to run (the document says which error)
                scope.operation_type = execution.operation_type.value
        yield


def observe_schema(schema: Any) -> None:
    """Add NoteOperation to the served schema, once (the schema is built without knowing the web edge)."""
    if NoteOperation not in schema.extensions:
        schema.extensions = (*schema.extensions, NoteOperation)


@contextmanager
def observed(scope: LogScope, transport: str) -> Iterator[LogScope]:
    """Around one operation: a span, then the access line, however it ends."""
    started = time.perf_counter()
    try:
        with traced(scope):
            yield scope
    finally:
        finish(scope, transport, started)


@contextmanager
def traced(scope: LogScope) -> Iterator[None]:
    """The operation's span, named and annotated once the operation is known (semantic conventions:
    `<type> <name>`, graphql.operation.*)."""
    with tracing.span("GraphQL Operation", {"budgetbridge.request_id": scope.request_id}) as span:
        try:
            yield
        except Exception:
            scope.note_outcome("INTERNAL_SERVER_ERROR")
            raise
        finally:
            kind = scope.operation_type or "operation"
            outcome = scope.outcome or OK
            span.rename(f"{kind} {scope.operation}" if scope.operation else kind)
            span.set("graphql.operation.type", scope.operation_type)
            span.set("graphql.operation.name", scope.operation)
            span.set("budgetbridge.outcome", outcome)
            span.set("enduser.id", scope.user_id)
            if outcome not in (OK, USER_ERROR):
                span.fail(outcome)


def finish(scope: LogScope, transport: str, started: float) -> None:
    """The operation's access line (once)."""
    if scope.logged:
        return
    scope.logged = True
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    outcome = scope.outcome or OK
    log.info(
        "graphql %s %s -> %s in %.1f ms",
        scope.operation_type or "operation", scope.operation or "(anonymous)", outcome, duration_ms,
        extra={
            "operation_type": scope.operation_type,
            "outcome": outcome,
            "duration_ms": duration_ms,
            "transport": transport,
        },
    )
