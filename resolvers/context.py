"""What every resolver gets: the services of the running app, the authenticated viewer and the
request's DataLoaders. Built once per HTTP request or WebSocket operation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError

from domain.permissions import Actor
from erp.registry import ConnectorRegistry
from persistence.database import Database
from persistence.reads import ReadStore
from persistence.unit_of_work import AbstractUnitOfWork, UnitOfWorkFactory
from resolvers.loaders import Loaders
from resolvers.shared_execution import LiveScope, SharedExecutions

MAX_NODES = 50_000


@dataclass(frozen=True)
class QueryLimits:
    """What one operation may ask for, checked from the document before it runs (schema/cost.py)."""

    max_depth: int = 12
    max_items: int = MAX_NODES
    max_selections: int = 5_000
    max_field_repeats: int = 50
    max_mutations: int = 10


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnauthenticatedError(GraphQLError):
    def __init__(self, message: str = "authentication required: send Authorization: Bearer <token>") -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class ServiceUnavailableError(GraphQLError):
    """A dependency (the database) cannot be reached now; the client should retry later (HTTP 503)."""

    def __init__(self, message: str = "the service is temporarily unavailable: try again shortly") -> None:
        super().__init__(message, extensions={"code": "SERVICE_UNAVAILABLE"})


def never_an_outage(error: BaseException) -> bool:
    return False


@dataclass
class Services:
    db: Database
    connectors: ConnectorRegistry
    clock: Callable[[], datetime] = utc_now
    # Units of work for writers; None means SQL units of work on `db` (tests hand in a fake).
    unit_of_work_factory: UnitOfWorkFactory | None = None
    # Called after a commit that queued an export, so the worker starts now instead of at its next poll.
    kick_exports: Callable[[], None] = lambda: None
    # Called after a commit that wrote notifications to the outbox, so they are delivered now.
    kick_notifications: Callable[[], None] = lambda: None
    # Called after a commit that appended events for a company (wakes live subscriptions).
    events_committed: Callable[[str], None] = lambda company_id: None
    # Wake-ups for subscriptions (app.live.LiveHub); the default only lets them poll the log.
    live: Any = field(default_factory=lambda: PollOnly())
    live_reread_seconds: float = 5.0
    # resolvers.event_tail.EventTails: the newest events shared by this process's subscriptions (None: each
    # subscription reads the log itself).
    event_tails: Any = None
    max_subscriber_lag: int = 10_000
    # resolvers.live_fanout.LiveFanout: delivers events to the caught-up subscriptions of a transport that takes
    # ready-made frames, one task per company (None: each subscription waits and delivers on its own).
    live_fanout: Any = None
    # The read side; None means a ReadStore on `db` (see `reads`).
    read_store: ReadStore | None = None
    # What one operation may ask for (checked before it runs).
    query_limits: QueryLimits = field(default_factory=QueryLimits)
    # Whether an exception means a dependency is down (the app plugs in the database's errors): such
    # failures answer SERVICE_UNAVAILABLE instead of "Unexpected error.".
    is_outage: Callable[[BaseException], bool] = never_an_outage
    # One execution per event for identical live subscriptions (resolvers.shared_execution); None: each
    # subscription executes every event itself.
    shared_executions: SharedExecutions | None = field(default_factory=SharedExecutions)
    # Trusted documents: their text -> the document parsed and validated at start (graphql.DocumentNode).
    trusted_documents: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reads(self) -> ReadStore:
        if self.read_store is None:
            self.read_store = ReadStore(self.db)
        return self.read_store

    def unit_of_work(self) -> AbstractUnitOfWork:
        if self.unit_of_work_factory is not None:
            return self.unit_of_work_factory()
        # Inside a request's read session, the unit of work goes on on its connection (one per request).
        return self.db.unit_of_work(
            on_events=lambda company_id: self.events_committed(company_id), lender=self.reads.current_session()
        )


class _SilentWaiter:
    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False


class PollOnly:
    """Wake-ups that never ring: subscriptions then re-read the log on their timer only."""

    def listen(self, company_id: str) -> Any:
        return contextlib.nullcontext(_SilentWaiter())


@dataclass(frozen=True)
class Viewer:
    actor: Actor
    name: str
    email: str
    currency: str
    erp_connector: str | None
    erp_settings: dict[str, Any] = field(default_factory=dict)
    # When the bearer token this viewer came from expires (None: never, or not known): a long-lived
    # WebSocket ends then (app.auth.still_valid).
    credential_expires_at: datetime | None = None


@dataclass
class Context:
    services: Services
    viewer_or_none: Viewer | None
    request: Any = None
    response: Any = None
    loaders: Loaders = field(init=False)
    # Set by the WebSocket protocols from the connection_init payload.
    connection_params: Any = None
    # A long-lived connection's check that its token still opens the account (app.graphql_view sets it):
    # True, with the viewer read afresh, or False once access was taken back, after closing the connection.
    recheck_access: Callable[[], Awaitable[bool]] | None = None
    # Set by a live subscription before it yields an event: what the answer depends on (shared execution).
    live_scope: LiveScope | None = None

    def __post_init__(self) -> None:
        self.reset_loaders()

    def reset_loaders(self) -> None:
        """A commit makes cached records stale; later fields of the same request read afresh. Cheap: the
        loaders themselves are built on first use."""
        actor = self.viewer_or_none.actor if self.viewer_or_none is not None else None
        self.loaders = Loaders(
            self.services.reads, actor.company_id if actor else None, actor.user_id if actor else None
        )

    async def still_allowed(self) -> bool:
        """Whether the viewer may go on (live subscriptions ask at each re-read; a request that was just
        authenticated has nothing to re-check)."""
        return True if self.recheck_access is None else await self.recheck_access()

    @property
    def viewer(self) -> Viewer:
        if self.viewer_or_none is None:
            raise UnauthenticatedError()
        return self.viewer_or_none

    @property
    def actor(self) -> Actor:
        return self.viewer.actor

    @property
    def db(self) -> Database:
        return self.services.db
