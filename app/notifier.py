"""Delivers the notification outbox, and runs the reminder and digest schedules: beside the export worker,
in the server (default) and in `budgetbridge worker`.

Each pass first runs the schedules (at most every `schedule_seconds`): posting reminders due now, and, once
the configured hour of the day has come, the day's digests. Then it delivers every due row, one at a time,
through resolvers.notifications: claim (leased), render, commit "handed over" right before the message
leaves (before SMTP DATA, before the webhook POST), send, record the outcome. Failures are retried with
exponential backoff and jitter until the attempts run out (then FAILED with the reason); an SMTP 5xx refusal
fails at once. Without an SMTP URL, email rows are closed as NOT_SENT_NO_SMTP: the outbox still says what
would have been sent.

A commit that writes notifications kicks the notifier, so they go out at once instead of at the next poll.
The clock and a hook run right after a successful send (before it is recorded) are injected, so tests can
move time and kill a worker process at the worst moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from app import metrics
from app.chat import ChatPoster
from app.mailer import Abandoned, DeliveryError, SmtpConfig, SmtpMailer
from app.notify_messages import chat_text, email_message, message_id_for
from app.settings import Settings
from app.tasks import PollingLoop
from domain.notifications import Channel, Content, NotificationKind, digest_day
from persistence.notification_records import NotificationRecord
from persistence.unit_of_work import OutboxStatus
from resolvers import notifications
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy

log = logging.getLogger("budgetbridge.notifications")

NO_SMTP = "no SMTP server is configured (set BUDGETBRIDGE_SMTP_URL to send email)"
NO_CHAT = "the company has no chat channel any more"


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class NotifyConfig:
    public_url: str = "http://127.0.0.1:8000"
    mail_from: str = "BudgetBridge <budgetbridge@localhost>"
    reminder_every: timedelta = timedelta(hours=24)
    digest_hour: int | None = 7  # None: no scheduled digest (`budgetbridge notify digest` still sends one)
    digest_zone: tzinfo = UTC
    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=8, base_seconds=30, cap_seconds=3600))

    @classmethod
    def of(cls, settings: Settings) -> NotifyConfig:
        from zoneinfo import ZoneInfo

        return cls(
            public_url=settings.public_url,
            mail_from=settings.mail_from,
            reminder_every=timedelta(hours=settings.posting_reminder_hours),
            digest_hour=settings.digest_hour,
            digest_zone=ZoneInfo(settings.digest_timezone),
            policy=RetryPolicy(
                max_attempts=settings.notify_max_attempts,
                base_seconds=settings.notify_backoff_seconds,
                cap_seconds=3600.0,
                lease_seconds=settings.notify_lease_seconds,
            ),
        )


class Notifier(PollingLoop):
    def __init__(
        self,
        services: Services,
        config: NotifyConfig | None = None,
        *,
        mailer: SmtpMailer | None = None,
        chat: ChatPoster | None = None,
        poll_seconds: float = 2.0,
        schedule_seconds: float = 60.0,
        company_id: str | None = None,
        clock: Callable[[], datetime] | None = None,
        after_send: Callable[[], None] = _nothing,
    ) -> None:
        super().__init__(poll_seconds, "notifier", "the notifier", log)
        self._services = services
        self.config = config or NotifyConfig()
        self.mailer = mailer  # None: no SMTP server configured
        self.chat = chat or ChatPoster()
        self._schedule_every = schedule_seconds
        self.company_id = company_id  # None: every company
        self._clock = clock or services.clock
        self._after_send = after_send
        self._next_schedule: datetime | None = None  # None: run the schedules at the next pass
        self._digests_written_for: date | None = None

    async def run_once(self) -> int:
        """Run the schedules when due, then deliver every due notification. Returns how many were handled."""
        now = self._clock()
        if self._next_schedule is None or now >= self._next_schedule:
            await self.run_schedules(now)
            self._next_schedule = now + timedelta(seconds=self._schedule_every)
        return await self.deliver_due()

    async def deliver_due(self) -> int:
        """Deliver every notification due now, one at a time. Returns how many were handled."""
        handled = 0
        if self.mailer is None:  # nowhere to send email: record that for all of them at once
            handled += await notifications.close_undeliverable(
                self._services,
                self._clock(),
                Channel.EMAIL.value,
                OutboxStatus.NOT_SENT_NO_SMTP,
                NO_SMTP,
                self.company_id,
            )
        while await self.deliver_next():
            handled += 1
        return handled

    async def run_schedules(self, now: datetime) -> None:
        await notifications.plan_reminders(self._services, now, self.config.reminder_every, self.company_id)
        if self.config.digest_hour is None:
            return
        day = digest_day(now, self.config.digest_hour, self.config.digest_zone)
        if day is not None and day != self._digests_written_for:
            await notifications.plan_digests(self._services, day, now, self.company_id)
            self._digests_written_for = day

    async def digest_now(self) -> int:
        """`budgetbridge notify digest`: today's digests (in the configured zone) now, whatever the hour;
        still once per approver and day. Returns how many were written."""
        now = self._clock()
        day = now.astimezone(self.config.digest_zone).date()
        return await notifications.plan_digests(self._services, day, now, self.company_id)

    async def deliver_next(self) -> bool:
        """Deliver one due notification; False when none is due."""
        row = await notifications.claim(
            self._services, self._clock(), self.config.policy.lease, self.company_id,
            max_attempts=self.config.policy.max_attempts,
        )
        if row is None:
            return False
        fields: dict[str, object] = {
            "notification_id": row.id, "kind": row.kind, "channel": row.channel, "attempt": row.attempts,
            "company_id": row.company_id, "erp_request_id": row.erp_request_id,
        }
        log.info("notification %s %s by %s started (attempt %d)", row.id, row.kind, row.channel, row.attempts,
                 extra=fields)
        started = time.perf_counter()
        outcome = await self._deliver(row, fields)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "notification %s -> %s (attempt %d) in %.1f ms", row.id, outcome, row.attempts, duration_ms,
            extra={**fields, "outcome": outcome, "duration_ms": duration_ms},
        )
        return True

    async def _deliver(self, row: NotificationRecord, fields: dict[str, object]) -> str:
        """Deliver one claimed row and record what happened; its outcome for the log."""
        policy = self.config.policy
        try:
            content = Content.of(NotificationKind(row.kind), row.payload)
            if row.channel == Channel.EMAIL.value:
                await self._email(row, content)
            else:
                await self._chat(row, content)
        except Abandoned:  # recorded as not sendable, or no longer this worker's
            return "NOT_SENT"
        except (KeyError, TypeError, ValueError) as exc:  # a row we cannot render: trying again will not help
            log.exception("notification %s cannot be rendered", row.id, extra=fields)
            status = await notifications.record_failure(
                self._services, row, self._clock(), f"cannot be rendered: {exc!r}", retryable=False, policy=policy
            )
            metrics.record_delivery(row.channel, status)
            return _outcome(status)
        except DeliveryError as exc:
            status = await notifications.record_failure(
                self._services, row, self._clock(), str(exc), retryable=exc.retryable, policy=policy
            )
            metrics.record_delivery(row.channel, status)
            log.warning("notification %s (attempt %d) not delivered: %s -> %s", row.id, row.attempts, exc, status,
                        extra={**fields, "retryable": exc.retryable})
            return _outcome(status)
        self._after_send()  # delivered; not recorded yet
        await notifications.record_sent(self._services, row, self._clock())
        metrics.record_delivery(row.channel, OutboxStatus.SENT)
        return "SENT"

    async def _handed_over(self, row: NotificationRecord, message_id: str | None) -> bool:
        return await notifications.record_handed_over(self._services, row, self._clock(), message_id)

    async def _email(self, row: NotificationRecord, content: Content) -> None:
        if self.mailer is None:
            await notifications.record_not_sent(
                self._services, row, self._clock(), OutboxStatus.NOT_SENT_NO_SMTP, NO_SMTP
            )
            raise Abandoned()
        assert row.address is not None, "an email notification has an address"
        message_id = row.message_id or message_id_for(row.id, self.config.mail_from)
        message = email_message(
            content,
            public_url=self.config.public_url,
            mail_from=self.config.mail_from,
            to_address=row.address,
            message_id=message_id,
            date=row.created_at,
        )
        sender = message["From"].addresses[0].addr_spec

        async def before_data() -> bool:
            return await self._handed_over(row, message_id)

        await self.mailer.send(sender, row.address, message.as_bytes(), before_data)

    async def _chat(self, row: NotificationRecord, content: Content) -> None:
        hook = await notifications.chat_webhook(self._services, row.company_id)
        if hook is None:
            await notifications.record_not_sent(
                self._services, row, self._clock(), OutboxStatus.NOT_SENT_NO_CHAT, NO_CHAT
            )
            raise Abandoned()

        async def before_send() -> bool:
            return await self._handed_over(row, None)

        text = chat_text(content, public_url=self.config.public_url)
        await self.chat.post(
            hook.url, text, allow_private_network=hook.allow_private_network, before_send=before_send
        )


def _outcome(status: OutboxStatus | None) -> str:
    """A recorded failure's status: PENDING (retried later) or FAILED; None when the row was not ours."""
    return status.value if status is not None else "unchanged"


def _ehlo_name(public_url: str) -> str | None:
    """The name we greet SMTP servers with: the public host, an address in brackets (RFC 5321 4.1.3)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(public_url).hostname
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]" if ":" not in host else f"[IPv6:{host}]"


def build_notifier(
    settings: Settings,
    services: Services,
    *,
    company_id: str | None = None,
    after_send: Callable[[], None] = _nothing,
) -> Notifier:
    """The notifier the settings describe: the server's and `budgetbridge worker`'s (and the crash test's)."""
    config = NotifyConfig.of(settings)
    mailer = None
    if settings.smtp_url:
        smtp = SmtpConfig.from_url(
            settings.smtp_url,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
            local_hostname=_ehlo_name(settings.public_url),
        )
        mailer = SmtpMailer(smtp)
    return Notifier(
        services,
        config,
        mailer=mailer,
        poll_seconds=settings.export_poll_seconds,
        company_id=company_id,
        after_send=after_send,
    )
