"""Logging for `serve`, `worker` and the CLI, configured once here: human-readable text (the default) or one
JSON object per line (`BUDGETBRIDGE_LOG_FORMAT=json`), at `BUDGETBRIDGE_LOG_LEVEL`.

Every line carries what is known about the request it belongs to, without the code that logs passing it
along: the request edge (app.request_ids) opens a `LogScope` in a context variable, the GraphQL edge fills
in the user, company and operation, and a filter on the handler copies them onto each record. Asyncio tasks
copy context variables when they are created, so a WebSocket operation's task keeps its own scope.

What a line may hold at INFO: ids, names, codes, counts and durations; never query text, variables,
tokens or secrets (those appear, if at all, at DEBUG).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# The request's fields, in the order a line shows them; None is left out.
SCOPE_FIELDS = ("request_id", "user_id", "company_id", "operation")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is part of the line.
# (uvicorn adds `color_message`: its message with terminal colours.)
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"
}


@dataclass
class LogScope:
    """What is known about the request (or WebSocket operation) being served; mutable, because what is
    known grows as the request is handled (the user once the token is checked, the operation once parsed)."""

    request_id: str
    user_id: str | None = None
    company_id: str | None = None
    operation: str | None = None
    operation_type: str | None = None
    outcome: str | None = None  # "ok", "user_error" or an error code; the first failure wins
    logged: bool = False  # an operation's access line was written for this request

    def note_outcome(self, outcome: str) -> None:
        if self.outcome in (None, "ok") or (self.outcome == "user_error" and outcome not in ("ok", "user_error")):
            self.outcome = outcome


_scope: ContextVar[LogScope | None] = ContextVar("budgetbridge_log_scope", default=None)


def current() -> LogScope | None:
    return _scope.get()


@contextlib.contextmanager
def scoped(scope: LogScope) -> Iterator[LogScope]:
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


class _ScopeFilter(logging.Filter):
    """Copies the current scope's fields onto each record (an explicit `extra=` value wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get()
        for name in SCOPE_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(scope, name) if scope is not None else None)
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request fields and the `extra=` fields of a record, in a stable order, without empty ones."""
    fields = {name: getattr(record, name, None) for name in SCOPE_FIELDS}
    fields.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and k not in fields)
    return {k: v for k, v in fields.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, then the request's fields
    and the line's own (duration_ms, outcome, job ids, ...), and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [key=value ...]`, then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _fields(record)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so configuring again replaces it instead of adding a second one."""


def configure(log_format: str = "text", level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records (ours, uvicorn's, alembic's) through one handler on the root logger."""
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ScopeFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic narrates each migration step at INFO ("Context impl SQLiteImpl.", per connection): only at DEBUG.
    logging.getLogger("alembic").setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    # uvicorn's loggers send to the root (its own log config is not installed; see app.cli), except its access
    # log: app.request_ids and app.operations write the access lines, with the request id and the operation.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    return handler
