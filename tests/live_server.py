"""A real uvicorn server on a free loopback port, in the test's event loop, for WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import uvicorn
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from tests.support import JWT_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    app: Starlette
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


def server_settings_for(database_url: str, **overrides: object) -> Settings:
    base = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        export_poll_seconds=0.05,
        subscription_reread_seconds=1.0,
        keep_alive_seconds=1.0,
        connection_init_timeout_seconds=1.0,
        max_subscriptions_per_connection=3,
        rate_limit_failed_auth="100000/minute",
        rate_limit_operations="100000/minute",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield LiveServer(app=app, port=port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
