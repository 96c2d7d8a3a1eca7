"""A tiny integrator for the webhook tests: a real Starlette app served by uvicorn on a free loopback port,
in the test's event loop. It records every request it receives and answers with what the test configured
(status code, JSON or raw body, delay), signed with `secret` when one is set (as docs/webhook.md asks for
an answer whose messages should be shown)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from erp.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.live_server import bound_socket, serving
from tests.waiting import Changes

__all__ = ["NO_BODY", "Integrator", "Received", "Reply", "bound_socket", "running_integrator"]

NO_BODY = object()


@dataclass(frozen=True)
class Reply:
    """One answer. `json` is serialised; `body` is sent as is; neither means an empty body."""

    status: int = 200
    json: Any = NO_BODY
    body: bytes | None = None
    delay: float = 0.0
    signed: bool = True  # signed when the integrator has a secret; False: this answer is not

    def content(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.json is NO_BODY:
            return b""
        return orjson.dumps(self.json)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def event(self) -> str | None:
        return self.headers.get("x-budgetbridge-event")

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get("x-budgetbridge-delivery")


@dataclass
class Integrator:
    """The integrator's side. Replies come from `queue` first (in order), then from `defaults[event]`,
    then from `default`."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    queue: deque[Reply] = field(default_factory=deque)
    defaults: dict[str, Reply] = field(default_factory=dict)
    default: Reply = field(default_factory=lambda: Reply(200, {"status": "success", "erpReference": "ERP-1"}))
    secret: str | None = None  # sign every answer with it (X-BudgetBridge-Timestamp / -Signature)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _changes: Changes = field(default_factory=Changes)  # notified on every request received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/budgetbridge/hook"

    @property
    def options(self) -> dict[str, Any]:
        """The webhook options that reach this integrator: on loopback, so the private network is allowed."""
        return {"url": self.url, "allow_private_network": True}

    def reply(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def release(self) -> None:
        """Wake every delayed reply now (used at shutdown so no handler outlives the server)."""
        self._release.set()

    async def wait_for_requests(self, count: int, *, timeout: float = 5.0) -> list[Received]:
        await self._changes.until(lambda: len(self.received) >= count, timeout=timeout,
                                  what=lambda: f"{count} requests to the integrator (got {len(self.received)})")
        return self.received

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        received = Received(method=request.method, path=request.url.path,
                            headers={k.lower(): v for k, v in request.headers.items()}, body=body)
        self.received.append(received)
        self._changes.notify()
        reply = self.queue.popleft() if self.queue else self.defaults.get(received.event or "", self.default)
        if reply.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), reply.delay)
        content = reply.content()
        media_type = "application/json" if reply.json is not NO_BODY and reply.body is None else "text/plain"
        headers = {}
        if self.secret is not None and reply.signed:
            # Signed at the request's own timestamp: a clock in step with the sender's (tests fix theirs).
            stamp = received.headers.get("x-budgetbridge-timestamp", "")
            timestamp = int(stamp) if stamp.isdigit() else int(time.time())
            headers = {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(self.secret, timestamp, content)}
        return Response(content, status_code=reply.status, media_type=media_type if content else None,
                        headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])


@contextlib.asynccontextmanager
async def running_integrator() -> AsyncIterator[Integrator]:
    """Serve a fresh Integrator until the block ends; every wait is bounded."""
    integrator = Integrator()
    async with serving(integrator.app(), name="integrator-server", lifespan="off") as port:
        integrator.port = port
        try:
            yield integrator
        finally:
            integrator.release()  # no delayed reply may keep the server from stopping
