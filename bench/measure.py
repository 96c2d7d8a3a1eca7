"""What every bench measures besides wall time: SQL statements and network round trips to PostgreSQL, the
machine's load, and percentiles.

Statements are counted where SQLAlchemy sends them (before_cursor_execute). Round trips are counted one level
lower, on each asyncpg connection's protocol: every prepare, bind/execute, simple query (BEGIN, COMMIT,
ROLLBACK, the pool's pre-ping) and statement close waits for the server once. The same counter wraps the raw
floor's asyncpg connections, so both sides are counted the same way.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Engine

BENCH_DATABASE_ENV = "BUDGETBRIDGE_BENCH_DATABASE_URL"  # the benches' default --database-url (WIPED)

# asyncpg's protocol calls that each wait for one answer from the server.
ROUND_TRIP_CALLS = frozenset({
    "prepare", "bind_execute", "bind_execute_many", "bind", "execute", "query", "close_statement",
    "close_portal", "copy_in", "copy_out",
})

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cpus)"


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


class Tally:
    """Statements and round trips since the last reset. `statements` counts what SQLAlchemy sends;
    `driver_statements` what asyncpg executes (the raw floor, which has no SQLAlchemy), BEGIN/COMMIT aside."""

    def __init__(self) -> None:
        self.statements = 0
        self.driver_statements = 0
        self.round_trips = 0

    def reset(self) -> None:
        self.statements = 0
        self.driver_statements = 0
        self.round_trips = 0


class _CountingProtocol:
    """Forwards everything to asyncpg's protocol, counting the calls that wait for the server."""

    def __init__(self, protocol: Any, source: Tally | _EngineCounter) -> None:
        object.__setattr__(self, "_bench_inner", protocol)
        object.__setattr__(self, "_bench_source", source)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._bench_inner, name)
        source = self._bench_source
        tally = source if isinstance(source, Tally) else source.tally  # an engine's: None when not counting
        if name in ROUND_TRIP_CALLS and tally is not None:

            def counted(*args: Any, **kwargs: Any) -> Any:
                tally.round_trips += 1
                if name in ("bind_execute", "bind_execute_many") or (
                    name == "query" and not str(args[0]).lstrip().upper().startswith(TRANSACTION_CONTROL)
                ):
                    tally.driver_statements += 1
                return value(*args, **kwargs)

            return counted
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._bench_inner, name, value)


def count_round_trips(asyncpg_connection: Any, source: Tally | _EngineCounter) -> None:
    """Wrap one asyncpg connection (once): its round trips count into `source` (a tally, or an engine
    counter's tally of the moment)."""
    if not isinstance(asyncpg_connection._protocol, _CountingProtocol):
        asyncpg_connection._protocol = _CountingProtocol(asyncpg_connection._protocol, source)


class _EngineCounter:
    """Listeners attached to an engine once, for good: SQLAlchemy iterates its listeners while a checkout
    runs (and a checkout may wait on the network), so adding or removing them while the app serves breaks
    those checkouts. Counting starts and stops by swapping the tally instead."""

    def __init__(self, engine: Engine) -> None:
        self.tally: Tally | None = None
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "checkout", self._connection)
        event.listen(engine, "connect", self._connection)

    def _statement(self, *_args: Any) -> None:
        if self.tally is not None:
            self.tally.statements += 1

    def _connection(self, dbapi_connection: Any, *_args: Any) -> None:
        inner = getattr(dbapi_connection, "_connection", None)  # SQLAlchemy's adapter around asyncpg
        if inner is not None and hasattr(inner, "_protocol"):
            count_round_trips(inner, self)


_COUNTERS: WeakKeyDictionary[Engine, _EngineCounter] = WeakKeyDictionary()


@contextmanager
def counting(engine: Engine) -> Iterator[Tally]:
    """Count the statements of an engine and, on PostgreSQL, the round trips of its pooled connections
    (each wrapped when connected or first checked out: a warm-up request wraps those already pooled)."""
    counter = _COUNTERS.get(engine)
    if counter is None:
        counter = _COUNTERS[engine] = _EngineCounter(engine)
    tally = counter.tally = Tally()
    try:
        yield tally
    finally:
        counter.tally = None


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench's command line with the argument every bench takes: the PostgreSQL database it may wipe."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--database-url", default=os.environ.get(BENCH_DATABASE_ENV),
                        help=f"PostgreSQL (WIPED); default ${BENCH_DATABASE_ENV}")
    return parser


def parse_bench_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"--database-url or ${BENCH_DATABASE_ENV} is required (a PostgreSQL database the bench may wipe)")
    return args
