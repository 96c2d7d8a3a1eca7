"""The GraphQL WebSocket endpoint: strawberry's ASGI view with our context, orjson and authentication (checked
again at each re-read of a live subscription: access taken back closes the connection with 4403), a cap on
message size, rate limits on subscribe and trusted documents. (HTTP is app.graphql_http.)"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage

from app import auth, pages
from app.errors import BAD_REQUEST, RATE_LIMITED
from app.logs import LogScope, current, scoped
from app.operations import MAX_NAME, OK, finish, note_viewer, note_ws_message, observe_schema, traced
from app.outbox import Outbox
from app.request_ids import derived_request_id, new_request_id
from app.trusted_documents import DocumentLookupError
from domain.access import AccessRefusal
from resolvers.context import Context
from resolvers.live_fanout import Delivery, current_delivery

if TYPE_CHECKING:
    from app.main import Runtime

log = logging.getLogger("budgetbridge.access")

WS_UNAUTHENTICATED = "authentication required: a valid bearer token in connection_init"


def _closed_by_us(context: Context) -> bool:
    """The server already closed this WebSocket (access taken back): what the protocol would still send (the
    ended stream's error, `complete`, keep-alives) has nowhere to go."""
    websocket = context.request
    return isinstance(websocket, WebSocket) and websocket.application_state is WebSocketState.DISCONNECTED


async def refuse_operation(view: GraphQLView, context: Context, payload: Any) -> dict[str, Any] | None:
    """Before a WebSocket operation starts: the GraphQL error that refuses it (rate limit, trusted documents),
    or None. A trusted document named by id replaces the payload's query."""
    runtime = view._runtime(context.request)
    if context.viewer_or_none is not None:
        refusal = await runtime.rate_limits.operation(context.viewer_or_none.actor.user_id)
        if refusal is not None:
            return {
                "message": "too many requests: try again later",
                "extensions": {"code": RATE_LIMITED, "retryAfter": refusal.retry_after},
            }
    if not isinstance(payload, dict):
        return None
    try:
        text = runtime.trusted_documents.resolve(payload.get("query"), payload.get("documentId"),
                                                 payload.get("extensions"))
    except DocumentLookupError as missing:
        return {"message": missing.message, "extensions": {"code": missing.code}}
    if text is not None:
        payload["query"] = text
    return None


class ObservedOperations:
    """Each operation a WebSocket starts gets a request id derived from the connection's, a log scope that its
    task inherits (asyncio copies context variables into new tasks), a span and an access line; what is sent
    to the client carries that id in its errors (app.operations). Before it starts, the refusals of
    `refuse_operation` apply. The two protocols differ only in where they keep an operation's task and how
    they word a refusal."""

    view: Any
    context: Context
    _operations_started = 0

    def task_of(self, operation_id: Any) -> asyncio.Task[Any] | None:
        raise NotImplementedError

    def refusal(self, operation_id: Any, error: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def send_message(self, message: Any) -> None:
        await super().send_message(note_ws_message(message))  # type: ignore[misc]  # the protocol's own

    async def start_observed(self, message: Any, start: Callable[[Any], Awaitable[None]]) -> None:
        """Start the operation of a subscribe (`start`) message, through the protocol's own `start`."""
        scope, started = self._operation_scope(message), time.perf_counter()
        with scoped(scope):
            operation_id = message.get("id")
            before = self.task_of(operation_id)
            if before is None:
                refused = await refuse_operation(self.view, self.context, message.get("payload"))
                if refused is not None:
                    await self.send_message(self.refusal(message["id"], refused))
                    self._end_unstarted(scope, started)
                    return
            await start(message)
            task = self.task_of(operation_id)
            if task is None or task is before:  # the protocol refused it (limit, duplicate id)
                self._end_unstarted(scope, started)
            else:
                # The access line when the task is done, even one cancelled before it ran at all (a client
                # that subscribes and completes at once).
                task.add_done_callback(lambda _: finish(scope, "websocket", started))

    async def run_traced(self, run: Awaitable[None]) -> None:
        """The operation's task, inside its span."""
        scope = current()
        if scope is None:
            await run
            return
        with traced(scope):
            await run

    def _operation_scope(self, message: Any) -> LogScope:
        connection = current()
        parent = connection.request_id if connection is not None else new_request_id()
        self._operations_started += 1
        scope = LogScope(
            request_id=derived_request_id(parent, self._operations_started),
            user_id=connection.user_id if connection is not None else None,
            company_id=connection.company_id if connection is not None else None,
        )
        payload = message.get("payload")
        name = payload.get("operationName") if isinstance(payload, dict) else None
        if isinstance(name, str):
            scope.operation = name[:MAX_NAME]  # until the document says (app.operations)
        with scoped(scope):
            log.info("websocket operation started", extra={"connection_request_id": parent})
        return scope

    @staticmethod
    def _end_unstarted(scope: LogScope, started: float) -> None:
        if scope.outcome is None:
            scope.note_outcome(BAD_REQUEST)
        finish(scope, "websocket", started)


class LimitedLegacyWSHandler(ObservedOperations, BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol, observed, with the same refusals on `start`."""

    def task_of(self, operation_id: Any) -> asyncio.Task[Any] | None:
        return self.tasks.get(operation_id)

    def refusal(self, operation_id: Any, error: dict[str, Any]) -> Any:
        return ErrorMessage(type="error", id=operation_id, payload=cast(Any, error))

    async def send_message(self, message: Any) -> None:
        if not _closed_by_us(self.context):
            await super().send_message(message)

    async def handle_start(self, message: Any) -> None:
        if not self.connection_acknowledged:
            await super().handle_start(message)
            return
        await self.start_observed(message, super().handle_start)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        await self.run_traced(super().handle_async_results(operation_id, query, operation_name, variables))


class KeepAliveTransportWSHandler(ObservedOperations, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, observed, with keep-alive pings once acknowledged (strawberry keeps only the legacy
    protocol alive (`ka`), so an idle graphql-transport-ws connection would be cut by proxies' idle timeouts).

    Every frame goes out through the connection's outbox (app.outbox), in order, and each operation's task
    offers it to its subscription as a `Delivery`: a caught-up subscription then has its events sent by the
    live fan-out (resolvers.live_fanout) as ready-made frames, not through strawberry's runner."""

    _pinger: asyncio.Task[None] | None = None
    _outbox: Outbox | None = None

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self._send_text)
        return self._outbox

    async def _send_text(self, text: str) -> None:
        try:
            await self.websocket.ws.send_text(text)  # type: ignore[attr-defined]  # strawberry's ASGI adapter
        except WebSocketDisconnect as exc:  # as strawberry's adapter reports it
            raise WebSocketDisconnected from exc

    def task_of(self, operation_id: Any) -> asyncio.Task[Any] | None:
        operation = self.operations.get(operation_id)
        return operation.task if operation is not None else None

    def refusal(self, operation_id: Any, error: dict[str, Any]) -> Any:
        return {"id": operation_id, "type": "error", "payload": [error]}

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None and self.view.keep_alive:
            self._pinger = asyncio.create_task(self._ping(float(self.view.keep_alive_interval or 15.0)))

    async def handle_subscribe(self, message: Any) -> None:
        if not self.connection_acknowledged:
            await super().handle_subscribe(message)
            return
        await self.start_observed(message, super().handle_subscribe)

    async def run_operation(self, operation: Any) -> None:
        scope = current()
        sent = (lambda: scope.note_outcome(OK)) if scope is not None else (lambda: None)
        operations = self.operations

        def is_open() -> bool:
            return operations.get(operation.id) is operation

        current_delivery.set(Delivery(operation.id, self.outbox, sent, is_open))  # this operation's task only
        await self.run_traced(super().run_operation(operation))

    async def send_message(self, message: Any) -> None:
        if not _closed_by_us(self.context):
            await self.outbox.send(self.view.encode_json(note_ws_message(message)))

    async def _ping(self, interval: float) -> None:
        with contextlib.suppress(Exception):  # the socket is gone: shutdown() is on its way
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()
        if self._outbox is not None:
            self._outbox.close()


class GraphQLView(GraphQL[Context, None]):
    """Built with the app, before its lifespan starts; each request finds the running services and signing
    secret in `app.state.runtime`, which the lifespan sets before the server accepts any request."""

    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler
    graphql_ws_handler_class = LimitedLegacyWSHandler

    def __init__(
        self,
        schema: Any,
        allowed_origins: tuple[str, ...] = ("*",),
        max_message_bytes: int = 262_144,
        **kwargs: Any,
    ) -> None:
        super().__init__(schema, **kwargs)
        observe_schema(schema)
        self.allowed_origins = allowed_origins
        self.max_message_bytes = max_message_bytes

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from this package's own files (app/static), not strawberry's page that loads a CDN."""
        return pages.graphiql_response(request)

    def encode_json(self, data: object) -> str:
        # orjson is ~4x faster than json; text (not bytes) because WebSocket protocols need text frames.
        return orjson.dumps(data).decode()

    @staticmethod
    def _runtime(connection: HTTPConnection) -> Runtime:
        runtime: Runtime = connection.app.state.runtime
        return runtime

    @staticmethod
    def token_of(connection: HTTPConnection) -> str | None:
        return auth.bearer(connection.headers.get("authorization"))

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        """A WebSocket's context: authenticated later, from connection_init (or a header, checked there)."""
        services = self._runtime(request).services
        return Context(services=services, viewer_or_none=None, request=request, response=response)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a WebSocket from its connection_init payload (browsers cannot set headers on
        WebSockets) or its upgrade request's header. No valid token, or an address over its failed
        authentication limit: strawberry closes with 4403 before any data is sent."""
        request = context.request
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("authorization") or params.get("Authorization")
        token = auth.bearer(header if isinstance(header, str) else None) or self.token_of(request)
        if token is not None:
            runtime = self._runtime(request)
            address = request.client.host if request.client is not None else "unknown"
            if await runtime.rate_limits.auth_blocked(address) is not None:
                raise ConnectionRejectionError({"message": "too many failed authentications: try again later"})
            try:
                context.viewer_or_none = await runtime.auth.authenticate(token)
            except auth.AuthenticationError as refused:
                await runtime.rate_limits.auth_failed(address)
                message = refused.message if refused.message != auth.GENERIC_MESSAGE else WS_UNAUTHENTICATED
                raise ConnectionRejectionError({"message": message}) from None
            note_viewer(context.viewer_or_none)
            context.reset_loaders()
            context.recheck_access = functools.partial(self._recheck_access, context, runtime.auth, token)
        if context.viewer_or_none is None:
            raise ConnectionRejectionError({"message": WS_UNAUTHENTICATED})

    @staticmethod
    async def _recheck_access(context: Context, authenticator: auth.Authenticator, token: str) -> bool:
        """Whether the connection's token still opens the account (live subscriptions ask at each re-read of
        the log): the same checks as a request's, expiry included. Yes: the viewer is read afresh. No
        (disabled, deleted, revoked, expired): the connection is closed with 4403 and its subscriptions end."""
        try:
            context.viewer_or_none = await authenticator.authenticate(token)
            return True
        except auth.AuthenticationError as refused:
            outcome = refused.refusal.value if refused.refusal is not None else refused.message
        websocket: WebSocket = context.request
        log.info("closing the WebSocket of user %s: access taken back (%s)", context.actor.user_id, outcome)
        if websocket.application_state is WebSocketState.CONNECTED:
            reason = auth.DISABLED_MESSAGE if outcome == AccessRefusal.DISABLED.value else "access was taken back"
            await websocket.close(code=4403, reason=reason)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self._origin_allowed(scope):
            # Closing before accept makes the server answer the upgrade with HTTP 403.
            await send({"type": "websocket.close", "code": 4403, "reason": "origin not allowed"})
            return
        if scope["type"] == "websocket":
            receive, send = self._limit_messages(receive, send)
        await super().__call__(scope, receive, send)

    def _limit_messages(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """A message over the limit closes the connection with 1009 (Message Too Big, RFC 6455) before the
        protocol parses it; what the protocol sends after that is dropped."""
        limit = self.max_message_bytes
        closed = False

        async def limited_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive":
                text, data = message.get("text"), message.get("bytes")
                size = len(text) if text is not None else len(data or b"")
                if size > limit:
                    closed = True
                    await send({"type": "websocket.close", "code": 1009, "reason": "message too big"})
                    return {"type": "websocket.disconnect", "code": 1009}
            return message

        async def guarded_send(message: Message) -> None:
            if not closed:
                await send(message)

        return limited_receive, guarded_send

    def _origin_allowed(self, scope: Scope) -> bool:
        if "*" in self.allowed_origins:
            return True
        origin = dict(scope.get("headers") or []).get(b"origin")
        return origin is None or origin.decode("latin-1") in self.allowed_origins
