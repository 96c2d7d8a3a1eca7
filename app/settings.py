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
        try:
            poll = float(env.get("BUDGETBRIDGE_EXPORT_POLL_SECONDS", "2"))
            timeout = float(env.get("BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS", "30"))
        except ValueError:
            raise SettingsError("BUDGETBRIDGE_EXPORT_POLL_SECONDS / _TIMEOUT_SECONDS must be numbers") from None
        if poll <= 0 or timeout <= 0:
            raise SettingsError("BUDGETBRIDGE_EXPORT_POLL_SECONDS / _TIMEOUT_SECONDS must be greater than 0")
        return cls(
            database_url=database_url, jwt_secret=secret, broadcast_url=broadcast, erp_connector=connector,
            export_poll_seconds=poll, export_timeout_seconds=timeout,
        )
