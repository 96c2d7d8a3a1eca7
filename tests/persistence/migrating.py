"""Moving a test database's schema to a revision, for the migration tests (inside their own transaction, so
they can look at the schema before it commits)."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from sqlalchemy.engine import Connection

from persistence.migrate import alembic_config


def migration_to(revision: str, *, down: bool) -> Callable[[Connection], None]:
    """For `AsyncConnection.run_sync`: downgrade (or upgrade) the connection's database to `revision`."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run
