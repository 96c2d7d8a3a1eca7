"""Twelve-factor settings: everything comes from the environment, checked once at start."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.logs import FORMATS, LEVELS
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
    # Request edge (README, "Security").
    max_body_bytes: int = 1_048_576
    max_websocket_message_bytes: int = 262_144
    max_mutations_per_request: int = 10
    rate_limit_storage: str = ""  # "" = the redis:// broadcast URL if there is one, else memory://
    rate_limit_failed_auth: str = "30/minute"
    rate_limit_operations: str = "600/minute"
    trusted_documents: str = ""  # path of a {hash: document} manifest
    trusted_documents_mode: str = "allow"
    retry_after_seconds: int = 5
    # The query response cache of each server process (app.response_cache): its byte budget; 0 turns it off.
    response_cache_bytes: int = 33_554_432
    # Taking access back (README, "Security"): the longest a bearer token may live (its exp - iat).
    max_token_seconds: int = 30 * 24 * 3600
    # Notifications (app.notifier): email over SMTP and the companies' chat channels.
    smtp_url: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "BudgetBridge <budgetbridge@localhost>"
    public_url: str = "http://127.0.0.1:8000"
    posting_reminder_hours: float = 24.0
    digest_hour: int | None = 7  # None ("off"): no scheduled digest
    digest_timezone: str = "UTC"
    notify_max_attempts: int = 8
    notify_backoff_seconds: float = 30.0
    notify_lease_seconds: float = 120.0
    # Operations (app.metrics): a bearer token /metrics requires when set.
    metrics_token: str | None = field(default=None, repr=False)
    # Single sign-on (app/oidc.py): leeway on exp/nbf, how long an issuer's keys are kept, and how often an
    # unknown key id may fetch them again.
    oidc_clock_skew_seconds: float = 60.0
    oidc_keys_cache_seconds: float = 600.0
    oidc_keys_refetch_seconds: float = 30.0
    # Logs (app.logs): text or json; None = INFO for serve and worker, WARNING for one-shot CLI commands.
    log_format: str = "text"
    log_level: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each setting is `BUDGETBRIDGE_<FIELD NAME>`; an unset or blank one takes the field's default."""
        env = dict(os.environ if env is None else env)

        def raw(name: str) -> str | None:
            value = env.get(f"BUDGETBRIDGE_{name.upper()}")
            return value if value is not None and value.strip() != "" else None

        values: dict[str, Any] = {}
        for item in fields(cls):
            text = raw(item.name)
            if text is None:
                continue
            variable = f"BUDGETBRIDGE_{item.name.upper()}"
            parse = _PARSERS.get(item.name) or _PARSERS_BY_TYPE[str(item.type)]
            try:
                values[item.name] = parse(text)
            except ValueError as exc:
                raise SettingsError(f"{variable}: {exc}") from None
        settings = cls(**values)
        if settings.trusted_documents_mode == "require" and not settings.trusted_documents:
            raise SettingsError("BUDGETBRIDGE_TRUSTED_DOCUMENTS_MODE=require needs BUDGETBRIDGE_TRUSTED_DOCUMENTS")
        if settings.export_lease_seconds <= settings.export_timeout_seconds:
            raise SettingsError(
                "BUDGETBRIDGE_EXPORT_LEASE_SECONDS must exceed BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS, or a "
                "slow export would be claimed twice"
            )
        if settings.notify_lease_seconds <= settings.smtp_timeout_seconds:
            raise SettingsError(
                "BUDGETBRIDGE_NOTIFY_LEASE_SECONDS must exceed BUDGETBRIDGE_SMTP_TIMEOUT_SECONDS, or a slow "
                "delivery would be claimed twice"
            )
        return settings

    @property
    def broadcast_is_local(self) -> bool:
        return self.broadcast_url.startswith("memory://")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _count(text: str) -> int:
    value = _positive(text)
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def _byte_budget(text: str) -> int:
    """A size in bytes; 0 is allowed (it turns the thing off)."""
    if text.strip() == "0":
        return 0
    return _count(text)


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true/false")


