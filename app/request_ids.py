"""Request ids: every HTTP request and WebSocket connection gets one, so a client, a proxy and the operator
can name the same request.

An incoming `X-Request-ID` (from a proxy or the client) is kept when it is 1-128 characters of
`[A-Za-z0-9._:-]`; anything else is replaced by a new id, never echoed (a header is no place for a client's
arbitrary bytes). The id is echoed in the response's `X-Request-ID` (on the WebSocket upgrade too), carried
in every log line of the request (app.logs) and in `extensions.requestId` of every GraphQL error. Each
operation a WebSocket subscribes gets an id of its own, derived from the connection's (`<id>.<n>`).

The middleware is pure ASGI (Starlette's BaseHTTPMiddleware would buffer streaming responses and does
not see WebSockets). It also writes the access line of requests that are not GraphQL operations (those log
their own, app.operations), at DEBUG for the health and metrics probes.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import LogScope, scoped

HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

log = logging.getLogger("budgetbridge.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(value: str | None) -> str:
    """The incoming id if it is acceptable, else a new one."""
    if value is not None and _VALID.fullmatch(value):
        return value
    return new_request_id()


def derived_request_id(parent: str, number: int) -> str:
    """The id of the `number`-th operation on the connection whose id is `parent`."""
    return f"{parent}.{number}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(_header(scope, HEADER.encode()))
        log_scope = LogScope(request_id=request_id)
        echoed = (HEADER.encode(), request_id.encode())
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", []), echoed]}
                status = message.get("status", 101)
            elif message["type"] == "websocket.close" and status is None:
                status = 403  # closed before accept: the server refuses the upgrade
            await send(message)

        started = time.perf_counter()
        with scoped(log_scope):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if not log_scope.logged:
                    self._access_line(scope, status, started)

    @staticmethod
    def _access_line(scope: Scope, status: int | None, started: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in PROBES else logging.INFO
        if not log.isEnabledFor(level):
            return
        method = scope.get("method", "WEBSOCKET")
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log.log(
            level,
            "%s %s %s in %.1f ms", method, path, status if status is not None else "-", duration_ms,
            extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
        )
