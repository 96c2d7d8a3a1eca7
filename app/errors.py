"""Errors at the HTTP edge: GraphQL-shaped error bodies for refusals that happen before (or instead of)
GraphQL execution, and which exceptions mean "the database cannot be reached now".

Every GraphQL-shaped body leaves through `json_response`: its errors get `extensions.requestId` and its
outcome goes to the access line (app.operations)."""

from __future__ import annotations

import asyncio
import errno
import socket
import uuid
from collections.abc import Mapping

import orjson
from starlette.responses import Response

from app.metrics import record_error_code
from app.operations import note_body

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# Top-level extensions.code values of refusals at the edge (see the README, "Security").
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
RATE_LIMITED = "RATE_LIMITED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
PERSISTED_QUERY_REQUIRED = "PERSISTED_QUERY_REQUIRED"
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
UNAUTHENTICATED = "UNAUTHENTICATED"
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


def new_error_id() -> str:
    """What a client quotes and an operator greps the log for."""
    return uuid.uuid4().hex[:16]


def error_body(message: str, code: str, **extensions: object) -> dict[str, object]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def json_response(
    body: dict[str, object], status: int, media_type: str = JSON, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(note_body(body)),
        status_code=status,
        media_type=f"{media_type}; charset=utf-8",
        headers=dict(headers or {}),
    )


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    media_type: str = JSON,
    headers: Mapping[str, str] | None = None,
    **extensions: object,
) -> Response:
    record_error_code(code)
    return json_response(error_body(message, code, **extensions), status, media_type, headers)


def _sqlalchemy_outage_types() -> tuple[type[BaseException], ...]:
    from sqlalchemy import exc

    # Not OperationalError as such: on SQLite it also means a bad statement; its driver error decides.
    return (exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)


def _asyncpg_outage_types() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.InterfaceError,
    )


_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    socket.gaierror,  # the database's host name does not resolve
    TimeoutError,
    asyncio.TimeoutError,
    *_sqlalchemy_outage_types(),
    *_asyncpg_outage_types(),
)
# A plain OSError is an outage only when it is about reaching a host (asyncpg raises one for several
# addresses: "Multiple exceptions: [Errno 111] Connect call failed ..."), not, say, a file's permissions.
_OUTAGE_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}
# SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown, cannot connect now).
_OUTAGE_SQLSTATES = ("08", "57P")


def is_database_outage(error: BaseException) -> bool:
    """Whether an exception (or what caused it) says the database cannot be reached now, rather than that
    a statement is wrong: such failures answer HTTP 503 with Retry-After, and the pool reconnects by
    itself (pre-ping) once the database is back."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
            return True
        if isinstance(current, _OUTAGE_TYPES):
            return True
        if isinstance(current, OSError) and (
            current.errno in _OUTAGE_ERRNOS or "Connect call failed" in str(current)
        ):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False
