"""Notifications by email against a real SMTP server (aiosmtpd on 127.0.0.1, started by the test): the workflow
through the real schema and database, the outbox delivered by the notifier, the received MIME parsed."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from app import admin
from app.export_worker import ExportWorker
from persistence.unit_of_work import OutboxStatus
from resolvers import export_pipeline, notifications
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.workflow import LOCK, SEND, UNLOCK, accept, add_line, lock_and_send, request
from tests.notify.smtp_server import Mail, MailServer, reserved_socket, running_smtp
from tests.notify.support import MAIL_FROM, PUBLIC_URL, notifier_for, outbox_of
from tests.support import Tenant, make_tenant, now
from tests.waiting import cancel_until_done, eventually

REJECT = """mutation($r: ID!, $reason: String) {
  decideExport(input: {erpRequestId: $r, decision: REJECT, reason: $reason})
  { erpRequest { status } userErrors { code message } } }"""
RETRY = "mutation($r: ID!) { retryExport(input: {erpRequestId: $r}) { erpRequest { status } userErrors { code } } }"
SETTINGS = """mutation($i: UpdateNotificationSettingsInput!) { updateNotificationSettings(input: $i) {
  notificationSettings { requestArrived requestRejected exportFailed postingReminder requestSynced dailyDigest }
  userErrors { code message field } } }"""


def project_of(tenant: Tenant) -> str:
    return f"Riverside MOB (P-{tenant.company_id[-6:]})"


def addresses(mails: list[Mail]) -> list[str]:
    return sorted(a for m in mails for a in m.recipients)


async def test_each_event_reaches_exactly_the_right_people_with_content_and_links(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    await add_line(tenant, "05-120", "S", "1237750.00")
    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port)

        # sent: every approver who may decide (not the read-only approver, not the ERP admin)
        first = await lock_and_send(tenant)
        assert await notifier.deliver_due() == 1
        (arrived,) = mail.received
        assert (arrived.mail_from, arrived.recipients) == ("budgets@example.com", ["approver@example.com"])
        message = arrived.message
        assert message["From"] == MAIL_FROM and message["To"] == "Approver <approver@example.com>"
        assert arrived.subject == f"Budget waiting for your approval: {project_of(tenant)}"
        assert message["Auto-Submitted"] == "auto-generated"
        link = f"{PUBLIC_URL}/requests/{first}"
        text = arrived.text
        for expected in (
            "Hello Approver,",
            "Admin sent a budget to the ERP Integrations queue of Test Builders. It waits for your decision.",
            f"Project           {project_of(tenant)}",
            "Kind              Original budget (request #1)",
            "Lines             2",
            "Original budget   $1,238,950.00",
            "Budget changes    $0.00",
            "Revised estimate  $1,238,950.00",
            f"Review it, then accept or reject it:\n{link}\n",
        ):
            assert expected in text, f"{expected!r} not in:\n{text}"
        page = arrived.html
        assert f'<a href="{link}">' in page and "$1,238,950.00" in page and "Riverside MOB" in page
        (row,) = await outbox_of(services, tenant.company_id)
        assert message["Message-ID"] == f"<{row.id}@example.com>" == row.message_id
        assert (row.status, row.attempts, row.sent_at is not None) == ("SENT", 1, True)

        # rejected: the sender, with the reason (escaped in HTML)
        reason = "Split <b>03-300</b> by building & send again"
        await tenant.ok("approver", REJECT, r=first, reason=reason)
        assert await notifier.deliver_due() == 1
        rejected = mail.received[1]
        assert rejected.recipients == ["admin@example.com"]
        assert rejected.subject == f"Budget rejected: {project_of(tenant)}"
        assert f"was rejected by Approver.\n\nReason:\n  {reason}\n" in rejected.text
        assert html.escape(reason) in rejected.html and "<b>03-300</b>" not in rejected.html
        budget_link = f"{PUBLIC_URL}/budgets/{tenant.budget_id}"
        assert f"Change the budget and send it again:\n{budget_link}\n" in rejected.text
        assert f'<a href="{budget_link}">' in rejected.html

        # sent again, accepted (nobody is told), the export fails: the sender and the approvers
        for step in (UNLOCK, LOCK):
            await tenant.ok("admin", step, b=tenant.budget_id)
        second = str((await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"])
        await accept(tenant, second)
        assert await notifier.deliver_due() == 1 and mail.received[2].recipients == ["approver@example.com"]
        job = await export_pipeline.claim(services, now(), RetryPolicy(), tenant.company_id)
        assert job is not None
        await export_pipeline.record_failure(
            services, job, now(), "the ERP refused: job is closed", retryable=False, policy=RetryPolicy()
        )
        assert await notifier.deliver_due() == 2
        failed = mail.received[3:5]
        assert addresses(failed) == ["admin@example.com", "approver@example.com"]
        for each in failed:
            assert each.subject == f"Export to the ERP failed: {project_of(tenant)}"
            assert "The ERP connector said:\n  the ERP refused: job is closed\n" in each.text
            assert f"{PUBLIC_URL}/requests/{second}" in each.text

        # retried and exported for real (nobody is told), then posted in Job Cost: the sender
        await tenant.ok("approver", RETRY, r=second)
        worker = ExportWorker(services, company_id=tenant.company_id, timeout_seconds=5)
        assert await worker.run_next_job()
        assert (await request(tenant, second))["status"] == "AWAITING_POSTING"
        assert await notifier.deliver_due() == 0
        async with services.db.unit_of_work() as uow:
            await admin.post_embedded_entries(uow, second)
            await uow.commit()
        await worker.detect_posting()
        assert await notifier.deliver_due() == 1
        synced = mail.received[5]
        assert synced.recipients == ["admin@example.com"]
        assert synced.subject == f"Budget synced to the ERP: {project_of(tenant)}"
        assert "the ERP has posted its entries in Job Cost" in synced.text
        assert re.search(r"ERP reference\s+\S+", synced.text)

    assert len(mail.received) == 6  # nobody else, nothing twice
    rows = await outbox_of(services, tenant.company_id)
    assert [r.status for r in rows] == ["SENT"] * 6
    assert len({r.message_id for r in rows}) == 6


async def test_who_turned_a_kind_off_gets_nothing_and_settings_are_the_viewers_own(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    data = await tenant.ok("approver", SETTINGS, i={"requestArrived": False, "dailyDigest": False})
    assert data["updateNotificationSettings"]["notificationSettings"] == {
        "requestArrived": False,
        "requestRejected": True,
        "exportFailed": True,
        "postingReminder": True,
        "requestSynced": True,
        "dailyDigest": False,
    }
    again = await tenant.ok("approver", SETTINGS, i={"dailyDigest": True})
    assert again["updateNotificationSettings"]["notificationSettings"]["requestArrived"] is False  # unchanged
    viewer = await tenant.ok("approver", "{ viewer { notificationSettings { requestArrived dailyDigest } } }")
    assert viewer["viewer"]["notificationSettings"] == {"requestArrived": False, "dailyDigest": True}
    someone_else = await tenant.ok(
        "approver", "query($u: ID!) { node(id: $u) { ... on User { notificationSettings { requestArrived } } } }",
        u=tenant.users["admin"],
    )
    assert someone_else["node"] == {"notificationSettings": None}
    refused = await tenant.execute("approver", SETTINGS, i={"exportFailed": None})
    assert refused.errors is None and refused.data is not None
    assert refused.data["updateNotificationSettings"] == {
        "notificationSettings": None,
        "userErrors": [
            {"code": "VALIDATION_FAILED", "message": "must be true or false", "field": ["input", "exportFailed"]}
        ],
    }

    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port)
        await lock_and_send(tenant)
        assert await notifier.deliver_due() == 0
    assert mail.received == []
    assert await outbox_of(services, tenant.company_id) == []


async def test_the_smtp_server_down_then_up_delivers_once_after_the_retry(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    sock = reserved_socket()  # nothing listens: connections are refused
    port = int(sock.getsockname()[1])
    await lock_and_send(tenant)
    # The first pass on a stopped clock: with the real one, a loaded machine may pass the 50 ms backoff before
    # deliver_due looks again, and it would (rightly) try a second time in the same pass.
    stopped = datetime.now(UTC)
    assert await notifier_for(tenant, port, clock=lambda: stopped).deliver_due() == 1
    (row,) = await outbox_of(services, tenant.company_id)
    assert (row.status, row.attempts) == ("PENDING", 1)
    assert row.last_error is not None and f"could not deliver to the SMTP server at 127.0.0.1:{port}" in row.last_error
    assert row.handed_over_at is None and row.next_attempt_at > row.created_at

    notifier = notifier_for(tenant, port)
    notifier.start()  # keeps trying with backoff
    try:
        async with running_smtp(sock=sock) as mail:
            await mail.wait_for(1)

            async def recorded() -> bool:
                rows = await outbox_of(services, tenant.company_id)
                return rows[0].status == "SENT"

            await eventually(recorded, timeout=20, what="the notifier to record the delivery")
            assert await notifier.deliver_due() == 0  # nothing is due any more
    finally:
        await notifier.stop()
        assert notifier._task is None or await cancel_until_done(notifier._task)
    assert len(mail.received) == 1 and mail.received[0].recipients == ["approver@example.com"]
    (row,) = await outbox_of(services, tenant.company_id)
    assert row.status == "SENT" and row.attempts >= 2
    assert row.last_error is not None  # the reason of the failed attempt stays on record


async def test_a_refused_recipient_fails_at_once_with_the_servers_reply(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    server = MailServer(refuse_recipients={"approver@example.com": "550 5.1.1 mailbox unavailable"})
    async with running_smtp(server) as mail:
        notifier = notifier_for(tenant, mail.port)
        await lock_and_send(tenant)
        assert await notifier.deliver_due() == 1
        assert await notifier.deliver_due() == 0
    assert mail.received == []
    (row,) = await outbox_of(services, tenant.company_id)
    assert (row.status, row.attempts) == ("FAILED", 1)
    assert row.last_error == "the SMTP server refused the recipient: 550 5.1.1 mailbox unavailable"


async def test_without_an_smtp_server_nothing_is_sent_and_the_outbox_says_what_would_have_been(
    services: Services,
) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    notifier = notifier_for(tenant, None)
    request_id = await lock_and_send(tenant)
    assert await notifier.deliver_due() == 1
    (row,) = await outbox_of(services, tenant.company_id)
    assert (row.status, row.kind, row.address, row.erp_request_id) == (
        OutboxStatus.NOT_SENT_NO_SMTP.value,
        "REQUEST_ARRIVED",
        "approver@example.com",
        request_id,
    )
    assert row.last_error == "no SMTP server is configured (set BUDGETBRIDGE_SMTP_URL to send email)"
    assert row.payload["request"]["totalOriginal"] == "1200.00"
    assert await notifier.deliver_due() == 0


async def test_a_digest_with_nothing_waiting_sends_nothing(services: Services) -> None:
    tenant = await make_tenant(services)
    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port, digest_hour=0)
        assert await notifier.digest_now() == 0
        await notifier.run_schedules(now())
        assert await notifier.deliver_due() == 0
    assert mail.received == []
    assert await outbox_of(services, tenant.company_id) == []


async def test_the_daily_digest_lists_what_waits_once_a_day(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port, digest_hour=0)
        request_id = await lock_and_send(tenant)
        assert await notifier.deliver_due() == 1  # the arrival
        await notifier.run_schedules(now())  # the configured hour (0:00 UTC) has come
        await notifier.run_schedules(now())
        assert await notifier.digest_now() == 0  # once a day
        assert await notifier.deliver_due() == 1
    digest = mail.received[1]
    assert digest.recipients == ["approver@example.com"]
    assert re.fullmatch(r"BudgetBridge daily digest \d{4}-\d\d-\d\d: 1 request waiting", digest.subject)
    assert "Waiting for a decision (1)" in digest.text
    assert f"  - {project_of(tenant)}: Original budget (request #1), 1 line, original $1,200.00" in digest.text
    assert f"{PUBLIC_URL}/requests/{request_id}" in digest.text
    assert f"Open the queue:\n{PUBLIC_URL}/\n" in digest.text
    assert f'<a href="{PUBLIC_URL}/requests/{request_id}">' in digest.html


async def test_a_posting_reminder_goes_to_the_approvers_once_per_period(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    later = now() + timedelta(hours=26)
    async with running_smtp() as mail:
        notifier = notifier_for(tenant, mail.port, clock=lambda: later)
        request_id = await lock_and_send(tenant)
        await accept(tenant, request_id)
        worker = ExportWorker(services, company_id=tenant.company_id, timeout_seconds=5)
        assert await worker.run_next_job()
        assert await notifier.deliver_due() == 1  # the arrival
        every = timedelta(hours=24)
        assert await notifications.plan_reminders(services, later, every, tenant.company_id) == 1
        assert await notifications.plan_reminders(services, later + timedelta(hours=1), every, tenant.company_id) == 0
        assert await notifier.deliver_due() == 1
    reminder = mail.received[1]
    assert reminder.recipients == ["approver@example.com"]
    assert reminder.subject.startswith("Reminder: awaiting posting for 1 day 1")
    assert "The budget cannot be unlocked until the entries are posted." in reminder.text
    assert f"Post the entries in Job Cost, or confirm the posting:\n{PUBLIC_URL}/requests/{request_id}" in reminder.text


async def test_a_disabled_user_is_sent_nothing(services: Services) -> None:
    from app import admin

    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with services.db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, tenant.users["approver"], True, datetime.now(UTC))
        await uow.commit()
    await lock_and_send(tenant)  # the approver would be told a request arrived
    assert [row.address for row in await outbox_of(services, tenant.company_id)] == []
    async with services.db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, tenant.users["approver"], False, datetime.now(UTC))
        await uow.commit()
    await tenant.ok("admin", "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code } } }",
                    b=tenant.budget_id)
    await tenant.ok("admin", "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { userErrors { code } } }",
                    b=tenant.budget_id)  # still locked: the same budget again
    assert "approver@example.com" in [row.address for row in await outbox_of(services, tenant.company_id)]
