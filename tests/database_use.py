"""Counting what code costs the database: pool checkouts and checkins, and statements sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from persistence.database import Database


@dataclass
class Use:
    checkouts: int = 0
    checkins: int = 0
    statements: int = 0


@contextmanager
def database_use(db: Database, counted: Callable[[], bool] = lambda: True) -> Iterator[Use]:
    """What `db`'s engine does inside the block; only what happens while `counted()` is true (a test can
    set a context variable around its own request, so an app's background work is left out)."""
    use = Use()

    def checked_out(*_: Any) -> None:
        use.checkouts += counted()

    def checked_in(*_: Any) -> None:
        use.checkins += counted()

    def statement(*_: Any) -> None:
        use.statements += counted()

    engine = db.engine.sync_engine
    listeners = [("checkout", checked_out), ("checkin", checked_in), ("before_cursor_execute", statement)]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield use
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)
