"""Notifications, the service side: each step of delivering an outbox row is one unit of work, as are the
schedules (reminders, digests), a user's settings and a company's chat channel.

Delivery of one row (app.notifier drives it):
1. `claim` leases the next due row (SENDING, one more attempt). A row whose previous worker died after
   handing the message over is not sent again: it becomes UNCONFIRMED (it was most likely delivered; a second
   copy is what we promise not to send).
2. `record_handed_over` commits, just before the message leaves (before SMTP DATA, before the webhook POST),
   that from now on it may have been delivered.
3. `record_sent`, `record_failure` (retried with backoff while attempts are left, else FAILED with the
   reason) or `record_not_sent` (no SMTP server, no chat channel).
Each of 2 and 3 checks that the row is still the caller's (SENDING, same attempt): a worker whose lease ran
out and was overtaken records nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta

from domain import notifications as nt
from domain.errors import ConcurrentChangeError, DomainError, ErrorCode, NotFoundError
from persistence.notification_records import ChatWebhookRecord, NotificationRecord
from persistence.unit_of_work import AbstractUnitOfWork, OutboxStatus
from resolvers.context import Context, Services
from resolvers.export_pipeline import RetryPolicy
from resolvers.notification_planning import digests_in, reminders_in
from resolvers.service import Changed, Outcome, run_mutation, run_unit

log = logging.getLogger("budgetbridge.notifications")

UNCONFIRMED_MESSAGE = (
    "the worker stopped after handing the message over and before recording the outcome; it was most likely "
    "delivered and is not sent again"
)

# --- delivery -----------------------------------------------------------------------------------------------


async def claim(
    services: Services, now: datetime, lease: timedelta, company_id: str | None = None, *, max_attempts: int = 8
) -> NotificationRecord | None:
    """The next row to send, leased to the caller; None when nothing is due. A row whose workers keep dying
    while sending it (a poison message) fails after `max_attempts` claims instead of being tried forever."""

    async def body(uow: AbstractUnitOfWork) -> NotificationRecord | None:
        while True:
            row = await uow.notifications.claim(now, lease, company_id)
            if row is None:
                return None
            if row.handed_over_at is not None:
                log.warning("notification %s: %s", row.id, UNCONFIRMED_MESSAGE)
                await uow.notifications.finish(row.id, OutboxStatus.UNCONFIRMED, now, UNCONFIRMED_MESSAGE)
            elif row.attempts > max_attempts:
                message = f"gave up after {max_attempts} attempts (the last ones stopped before an outcome)"
                log.warning("notification %s: %s", row.id, message)
                await uow.notifications.finish(row.id, OutboxStatus.FAILED, now, message)
            else:
                return row

    return await run_unit(services, body)


async def _mine(uow: AbstractUnitOfWork, row: NotificationRecord) -> bool:
    current = await uow.notifications.get(row.id)
    mine = (
        current is not None and current.status == OutboxStatus.SENDING.value and current.attempts == row.attempts
    )
    if not mine:
        log.warning("notification %s was taken over by another worker; not recording attempt %d", row.id, row.attempts)
    return mine


async def record_handed_over(services: Services, row: NotificationRecord, at: datetime, message_id: str | None) -> bool:
    """Whether the row is still ours to send (it is marked handed over when it is)."""

    async def body(uow: AbstractUnitOfWork) -> bool:
        if not await _mine(uow, row):
            return False
        await uow.notifications.hand_over(row.id, at, message_id)
        return True

    return await run_unit(services, body)


async def record_sent(services: Services, row: NotificationRecord, at: datetime) -> None:
    async def body(uow: AbstractUnitOfWork) -> None:
        if await _mine(uow, row):
            await uow.notifications.finish(row.id, OutboxStatus.SENT, at)

    await run_unit(services, body)


async def record_failure(
    services: Services, row: NotificationRecord, at: datetime, error: str, *, retryable: bool, policy: RetryPolicy
) -> OutboxStatus | None:
    """PENDING again after a backoff while attempts are left and the failure may pass; FAILED otherwise."""
    retry_at = at + policy.backoff(row.attempts) if retryable and row.attempts < policy.max_attempts else None

    async def body(uow: AbstractUnitOfWork) -> OutboxStatus | None:
        if not await _mine(uow, row):
            return None
        if retry_at is not None:
            await uow.notifications.retry(row.id, at, retry_at, error)
            return OutboxStatus.PENDING
        await uow.notifications.finish(row.id, OutboxStatus.FAILED, at, error)
        return OutboxStatus.FAILED

    return await run_unit(services, body)


async def record_not_sent(
    services: Services, row: NotificationRecord, at: datetime, status: OutboxStatus, reason: str
) -> None:
    async def body(uow: AbstractUnitOfWork) -> None:
        if await _mine(uow, row):
            await uow.notifications.finish(row.id, status, at, reason)

    await run_unit(services, body)


async def close_undeliverable(
    services: Services, now: datetime, channel: str, status: OutboxStatus, reason: str, company_id: str | None = None
) -> int:
    """Close every due row of a channel that has nowhere to go (no SMTP server), in one statement."""

    async def body(uow: AbstractUnitOfWork) -> int:
        return await uow.notifications.close_due(now, channel, status, reason, company_id)

    return await run_unit(services, body)


async def chat_webhook(services: Services, company_id: str) -> ChatWebhookRecord | None:
    async def body(uow: AbstractUnitOfWork) -> ChatWebhookRecord | None:
        return await uow.notification_context.chat_webhook(company_id)

    return await run_unit(services, body)


async def outbox(services: Services, company_id: str) -> list[NotificationRecord]:
    async def body(uow: AbstractUnitOfWork) -> list[NotificationRecord]:
        return await uow.notifications.of_company(company_id)

    return await run_unit(services, body)


# --- schedules ------------------------------------------------------------------------------------------------


async def plan_reminders(services: Services, now: datetime, every: timedelta, company_id: str | None = None) -> int:
    """Write the posting reminders due now (each request once per period). Another worker writing the same
    reminders at the same moment wins; this one then writes nothing."""

    async def body(uow: AbstractUnitOfWork) -> int:
        return await reminders_in(uow, now, every, company_id)

    return await _scheduled(services, body, "posting reminders")


async def plan_digests(services: Services, day: date, now: datetime, company_id: str | None = None) -> int:
    """Write the digests of `day` for every approver of a company where something waits (once per day)."""

    async def body(uow: AbstractUnitOfWork) -> int:
        return await digests_in(uow, day, now, company_id)

    return await _scheduled(services, body, "daily digests")


async def _scheduled(services: Services, body: Callable[[AbstractUnitOfWork], Awaitable[int]], what: str) -> int:
    async def unit(uow: AbstractUnitOfWork) -> int:
        written = await body(uow)
        if written:
            uow.after_commit(services.kick_notifications)
        return written

    try:
        return await run_unit(services, unit)
    except ConcurrentChangeError:
        log.info("%s were written by another worker meanwhile", what)
        return 0


# --- a user's settings -------------------------------------------------------------------------------------


async def settings_of(ctx: Context) -> nt.NotificationSettings:
    """The viewer's notification settings."""
    user_id = ctx.actor.user_id

    async def body(uow: AbstractUnitOfWork) -> nt.NotificationSettings:
        return _settings(await uow.notification_context.opted_out(user_id))

    return await run_unit(ctx.services, body)


