"""Alembic environment. Runs on a connection handed in by persistence.migrate (the app and the CLI),
or on the URL from BUDGETBRIDGE_DATABASE_URL when invoked through the alembic command itself."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from persistence.database import Database
from persistence.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # persistence.migrate's progress report (`budgetbridge migrate` on a terminal), when it asks for one.
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await db.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_url(os.environ.get("BUDGETBRIDGE_DATABASE_URL", "sqlite+aiosqlite:///./budgetbridge.db")))
