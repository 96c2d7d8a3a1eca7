"""The composition root: builds the database, connectors, worker and GraphQL endpoint, and owns their
lifetimes through the Starlette lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from app import api_tokens, auth, health, logs, metrics, oidc, pages, sign_in, tracing
from app.body_limit import BodyLimitMiddleware
from app.errors import is_database_outage
from app.export_worker import ExportWorker, build_worker
from app.graphql_http import GraphQLHTTPEndpoint
from app.graphql_view import GraphQLView
from app.live import LiveHub
from app.notifier import Notifier, build_notifier
from app.rate_limits import RateLimits, storage_url
from app.request_ids import RequestIdMiddleware
from app.response_cache import ResponseCache
from app.settings import Settings, SettingsError
from app.tasks import run_bounded
from app.trusted_documents import TrustedDocuments, TrustedDocumentsError
from app.webhook_callbacks import webhook_callback
from erp.registry import ConnectorRegistry
from persistence.database import Database
from persistence.migrate import is_current, migrate
from persistence.reads import ReadStore
from resolvers.context import QueryLimits, Services
from resolvers.event_tail import EventTails
from resolvers.live_fanout import LiveFanout
from schema.build import schema

log = logging.getLogger("budgetbridge")


@dataclass
class Runtime:
    """What the running app holds; tests reach the worker and services through `app.state.runtime`."""

    settings: Settings
    db: Database
    services: Services
    worker: ExportWorker
    live: LiveHub
    jwt_secret: str = ""
    # Turns bearer tokens into viewers (HS256, API tokens, OIDC); built from the above when not given.
    authenticator: auth.Authenticator | None = None
    rate_limits: RateLimits = field(default_factory=lambda: RateLimits("memory://", "30/minute", "600/minute"))
    trusted_documents: TrustedDocuments = field(default_factory=TrustedDocuments)
    extra: dict[str, object] = field(default_factory=dict)
    notifier: Notifier | None = None  # delivers the notification outbox beside the export worker
    # This process's query response cache (app.response_cache); built from the settings when not given.
    response_cache: ResponseCache | None = None

    def __post_init__(self) -> None:
        if self.response_cache is None:
            self.response_cache = ResponseCache(self.settings.response_cache_bytes)
        if self.authenticator is None:
            settings = self.settings
            keys = oidc.IssuerKeys(settings.oidc_keys_cache_seconds, settings.oidc_keys_refetch_seconds)
            verifier = oidc.OidcVerifier(self.db, keys, clock=self.services.clock,
                                         skew=timedelta(seconds=settings.oidc_clock_skew_seconds))
            self.authenticator = auth.Authenticator(
                self.jwt_secret, self.services.reads, settings.max_token_seconds, api_tokens.UseRecorder(self.db),
                oidc=verifier, clock=self.services.clock,
            )

    @property
    def auth(self) -> auth.Authenticator:
        assert self.authenticator is not None  # set in __post_init__
        return self.authenticator


def load_trusted_documents(settings: Settings) -> TrustedDocuments:
    """The manifest, parsed and validated against the schema now: a bad one stops the start."""
    try:
        return TrustedDocuments.load(
            settings.trusted_documents or None, settings.trusted_documents_mode, schema._schema
        )
    except TrustedDocumentsError as exc:
        raise SettingsError(f"BUDGETBRIDGE_TRUSTED_DOCUMENTS: {exc}") from None


def rate_limits_for(settings: Settings) -> RateLimits:
    return RateLimits(
        storage_url(settings.rate_limit_storage, settings.broadcast_url),
        settings.rate_limit_failed_auth,
        settings.rate_limit_operations,
    )


async def start_runtime(
    settings: Settings, *, demo: bool = False, trusted_documents: TrustedDocuments | None = None
) -> Runtime:
    trusted = trusted_documents if trusted_documents is not None else load_trusted_documents(settings)
    db = Database(settings.database_url)
    metrics.watch_pool(db.engine)
    tracing.instrument_engine(db.engine)
    try:
        if db.is_sqlite:
            await migrate(db)  # the embedded database is created and migrated on first start
        elif not await is_current(db):
            raise SettingsError("the database schema is not current: run `budgetbridge migrate` first")
        secret = settings.jwt_secret
        if secret is None:
            if not demo:
                raise SettingsError("BUDGETBRIDGE_JWT_SECRET is not set (use at least 32 random characters)")
            async with db.unit_of_work() as uow:
                secret = await auth.demo_secret(uow.connection)
                await uow.commit()
    except BaseException:
        await db.dispose()
        raise
    connectors = ConnectorRegistry(db)
    reads = ReadStore(db)
    # Subscribers re-read at least every reread interval; a tail untouched for several is not being followed.
    lag = metrics.EventTailLag(reads, followed_within=max(4 * settings.subscription_reread_seconds, 10.0))
    tails = EventTails(lag, max_age=settings.subscription_reread_seconds / 2)
    live = LiveHub(settings.broadcast_url, on_wake=tails.invalidate, freeze_collector=not db.is_sqlite)
    services = Services(
        db=db,
        read_store=reads,
        connectors=connectors,
        events_committed=live.notify,
        live=live,
        event_tails=tails,
        live_fanout=LiveFanout(tails, live.collector),
        live_reread_seconds=settings.subscription_reread_seconds,
        max_subscriber_lag=settings.max_subscriber_lag,
        query_limits=QueryLimits(max_mutations=settings.max_mutations_per_request),
        is_outage=is_database_outage,
        trusted_documents=trusted.parsed,
    )
    worker = build_worker(settings, services)
    services.kick_exports = worker.kick
    notifier = build_notifier(settings, services)
    services.kick_notifications = notifier.kick
    return Runtime(
        settings=settings,
        db=db,
        services=services,
        worker=worker,
        live=live,
        jwt_secret=secret,
        rate_limits=rate_limits_for(settings),
        trusted_documents=trusted,
        notifier=notifier,
    )


def observability() -> tuple[list[Middleware], list[BaseRoute]]:
    """Request ids (app.request_ids) and, when on, tracing (app.tracing) outside every other middleware, so
    even a refused body has them; the liveness and readiness routes (app.health)."""
    middleware = [Middleware(RequestIdMiddleware)]
    if tracing.enabled():
        middleware.insert(0, Middleware(tracing.asgi_middleware))
    return middleware, health.routes()


async def print_demo_users(runtime: Runtime) -> None:
    from app import demo as demo_data

    ttl = timedelta(seconds=runtime.settings.max_token_seconds)  # longer ones would be refused
    people = await demo_data.seed(runtime.services, runtime.jwt_secret, ttl)
    source = "BUDGETBRIDGE_JWT_SECRET" if runtime.settings.jwt_secret else "a secret generated for this database"
    base = runtime.settings.public_url.rstrip("/")
    lines = [
        "",
        f"BudgetBridge demo - dashboard at {base}/ (paste a token below to sign in), GraphiQL at {base}/graphql",
        "(in GraphiQL's headers pane: {\"Authorization\": \"Bearer <token>\"})",
        f"(tokens are signed with {source})",
    ]
    for person in people:
        lines += [
            f"  {person.role:<20} {person.name} <{person.email}>",
            f"    {person.token}",
            f"    sign in directly: {base}/#token={person.token}",
        ]
    print("\n".join(lines), flush=True)


def create_app(settings: Settings | None = None, *, demo: bool = False, run_worker: bool = True) -> Starlette:
    settings = settings or Settings.from_env()
    trusted = load_trusted_documents(settings)  # a bad manifest fails here, before the server listens

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await start_runtime(settings, demo=demo, trusted_documents=trusted)
        app.state.runtime = runtime
        await runtime.live.start()
        # Everything built so far lives as long as the process: keep it out of the garbage collector's
        # generations, so full collections during large responses scan only per-request objects. Not on
        # SQLite (app.live.CollectorGuard's freeze=False says why).
        if not runtime.db.is_sqlite:
            gc.collect()
            gc.freeze()
        if run_worker and settings.run_export_worker:
            runtime.worker.start()
            if runtime.notifier is not None:
                runtime.notifier.start()
        try:
            yield
        finally:
            # Each step is bounded: a stuck connection must not keep the process from exiting.
            await run_bounded(runtime.worker.stop(), 15, "stopping the export worker")
            if runtime.notifier is not None:
                await run_bounded(runtime.notifier.stop(), 15, "stopping the notifier")
            await run_bounded(runtime.live.stop(), 10, "stopping live updates")
            await run_bounded(runtime.services.connectors.aclose(), 10, "closing ERP connectors")
            await run_bounded(runtime.rate_limits.aclose(), 10, "closing the rate limits' storage")
            if runtime.auth.oidc is not None:
                await run_bounded(runtime.auth.oidc.keys.aclose(), 10, "closing the identity providers' client")
            await run_bounded(runtime.db.dispose(), 10, "closing the database pool")

    view = GraphQLView(
        schema,
        allowed_origins=settings.allowed_origins,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        keep_alive=True,
        keep_alive_interval=settings.keep_alive_seconds,
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout_seconds),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        max_message_bytes=settings.max_websocket_message_bytes,
    )
    observing, health_routes = observability()
    middleware = [
        *observing,
        Middleware(metrics.HttpMetricsMiddleware),
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        ),
    ]
    return Starlette(
        routes=[
            Route("/graphql", GraphQLHTTPEndpoint(view), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/erp/callbacks/webhook", webhook_callback, methods=["POST"]),
            *health_routes,  # /healthz, /readyz
            Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
            Route("/auth/config", sign_in.auth_config, methods=["GET"]),
            *pages.routes(),  # the dashboard at / and its deep links, /static/..., /graphql/assets/...
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


def create_app_from_env() -> Starlette:
    """The factory `budgetbridge serve --workers N` hands to uvicorn (each worker builds its own app, in a
    process of its own: logging and tracing are set up there again)."""
    import os

    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level or "INFO")
    tracing.setup_from_env()
    return create_app(settings, demo=os.environ.get("BUDGETBRIDGE_DEMO") == "1")
