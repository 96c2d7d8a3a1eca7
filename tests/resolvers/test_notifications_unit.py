"""Who gets what, on the fake unit of work: every writer's events become outbox rows in the same commit (through
`run_unit`), for exactly the right people; the schedules write each reminder and digest once; delivery steps
keep a row to the worker that holds it; settings."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.errors import ErrorCode
from domain.notifications import NotificationKind
from domain.status import ExportStatus, RequestAction
from persistence.notification_records import NotificationRecord
from persistence.unit_of_work import AbstractUnitOfWork, OutboxStatus
from resolvers import erp_requests, notifications
from resolvers.export_pipeline import RetryPolicy
from resolvers.service import run_unit
from tests.resolvers.service_support import T0, Shop, accepted, make_shop, refused

K = NotificationKind
LEASE = timedelta(seconds=60)


@pytest.fixture
def shop() -> Shop:
    shop = make_shop()
    shop.kicked = []  # type: ignore[attr-defined]
    shop.services.kick_notifications = lambda: shop.kicked.append(1)  # type: ignore[attr-defined]
    return shop


def outbox(shop: Shop) -> list[NotificationRecord]:
    rows = shop.store.state.notifications.values()
    return sorted((r for r in rows if r.company_id == shop.company.id), key=lambda r: (r.created_at, r.id))


def sent_to(shop: Shop, kind: K) -> list[str]:
    """The roles (or 'chat') a kind of notification was written for, sorted (rows of one commit share a time)."""
    roles = {u.id: role for role, u in shop.users.items()}
    return sorted(roles[r.recipient_id] if r.recipient_id else "chat" for r in outbox(shop) if r.kind == kind.value)


async def set_chat(shop: Shop) -> None:
    await notifications.set_chat_webhook(
        shop.services, shop.company.id, "https://hooks.example.com/T1", allow_private_network=False, at=T0
    )


async def opt_out(shop: Shop, role: str, *kinds: K) -> None:
    ctx = shop.ctx(role)
    accepted(await notifications.update_settings(ctx, dict.fromkeys(kinds, False)))


# --- events -> rows, in the writer's own commit ----------------------------------------------------------------


async def test_a_send_notifies_every_approver_who_may_decide_in_the_same_commit(shop: Shop) -> None:
    await shop.add_line("03-300", "L", "1200.00")
    await shop.add_line("05-120", "S", "45000.50")
    commits = shop.store.commits
    request_id = await shop.send()
    assert sent_to(shop, K.REQUEST_ARRIVED) == ["approver"]  # not the read-only approver, not the ERP admin
    assert shop.store.commits == commits + 2  # the lock and the send: the row came with the send's commit
    row = outbox(shop)[0]
    assert (row.channel, row.status, row.address, row.erp_request_id) == (
        "EMAIL",
        "PENDING",
        shop.users["approver"].email,
        request_id,
    )
    assert row.next_attempt_at == T0 and row.attempts == 0
    facts = row.payload["request"]
    assert facts["lineCount"] == 2
    assert (facts["totalOriginal"], facts["totalChanges"], facts["currency"]) == ("46200.50", "0.00", "USD")
    assert (facts["projectName"], facts["projectNumber"], facts["senderName"]) == ("Riverside MOB", "P-1", "Admin")
    assert (facts["kind"], facts["status"]) == ("CREATE_BUDGET", "PENDING_ACCEPTANCE")
    assert facts["budgetId"] == shop.budget_id
    assert shop.kicked == [1]  # type: ignore[attr-defined]


async def test_a_rejection_tells_the_sender_the_reason(shop: Shop) -> None:
    request_id = await shop.request_in(ExportStatus.PENDING_ACCEPTANCE)
    outcome = await erp_requests.decide_export(shop.ctx("approver"), request_id, "REJECT", " Split by building ", None)
    accepted(outcome)
    assert sent_to(shop, K.REQUEST_REJECTED) == ["admin"]
    row = next(r for r in outbox(shop) if r.kind == "REQUEST_REJECTED")
    assert row.payload["reason"] == "Split by building"
    assert row.payload["actorName"] == "Approver"
    assert row.payload["request"]["status"] == "REJECTED"


async def test_a_failed_export_tells_the_sender_and_the_approvers_with_the_message(shop: Shop) -> None:
    request_id = await shop.request_in(ExportStatus.EXPORTING)
    await shop.move(request_id, RequestAction.EXPORT_FAILED, reason="job 2026-014 is closed in the ERP")
    assert sent_to(shop, K.EXPORT_FAILED) == ["admin", "approver"]
    assert {r.payload["reason"] for r in outbox(shop) if r.kind == "EXPORT_FAILED"} == {
        "job 2026-014 is closed in the ERP"
    }


@pytest.mark.parametrize(
    "path", [[RequestAction.EXPORT_POSTED], [RequestAction.EXPORT_WRITTEN, RequestAction.CONFIRM_POSTING]]
)
async def test_synced_tells_the_sender(shop: Shop, path: list[RequestAction]) -> None:
    request_id = await shop.request_in(ExportStatus.EXPORTING)
    for action in path:
        await shop.move(request_id, action)
    assert sent_to(shop, K.REQUEST_SYNCED) == ["admin"]


async def test_steps_that_tell_nobody(shop: Shop) -> None:
    request_id = await shop.request_in(ExportStatus.PENDING_ACCEPTANCE)
    before = len(outbox(shop))
    await shop.accept(request_id)
    await shop.move(request_id, RequestAction.EXPORT_WRITTEN)
    assert len(outbox(shop)) == before


async def test_the_chat_channel_hears_the_same_events(shop: Shop) -> None:
    await set_chat(shop)
    request_id = await shop.request_in(ExportStatus.PENDING_ACCEPTANCE)
    await erp_requests.decide_export(shop.ctx("approver"), request_id, "REJECT", "No", None)
    assert sent_to(shop, K.REQUEST_ARRIVED) == ["approver", "chat"]
    assert sent_to(shop, K.REQUEST_REJECTED) == ["admin", "chat"]
    chat = [r for r in outbox(shop) if r.channel == "CHAT"]
    assert {(r.recipient_id, r.address) for r in chat} == {(None, None)}


async def test_who_turned_a_kind_off_gets_none_of_it(shop: Shop) -> None:
    await opt_out(shop, "approver", K.REQUEST_ARRIVED)
    await opt_out(shop, "admin", K.REQUEST_REJECTED)
    request_id = await shop.request_in(ExportStatus.PENDING_ACCEPTANCE)
    await erp_requests.decide_export(shop.ctx("approver"), request_id, "REJECT", "No", None)
    assert outbox(shop) == []
    assert shop.kicked == []  # type: ignore[attr-defined]


async def test_a_refused_or_replayed_mutation_writes_no_notification(shop: Shop) -> None:
    await shop.add_line()
    await shop.lock()
    first = accepted(await erp_requests.send_to_erp(shop.ctx("admin"), shop.budget_id, None, "send-1"))
    rows = outbox(shop)
    replay = accepted(await erp_requests.send_to_erp(shop.ctx("admin"), shop.budget_id, None, "send-1"))
    assert replay == first and outbox(shop) == rows
    await refused(
        shop,
        lambda: erp_requests.decide_export(shop.ctx("approver"), str(first.erp_request_id), "REJECT", "  ", None),
        ErrorCode.REASON_REQUIRED,
    )


# --- the schedules ---------------------------------------------------------------------------------------------


async def test_reminders_once_per_request_and_period(shop: Shop) -> None:
    await set_chat(shop)
    every = timedelta(hours=24)
    request_id = await shop.request_in(ExportStatus.AWAITING_POSTING)
    shop.set_request(request_id, exported_at=T0 - timedelta(hours=23))
    assert await notifications.plan_reminders(shop.services, T0, every) == 0
    shop.set_request(request_id, exported_at=T0 - timedelta(hours=25))
    assert await notifications.plan_reminders(shop.services, T0, every) == 2
    assert await notifications.plan_reminders(shop.services, T0 + timedelta(hours=10), every) == 0  # same period
    assert sent_to(shop, K.POSTING_REMINDER) == ["approver", "chat"]
    reminder = next(r for r in outbox(shop) if r.kind == "POSTING_REMINDER")
    assert reminder.erp_request_id == request_id and reminder.payload["waitingSeconds"] == 25 * 3600
    assert reminder.payload["request"]["exportedAt"] == (T0 - timedelta(hours=25)).isoformat()
    assert await notifications.plan_reminders(shop.services, T0 + timedelta(hours=24), every) == 2  # next period
    assert await notifications.plan_reminders(shop.services, T0 + timedelta(hours=48), every, "co_other") == 0
    await shop.move(request_id, RequestAction.CONFIRM_POSTING)
    assert await notifications.plan_reminders(shop.services, T0 + timedelta(hours=48), every) == 0  # synced


async def test_a_digest_per_approver_only_when_something_waits_once_a_day(shop: Shop) -> None:
    day = date(2024, 3, 1)
    assert await notifications.plan_digests(shop.services, day, T0) == 0
    await shop.request_in(ExportStatus.SYNCED)
    assert await notifications.plan_digests(shop.services, day, T0) == 0  # nothing waits
    other = make_shop(store=shop.store, name="Other Builders")
    pending = await other.request_in(ExportStatus.PENDING_ACCEPTANCE)
    assert await notifications.plan_digests(shop.services, day, T0) == 1
    assert await notifications.plan_digests(shop.services, day, T0) == 0
    digest = next(r for r in outbox(other) if r.kind == "DAILY_DIGEST")
    assert (digest.kind, digest.recipient_id) == ("DAILY_DIGEST", other.users["approver"].id)
    assert [r["requestId"] for r in digest.payload["waiting"]] == [pending]
    assert digest.payload["day"] == "2024-03-01"
    assert sent_to(shop, K.DAILY_DIGEST) == []
    assert await notifications.plan_digests(shop.services, day + timedelta(days=1), T0, other.company.id) == 1
    assert await notifications.plan_digests(shop.services, day + timedelta(days=2), T0, shop.company.id) == 0


# --- delivery steps ------------------------------------------------------------------------------------------------


async def one_pending(shop: Shop) -> NotificationRecord:
    await shop.request_in(ExportStatus.PENDING_ACCEPTANCE)
    (row,) = outbox(shop)
    return row


async def test_a_row_is_claimed_with_a_lease_and_recorded_sent(shop: Shop) -> None:
    row = await one_pending(shop)
    claimed = await notifications.claim(shop.services, T0, LEASE)
    assert claimed is not None and (claimed.id, claimed.status, claimed.attempts) == (row.id, "SENDING", 1)
    assert await notifications.claim(shop.services, T0, LEASE) is None  # leased
    assert await notifications.record_handed_over(shop.services, claimed, T0, "<m1@example.com>")
    await notifications.record_sent(shop.services, claimed, T0 + timedelta(seconds=1))
    stored = shop.store.state.notifications[row.id]
    assert (stored.status, stored.message_id, stored.sent_at) == ("SENT", "<m1@example.com>", T0 + timedelta(seconds=1))
    assert await notifications.claim(shop.services, T0 + timedelta(days=1), LEASE) is None  # never again


async def test_failures_are_retried_with_backoff_then_fail_with_the_reason(shop: Shop) -> None:
    row = await one_pending(shop)
    policy = RetryPolicy(max_attempts=2, base_seconds=10, cap_seconds=60)
    claimed = await notifications.claim(shop.services, T0, LEASE)
    assert claimed is not None
    status = await notifications.record_failure(
        shop.services, claimed, T0, "connection refused", retryable=True, policy=policy
    )
    stored = shop.store.state.notifications[row.id]
    assert status is OutboxStatus.PENDING and stored.last_error == "connection refused"
    assert T0 + timedelta(seconds=5) <= stored.next_attempt_at <= T0 + timedelta(seconds=10)
    assert await notifications.claim(shop.services, T0 + timedelta(seconds=4), LEASE) is None  # backing off
    again = await notifications.claim(shop.services, T0 + timedelta(seconds=11), LEASE)
    assert again is not None and again.attempts == 2
    status = await notifications.record_failure(
        shop.services, again, T0, "still refused", retryable=True, policy=policy
    )
    stored = shop.store.state.notifications[row.id]
    assert status is OutboxStatus.FAILED and (stored.status, stored.last_error) == ("FAILED", "still refused")


async def test_a_permanent_refusal_fails_at_once(shop: Shop) -> None:
    await one_pending(shop)
    claimed = await notifications.claim(shop.services, T0, LEASE)
    assert claimed is not None
    status = await notifications.record_failure(
        shop.services, claimed, T0, "550 no such user", retryable=False, policy=RetryPolicy()
    )
    assert status is OutboxStatus.FAILED


async def test_a_row_whose_worker_died_before_handing_it_over_is_sent_again(shop: Shop) -> None:
    row = await one_pending(shop)
    assert await notifications.claim(shop.services, T0, LEASE) is not None  # ... and the worker dies
    again = await notifications.claim(shop.services, T0 + LEASE + timedelta(seconds=1), LEASE)
    assert again is not None and (again.id, again.attempts) == (row.id, 2)


async def test_a_row_whose_worker_died_after_handing_it_over_is_never_sent_again(shop: Shop) -> None:
    row = await one_pending(shop)
    claimed = await notifications.claim(shop.services, T0, LEASE)
    assert claimed is not None
    await notifications.record_handed_over(shop.services, claimed, T0, "<m@example.com>")  # ... and it dies
    assert await notifications.claim(shop.services, T0 + LEASE + timedelta(seconds=1), LEASE) is None
    stored = shop.store.state.notifications[row.id]
    assert stored.status == "UNCONFIRMED" and "not sent again" in (stored.last_error or "")


async def test_a_worker_overtaken_after_its_lease_records_nothing(shop: Shop) -> None:
    row = await one_pending(shop)
    slow = await notifications.claim(shop.services, T0, LEASE)
    fast = await notifications.claim(shop.services, T0 + LEASE + timedelta(seconds=1), LEASE)
    assert slow is not None and fast is not None
    assert not await notifications.record_handed_over(shop.services, slow, T0, "<m@example.com>")
    await notifications.record_sent(shop.services, slow, T0)
    assert shop.store.state.notifications[row.id].status == "SENDING"  # still the fast worker's
    await notifications.record_not_sent(shop.services, fast, T0, OutboxStatus.NOT_SENT_NO_SMTP, "no SMTP")
    stored = shop.store.state.notifications[row.id]
    assert (stored.status, stored.last_error, stored.sent_at) == ("NOT_SENT_NO_SMTP", "no SMTP", None)


# --- settings --------------------------------------------------------------------------------------------------


async def test_settings_are_the_viewers_own_and_change_per_kind(shop: Shop) -> None:
    ctx = shop.ctx("approver")
    assert (await notifications.settings_of(ctx)).opted_out == frozenset()
    accepted(await notifications.update_settings(ctx, {K.DAILY_DIGEST: False, K.REQUEST_ARRIVED: False}))
    accepted(await notifications.update_settings(ctx, {K.REQUEST_ARRIVED: True}))
    assert (await notifications.settings_of(ctx)).opted_out == {K.DAILY_DIGEST}
    assert (await notifications.settings_of(shop.ctx("admin"))).opted_out == frozenset()


async def test_an_explicit_null_is_refused_and_changes_nothing(shop: Shop) -> None:
    outcome = await refused(
        shop,
        lambda: notifications.update_settings(shop.ctx("approver"), {K.DAILY_DIGEST: False, K.EXPORT_FAILED: None}),
        ErrorCode.VALIDATION_FAILED,
        field=["input", "exportFailed"],
    )
    assert outcome.errors[0].message == "must be true or false"


async def test_a_chat_channel_needs_an_existing_company(shop: Shop) -> None:
    with pytest.raises(Exception, match="not found"):
        await notifications.set_chat_webhook(
            shop.services, "co_missing", "https://x.test/", allow_private_network=False, at=T0
        )

    async def read(uow: AbstractUnitOfWork) -> object:
        return await uow.notification_context.chat_webhook(shop.company.id)

    assert await run_unit(shop.services, read) is None
    await set_chat(shop)
    await notifications.set_chat_webhook(shop.services, shop.company.id, None, allow_private_network=False, at=T0)
    assert await run_unit(shop.services, read) is None


async def test_a_row_whose_workers_keep_dying_before_the_hand_over_fails_after_the_attempts(shop: Shop) -> None:
    row = await one_pending(shop)
    at = T0
    for attempt in (1, 2):
        claimed = await notifications.claim(shop.services, at, LEASE, max_attempts=2)
        assert claimed is not None and claimed.attempts == attempt  # ... and its worker dies each time
        at += LEASE + timedelta(seconds=1)
    assert await notifications.claim(shop.services, at, LEASE, max_attempts=2) is None
    stored = shop.store.state.notifications[row.id]
    assert stored.status == "FAILED" and "gave up after 2 attempts" in (stored.last_error or "")
