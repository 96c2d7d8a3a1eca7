"""Bring a database to the newest schema through Alembic (the app at start, `budgetbridge migrate`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from persistence.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Told of each revision as it is applied: (its position among those to apply, how many, revision id, its title).
OnStep = Callable[[int, int, str, str], None]


def _upgrade(connection: Connection, on_step: OnStep | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if on_step is not None:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(config)
        pending = list(script.iterate_revisions("heads", _current_revision(connection)))
        done = 0

        def applied(*, step: Any, **_: Any) -> None:  # alembic's on_version_apply hook (env.py passes it on)
            nonlocal done
            done += 1
            on_step(done, len(pending), step.up_revision_id, (step.up_revision.doc or "").strip())

        config.attributes["on_version_apply"] = applied
    command.upgrade(config, "head")


async def migrate(db: Database, on_step: OnStep | None = None) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, on_step)


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def is_current(db: Database) -> bool:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current_revision) == head