def _settings(opted_out: frozenset[str]) -> nt.NotificationSettings:
    known = {k.value: k for k in nt.NotificationKind}
    return nt.NotificationSettings(frozenset(known[k] for k in opted_out if k in known))


async def update_settings(ctx: Context, changes: Mapping[nt.NotificationKind, bool | None]) -> Outcome:
    """Turn kinds on or off for the viewer; kinds not named stay as they are. An explicit null is refused."""
    refused = [
        DomainError(ErrorCode.VALIDATION_FAILED, "must be true or false", ["input", _field(kind)])
        for kind, on in changes.items()
        if on is None
    ]
    if refused:
        return Outcome(errors=refused)
    user_id = ctx.actor.user_id

    async def body(uow: AbstractUnitOfWork) -> Changed:
        await uow.notification_context.set_preferences(user_id, {k.value: bool(v) for k, v in changes.items()})
        return Changed()

    return await run_mutation(ctx, "updateNotificationSettings", body)


def _field(kind: nt.NotificationKind) -> str:
    head, *rest = kind.value.lower().split("_")
    return head + "".join(part.title() for part in rest)


# --- a company's chat channel --------------------------------------------------------------------------------


async def set_chat_webhook(
    services: Services, company_id: str, url: str | None, *, allow_private_network: bool, at: datetime
) -> None:
    """Save (or with None remove) the company's incoming-webhook URL. The URL's safety is the caller's check
    (erp.url_safety), made before this is called."""

    async def body(uow: AbstractUnitOfWork) -> None:
        if await uow.companies.get(company_id) is None:
            raise NotFoundError(f"company {company_id}")
        await uow.notification_context.set_chat_webhook(company_id, url, allow_private_network, at)

    await run_unit(services, body)
