"""What the notification tests share: a notifier for one tenant, pointed at a test SMTP server, and reads of
the outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from app.mailer import SmtpConfig, SmtpMailer
from app.notifier import Notifier, NotifyConfig
from persistence.notification_records import NotificationRecord
from persistence.tables import notification_outbox
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.support import Tenant

PUBLIC_URL = "https://budgets.example.com"
MAIL_FROM = "BudgetBridge <budgets@example.com>"


def config(**overrides: object) -> NotifyConfig:
    values: dict[str, object] = {
        "public_url": PUBLIC_URL,
        "mail_from": MAIL_FROM,
        "digest_hour": None,  # the digest tests ask for one
        "digest_zone": UTC,
        "policy": RetryPolicy(max_attempts=5, base_seconds=0.05, cap_seconds=0.2, lease_seconds=30),
        **overrides,
    }
    return NotifyConfig(**values)  # type: ignore[arg-type]


def notifier_for(
    tenant: Tenant, smtp_port: int | None, *, clock: Callable[[], datetime] | None = None, **overrides: object
) -> Notifier:
    """A notifier of the tenant's company only (the suite's database is shared), sending to 127.0.0.1:port
    (None: no SMTP server configured)."""
    mailer = SmtpMailer(SmtpConfig("127.0.0.1", smtp_port, "plain", timeout=5)) if smtp_port is not None else None
    return Notifier(
        tenant.services,
        config(**overrides),
        mailer=mailer,
        poll_seconds=0.05,
        company_id=tenant.company_id,
        clock=clock,
    )


async def outbox_of(services: Services, company_id: str) -> list[NotificationRecord]:
    async with services.db.read() as conn:
        rows = await conn.execute(
            select(notification_outbox)
            .where(notification_outbox.c.company_id == company_id)
            .order_by(notification_outbox.c.created_at, notification_outbox.c.id)
        )
        return [NotificationRecord.of(r) for r in rows]
