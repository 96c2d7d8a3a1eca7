"""The GraphQL endpoint: strawberry's ASGI view with our context, orjson and authentication."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app import auth
from resolvers.context import Context, Services, Viewer


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: Any, services: Services, jwt_secret: str, **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        self.services = services
        self.jwt_secret = jwt_secret

    def encode_json(self, data: object) -> bytes:  # type: ignore[override]
        return orjson.dumps(data)

    async def viewer_from_token(self, token: str | None) -> Viewer | None:
        if token is None:
            return None
        user_id = auth.user_id_from_token(self.jwt_secret, token)
        if user_id is None:
            return None
        async with self.services.db.read() as conn:
            return await auth.viewer_for(conn, user_id)

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        token = auth.bearer(request.headers.get("authorization"))
        viewer = await self.viewer_from_token(token)
        return Context(services=self.services, viewer_or_none=viewer, request=request, response=response)