def _database_url(text: str) -> str:
    try:
        return normalise_url(text)
    except DatabaseUrlError as exc:
        raise ValueError(str(exc)) from None


def _jwt_secret(text: str) -> str:
    if len(text) < 32:
        raise ValueError("use at least 32 characters (e.g. `openssl rand -hex 32`)")
    return text


def _broadcast_url(text: str) -> str:
    if "://" not in text or text.split("://", 1)[0] not in BROADCAST_SCHEMES:
        raise ValueError(f"{text!r} is not memory://, redis://host:port or postgres://...")
    return text


def _connector(text: str) -> str:
    try:
        return check_connector_name(text)
    except UnknownConnectorError as exc:
        raise ValueError(str(exc)) from None


def _rate(text: str) -> str:
    import limits

    try:
        limits.parse(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate such as 30/minute or 600 per hour") from None
    return text


def _rate_storage(text: str) -> str:
    url = text.removeprefix("async+")
    if "://" not in url or url.split("://", 1)[0] not in ("memory", "redis", "rediss"):
        raise ValueError(f"{text!r} is not memory:// or redis://host:port/db")
    return text


def _manifest(text: str) -> str:
    if not os.path.isfile(text):
        raise ValueError(f"{text!r} is not a file (a JSON object of document id -> document)")
    return text


def _mode(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("off", "allow", "require"):
        raise ValueError(f"{text!r} is not off, allow or require")
    return lowered


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip()) or ("*",)


def _smtp_url(text: str) -> str:
    from app.mailer import SmtpConfig  # the check is the mailer's own parsing

    SmtpConfig.from_url(text)
    return text.strip()


def _text(text: str) -> str:
    return text


def _metrics_token(text: str) -> str:
    if len(text.strip()) < 16:
        raise ValueError("use at least 16 characters (e.g. `openssl rand -hex 32`)")
    return text.strip()


def _mail_from(text: str) -> str:
    _, address = parseaddr(text)
    if "@" not in address:
        raise ValueError(f"{text!r} is not an email address (e.g. 'BudgetBridge <budgets@example.com>')")
    return text.strip()


def _public_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http(s) URL such as https://budgets.example.com")
    return text.strip().rstrip("/")


def _hour(text: str) -> int | None:
    if text.strip().lower() in ("off", "none"):
        return None
    if not text.strip().isdigit() or not 0 <= int(text) <= 23:
        raise ValueError(f"{text!r} is not an hour from 0 to 23 (or off)")
    return int(text)


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not a time zone name such as UTC or America/Chicago") from None
    return text.strip()


def _log_format(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in FORMATS:
        raise ValueError(f"{text!r} is not text or json")
    return lowered


def _log_level(text: str) -> str:
    upper = text.strip().upper()
    if upper not in LEVELS:
        raise ValueError(f"{text!r} is not DEBUG, INFO, WARNING or ERROR")
    return upper


# How each setting is read: by field name where it needs its own check, else by the field's type.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "jwt_secret": _jwt_secret,
    "broadcast_url": _broadcast_url,
    "erp_connector": _connector,
    "allowed_origins": _origins,
    "rate_limit_storage": _rate_storage,
    "rate_limit_failed_auth": _rate,
    "rate_limit_operations": _rate,
    "trusted_documents": _manifest,
    "trusted_documents_mode": _mode,
    "smtp_url": _smtp_url,
    "smtp_username": _text,
    "smtp_password": _text,
    "metrics_token": _metrics_token,
    "mail_from": _mail_from,
    "public_url": _public_url,
    "digest_hour": _hour,
    "digest_timezone": _timezone,
    "log_format": _log_format,
    "log_level": _log_level,
    "response_cache_bytes": _byte_budget,
}
_PARSERS_BY_TYPE: dict[str, Callable[[str], Any]] = {"float": _positive, "int": _count, "bool": _flag}
