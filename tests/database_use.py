"""Counting what code costs the database: pool checkouts and checkins, statements sent, and on PostgreSQL the
round trips of asyncpg's protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asyncpg import introspection
from sqlalchemy import event

from persistence.database import Database

# asyncpg's protocol calls that each wait for one answer from the server (as bench.measure counts them), less
# what a connection does once, not per request: preparing a statement (asyncpg caches it per connection) and
# closing one its cache evicted.
ROUND_TRIPS = frozenset({"bind_execute", "bind_execute_many", "bind", "execute", "query", "close_portal"})


@dataclass
class Use:
    checkouts: int = 0
    checkins: int = 0
    statements: int = 0
    round_trips: list[str] = field(default_factory=list)  # PostgreSQL: each call, BEGIN/COMMIT/... by name


class _Counted:
    """Forwards to asyncpg's protocol; records its round trips while its connection is checked out for a
    counted use (a connection serves one task at a time: what it does then is that task's)."""

    def __init__(self, protocol: Any) -> None:
        object.__setattr__(self, "_inner", protocol)
        object.__setattr__(self, "use", None)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in ROUND_TRIPS:
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            use: Use | None = object.__getattribute__(self, "use")
            statement = args[0] if args else kwargs.get("state")
            if use is not None and name == "query":  # BEGIN, COMMIT, ROLLBACK, a ping
                use.round_trips.append(str(statement).strip().rstrip(";"))
            elif use is not None and not _introspection(str(getattr(statement, "query", ""))):
                use.round_trips.append(name)
            return value(*args, **kwargs)

        return counted

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "use":
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)


def _introspection(query: str) -> bool:
    """One of asyncpg's reads of a type it meets for the first time on a connection (with JIT turned off
    around it), as it prepares a statement: once per connection, not per request."""
    return query in _INTROSPECTION or "set_config('jit'" in query


_INTROSPECTION = frozenset({introspection.INTRO_LOOKUP_TYPES, introspection.INTRO_LOOKUP_TYPES_13,
                            introspection.TYPE_BY_NAME})


def _protocol(dbapi_connection: Any) -> _Counted | None:
    """The connection's protocol, wrapped for counting (PostgreSQL only)."""
    inner: Any = getattr(dbapi_connection, "_connection", None)  # SQLAlchemy's adapter around asyncpg
    protocol = getattr(inner, "_protocol", None)
    if protocol is None:
        return None
    if not isinstance(protocol, _Counted):
        protocol = inner._protocol = _Counted(protocol)
    return protocol


@contextmanager
def database_use(db: Database, counted: Callable[[], bool] = lambda: True) -> Iterator[Use]:
    """What `db`'s engine does inside the block; only what happens while `counted()` is true (a test can
    set a context variable around its own request, so an app's background work is left out). Round trips are
    those of the connections checked out for it, until they are checked in (the pool's reset included)."""
    use = Use()

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        ours = counted()
        use.checkouts += ours
        protocol = _protocol(dbapi_connection)
        if protocol is not None:
            protocol.use = use if ours else None

    def checked_in(dbapi_connection: Any, *_: Any) -> None:
        use.checkins += counted()
        protocol = _protocol(dbapi_connection)
        if protocol is not None:
            protocol.use = None

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
