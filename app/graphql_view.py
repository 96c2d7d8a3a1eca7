"""The GraphQL endpoint: strawberry's ASGI view with our context, orjson and authentication."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from app import auth, pages
from resolvers.context import Context, Viewer

if TYPE_CHECKING:
    from app.main import Runtime


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with keep-alive pings once acknowledged. strawberry keeps only the legacy protocol
    alive (`ka`), so an idle graphql-transport-ws connection would be cut by proxies' idle timeouts."""

    _pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None and self.view.keep_alive:
            self._pinger = asyncio.create_task(self._ping(float(self.view.keep_alive_interval or 15.0)))

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

    def __init__(self, schema: Any, allowed_origins: tuple[str, ...] = ("*",), **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        self.allowed_origins = allowed_origins

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

    async def viewer_from_token(self, connection: HTTPConnection, token: str | None) -> Viewer | None:
        if token is None:
            return None
        runtime = self._runtime(connection)
        user_id = auth.user_id_from_token(runtime.jwt_secret, token)
        if user_id is None:
            return None
        return await auth.load_viewer(runtime.services.reads, user_id)

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        token = auth.bearer(request.headers.get("authorization"))
        viewer = await self.viewer_from_token(request, token)
        services = self._runtime(request).services
        return Context(services=services, viewer_or_none=viewer, request=request, response=response)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a WebSocket from its connection_init payload (browsers cannot set headers on
        WebSockets). No valid token: strawberry closes with 4403 before any data is sent."""
        if context.viewer_or_none is None:
            params = context.connection_params if isinstance(context.connection_params, dict) else {}
            header = params.get("authorization") or params.get("Authorization")
            token = auth.bearer(header if isinstance(header, str) else None)
            context.viewer_or_none = await self.viewer_from_token(context.request, token)
            context.reset_loaders()
        if context.viewer_or_none is None:
            raise ConnectionRejectionError(
                {"message": "authentication required: a valid bearer token in connection_init"}
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self._origin_allowed(scope):
            # Closing before accept makes the server answer the upgrade with HTTP 403.
            await send({"type": "websocket.close", "code": 4403, "reason": "origin not allowed"})
            return
        await super().__call__(scope, receive, send)

    def _origin_allowed(self, scope: Scope) -> bool:
        if "*" in self.allowed_origins:
            return True
        origin = dict(scope.get("headers") or []).get(b"origin")
        return origin is None or origin.decode("latin-1") in self.allowed_origins
