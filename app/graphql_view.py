"""The GraphQL WebSocket endpoint: strawberry's ASGI view with our context, orjson and authentication, a
cap on message size, rate limits on subscribe and trusted documents. (HTTP is app.graphql_http.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage

from app import auth, pages
from app.errors import BAD_REQUEST, RATE_LIMITED
from app.logs import LogScope, current, scoped
from app.operations import MAX_NAME, finish, note_viewer, note_ws_message, observe_schema, traced
from app.request_ids import derived_request_id, new_request_id
from app.trusted_documents import DocumentLookupError
from resolvers.context import Context, Viewer

if TYPE_CHECKING:
    from app.main import Runtime

log = logging.getLogger("budgetbridge.access")


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
    to the client carries that id in its errors (app.operations)."""

    _operations_started = 0

    def operation_scope(self, message: Any) -> LogScope:
        connection = current()
        parent = connection.request_id if connection is not None else new_request_id()
        self._operations_started += 1
        scope = LogScope(
            request_id=derived_request_id(parent, self._operations_started),
            user_id=connection.user_id if connection is not None else None,
            company_id=connection.company_id if connection is not None else None,
        )
        payload = message.get("payload") if isinstance(message, dict) else None
        name = payload.get("operationName") if isinstance(payload, dict) else None
        if isinstance(name, str):
            scope.operation = name[:MAX_NAME]  # until the document says (app.operations)
        with scoped(scope):
            log.info("websocket operation started", extra={"connection_request_id": parent})
        return scope

    @staticmethod
    def refused(scope: LogScope, started: float) -> None:
        """The operation ended before a task ran it (refused here or by the protocol)."""
        if scope.outcome is None:
            scope.note_outcome(BAD_REQUEST)
        finish(scope, "websocket", started)

    @staticmethod
    def follow(scope: LogScope, started: float, task: asyncio.Task[Any]) -> None:
        """The access line when the operation's task is done, even one cancelled before it ran at all (a
        client that subscribes and completes at once)."""
        task.add_done_callback(lambda _: finish(scope, "websocket", started))


class LimitedLegacyWSHandler(ObservedOperations, BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol with the same refusals on `start`."""

    async def handle_start(self, message: Any) -> None:
        if not self.connection_acknowledged:
            await super().handle_start(message)
            return
        scope, started = self.operation_scope(message), time.perf_counter()
        with scoped(scope):
            operation_id = message.get("id")
            if operation_id not in self.tasks:
                view: Any = self.view
                refused = await refuse_operation(view, self.context, message.get("payload"))
                if refused is not None:
                    await self.send_message(ErrorMessage(type="error", id=message["id"], payload=cast(Any, refused)))
                    self.refused(scope, started)
                    return
            before = self.tasks.get(operation_id)
            await super().handle_start(message)
            task = self.tasks.get(operation_id)
            if task is None or task is before:
                self.refused(scope, started)
            else:
                self.follow(scope, started, task)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        scope = current()
        if scope is None:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        with traced(scope):
            await super().handle_async_results(operation_id, query, operation_name, variables)

    async def send_message(self, message: Any) -> None:
        await super().send_message(note_ws_message(message))


class KeepAliveTransportWSHandler(ObservedOperations, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with keep-alive pings once acknowledged. strawberry keeps only the legacy protocol
    alive (`ka`), so an idle graphql-transport-ws connection would be cut by proxies' idle timeouts."""

    _pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None and self.view.keep_alive:
            self._pinger = asyncio.create_task(self._ping(float(self.view.keep_alive_interval or 15.0)))

    async def handle_subscribe(self, message: Any) -> None:
        if not self.connection_acknowledged:
            await super().handle_subscribe(message)
            return
        scope, started = self.operation_scope(message), time.perf_counter()
        with scoped(scope):
            operation_id = message.get("id")
            if operation_id not in self.operations:
                view: Any = self.view
                refused = await refuse_operation(view, self.context, message.get("payload"))
                if refused is not None:
                    error: Any = {"id": message["id"], "type": "error", "payload": [refused]}
                    await self.send_message(error)
                    self.refused(scope, started)
                    return
            before = self.operations.get(operation_id)
            await super().handle_subscribe(message)
            created = self.operations.get(operation_id)
            if created is None or created is before or created.task is None:
                self.refused(scope, started)
            else:
                self.follow(scope, started, created.task)

    async def run_operation(self, operation: Any) -> None:
        scope = current()
        if scope is None:
            await super().run_operation(operation)
            return
        with traced(scope):
            await super().run_operation(operation)

    async def send_message(self, message: Any) -> None:
        await super().send_message(note_ws_message(message))

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

    async def viewer_from_token(self, connection: HTTPConnection, token: str | None) -> Viewer | None:
        if token is None:
            return None
        runtime = self._runtime(connection)
        user_id = auth.user_id_from_token(runtime.jwt_secret, token)
        if user_id is None:
            return None
        return await auth.load_viewer(runtime.services.reads, user_id)

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
            limits = self._runtime(request).rate_limits
            address = request.client.host if request.client is not None else "unknown"
            if await limits.auth_blocked(address) is not None:
                raise ConnectionRejectionError({"message": "too many failed authentications: try again later"})
            context.viewer_or_none = await self.viewer_from_token(request, token)
            note_viewer(context.viewer_or_none)
            context.reset_loaders()
            if context.viewer_or_none is None:
                await limits.auth_failed(address)
        if context.viewer_or_none is None:
            raise ConnectionRejectionError(
                {"message": "authentication required: a valid bearer token in connection_init"}
            )

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
