"""Twelve-factor settings: everything comes from the environment, checked once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass

from erp.registry import UnknownConnectorError, check_connector_name
from persistence.database import DatabaseUrlError, normalise_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./budgetbridge.db"
BROADCAST_SCHEMES = ("memory", "redis", "postgres", "postgresql")


class SettingsError(ValueError):
    """One line that says which setting is wrong and how to fix it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str | None = None
    broadcast_url: str = "memory://"
    erp_connector: str = "embedded"
    export_poll_seconds: float = 2.0
    export_timeout_seconds: float = 30.0
    allowed_origins: tuple[str, ...] = ("*",)
    subscription_reread_seconds: float = 5.0
    keep_alive_seconds: float = 15.0
    connection_init_timeout_seconds: float = 10.0
    max_subscriptions_per_connection: int = 20
    max_subscriber_lag: int = 10_000
    run_export_worker: bool = True
    export_max_attempts: int = 5
    export_backoff_seconds: float = 2.0
    export_lease_seconds: float = 120.0
    export_callback_wait_seconds: float = 24 * 3600.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        try:
            database_url = normalise_url(env.get("BUDGETBRIDGE_DATABASE_URL", DEFAULT_DATABASE_URL))
        except DatabaseUrlError as exc:
            raise SettingsError(f"BUDGETBRIDGE_DATABASE_URL: {exc}") from None
        secret = env.get("BUDGETBRIDGE_JWT_SECRET") or None
        if secret is not None and len(secret) < 32:
            raise SettingsError("BUDGETBRIDGE_JWT_SECRET: use at least 32 characters (e.g. `openssl rand -hex 32`)")
        broadcast = env.get("BUDGETBRIDGE_BROADCAST_URL", "memory://")
        if broadcast.split("://", 1)[0] not in BROADCAST_SCHEMES or "://" not in broadcast:
            raise SettingsError(
                f"BUDGETBRIDGE_BROADCAST_URL: {broadcast!r} is not memory://, redis://host:port or postgres://..."
            )
        try:
            connector = check_connector_name(env.get("BUDGETBRIDGE_ERP_CONNECTOR", "embedded"))
        except UnknownConnectorError as exc:
            raise SettingsError(f"BUDGETBRIDGE_ERP_CONNECTOR: {exc}") from None
        lease = _positive(env, "BUDGETBRIDGE_EXPORT_LEASE_SECONDS", 120.0)
        if lease <= _positive(env, "BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS", 30.0):
            raise SettingsError(
                "BUDGETBRIDGE_EXPORT_LEASE_SECONDS must exceed BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS, or a "
                "slow export would be claimed twice"
            )
        origins = tuple(o.strip() for o in env.get("BUDGETBRIDGE_ALLOWED_ORIGINS", "*").split(",") if o.strip())
        return cls(
            database_url=database_url,
            jwt_secret=secret,
            broadcast_url=broadcast,
            erp_connector=connector,
            export_poll_seconds=_positive(env, "BUDGETBRIDGE_EXPORT_POLL_SECONDS", 2.0),
            export_timeout_seconds=_positive(env, "BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS", 30.0),
            allowed_origins=origins or ("*",),
            subscription_reread_seconds=_positive(env, "BUDGETBRIDGE_SUBSCRIPTION_REREAD_SECONDS", 5.0),
            keep_alive_seconds=_positive(env, "BUDGETBRIDGE_KEEP_ALIVE_SECONDS", 15.0),
            connection_init_timeout_seconds=_positive(env, "BUDGETBRIDGE_CONNECTION_INIT_TIMEOUT_SECONDS", 10.0),
            max_subscriptions_per_connection=int(_positive(env, "BUDGETBRIDGE_MAX_SUBSCRIPTIONS_PER_CONNECTION", 20)),
            max_subscriber_lag=int(_positive(env, "BUDGETBRIDGE_MAX_SUBSCRIBER_LAG", 10_000)),
            run_export_worker=_flag(env, "BUDGETBRIDGE_RUN_EXPORT_WORKER", True),
            export_max_attempts=int(_positive(env, "BUDGETBRIDGE_EXPORT_MAX_ATTEMPTS", 5)),
            export_backoff_seconds=_positive(env, "BUDGETBRIDGE_EXPORT_BACKOFF_SECONDS", 2.0),
            export_lease_seconds=lease,
            export_callback_wait_seconds=_positive(env, "BUDGETBRIDGE_EXPORT_CALLBACK_WAIT_SECONDS", 24 * 3600.0),
        )

    @property
    def broadcast_is_local(self) -> bool:
        return self.broadcast_url.startswith("memory://")


def _positive(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be greater than 0")
    return value


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {raw!r} is not true/false")
