"""A worker process killed between the SMTP server's acceptance and our commit does not send the message twice:
the row was marked handed over (committed) just before DATA, so the restarted worker, finding it SENDING with
an expired lease, closes it as UNCONFIRMED instead of sending it again. A worker that died before handing a
message over leaves nothing delivered, and the restarted worker sends it (once).

The crashing worker is tests/notify/crashing_notifier.py: the `budgetbridge worker` of the settings, with the crash
hook injected right after the send; the restarted one is the real CLI."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from persistence.notification_records import NotificationRecord
from resolvers import notifications
from resolvers.context import Services
from tests.erp.test_exactly_once import worker_env
from tests.erp.workflow import add_line, lock_and_send
from tests.notify.crashing_notifier import CRASH_STATUS
from tests.notify.smtp_server import MailServer, running_smtp
from tests.notify.support import outbox_of
from tests.support import make_tenant, now
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


def env_for(services: Services, mail: MailServer) -> dict[str, str]:
    return worker_env(
        services.db.url,
        BUDGETBRIDGE_SMTP_URL=mail.url,
        BUDGETBRIDGE_SMTP_TIMEOUT_SECONDS="1",
        BUDGETBRIDGE_NOTIFY_LEASE_SECONDS=str(LEASE_SECONDS),
        BUDGETBRIDGE_NOTIFY_BACKOFF_SECONDS="0.1",
        BUDGETBRIDGE_DIGEST_HOUR="off",
        BUDGETBRIDGE_MAIL_FROM="BudgetBridge <budgets@example.com>",
        BUDGETBRIDGE_PUBLIC_URL="https://budgets.example.com",
    )


async def spawn(module: str, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def only_row(services: Services, company_id: str) -> NotificationRecord:
    (row,) = await outbox_of(services, company_id)
    return row


async def run_restarted_worker_until(services: Services, company_id: str, env: dict[str, str], status: str) -> None:
    restarted = await spawn("app.cli", "worker", "--company", company_id, env=env)
    try:
        # Another process that announces nothing to this one: poll the row (the suite's one polling helper).
        async def settled() -> bool:
            return (await only_row(services, company_id)).status == status

        await eventually(settled, timeout=30, what=f"the restarted worker to leave the notification {status}")
    finally:
        restarted.terminate()
        await asyncio.wait_for(restarted.wait(), 15)


async def test_a_worker_killed_after_the_smtp_server_accepted_does_not_send_twice(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    await lock_and_send(tenant)
    async with running_smtp() as mail:
        env = env_for(services, mail)
        crashing = await spawn("tests.notify.crashing_notifier", tenant.company_id, env=env)
        _, stderr = await asyncio.wait_for(crashing.communicate(), 60)
        assert crashing.returncode == CRASH_STATUS, stderr.decode()[-2000:]
        assert len(mail.received) == 1  # the server has it; we never recorded it
        row = await only_row(services, tenant.company_id)
        assert row.status == "SENDING" and row.handed_over_at is not None
        assert mail.received[0].message["Message-ID"] == row.message_id

        await run_restarted_worker_until(services, tenant.company_id, env, "UNCONFIRMED")
        assert len(mail.received) == 1  # not sent again
    row = await only_row(services, tenant.company_id)
    assert row.attempts == 2 and row.sent_at is None
    assert row.last_error is not None and "not sent again" in row.last_error


async def test_a_worker_that_died_before_handing_the_message_over_is_replaced_and_it_is_sent_once(
    services: Services,
) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    await lock_and_send(tenant)
    # A worker claims the row and dies before it reaches the SMTP server: the lease is all it leaves behind.
    claimed = await notifications.claim(services, now(), timedelta(seconds=LEASE_SECONDS), tenant.company_id)
    assert claimed is not None and claimed.handed_over_at is None
    async with running_smtp() as mail:
        await run_restarted_worker_until(services, tenant.company_id, env_for(services, mail), "SENT")
        assert len(mail.received) == 1 and mail.received[0].recipients == ["approver@example.com"]
    row = await only_row(services, tenant.company_id)
    assert row.attempts == 2
