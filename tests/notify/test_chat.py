"""Chat notifications against a local incoming-webhook receiver (uvicorn on 127.0.0.1, saved with
--allow-private-network): Slack- and Teams-compatible `{"text": ...}`, the same outbox, retries."""

from __future__ import annotations

import pytest

from erp import url_safety
from erp.url_safety import check_url
from resolvers import notifications
from resolvers.context import Services
from tests.erp.webhook_server import Reply, running_integrator
from tests.erp.workflow import add_line, lock_and_send
from tests.notify.support import PUBLIC_URL, notifier_for, outbox_of
from tests.notify.test_email import REJECT, project_of
from tests.support import make_tenant, now
from tests.waiting import eventually


async def test_the_chat_channel_hears_the_workflow_once_each_after_a_retry(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with running_integrator() as receiver:
        receiver.default = Reply(200, body=b"ok")
        receiver.reply(Reply(503, body=b"busy"))  # the first post fails: retried with backoff
        url = await check_url(receiver.url, allow_private_network=True)
        await notifications.set_chat_webhook(services, tenant.company_id, url, allow_private_network=True, at=now())
        notifier = notifier_for(tenant, None)  # no SMTP server: the emails are only recorded
        request_id = await lock_and_send(tenant)
        notifier.start()
        try:
            await receiver.wait_for_requests(2)

            async def delivered(count: int) -> bool:
                rows = await outbox_of(services, tenant.company_id)
                chat = [r for r in rows if r.channel == "CHAT"]
                settled = all(r.status not in ("PENDING", "SENDING") for r in rows)
                return settled and [r.status for r in chat] == ["SENT"] * count

            await eventually(lambda: delivered(1), timeout=20, what="the chat message to be recorded as sent")
            await tenant.ok("approver", REJECT, r=request_id, reason="Split <03-300> & resend")
            await receiver.wait_for_requests(3)
            await eventually(lambda: delivered(2), timeout=20, what="the second chat message to be recorded")
        finally:
            await notifier.stop()
    first, again, rejected = receiver.received
    assert first.body == again.body  # the same message, retried
    assert again.headers["content-type"] == "application/json"
    assert again.headers["user-agent"].startswith("BudgetBridge-Notifications/")
    link = f"{PUBLIC_URL}/requests/{request_id}"
    assert again.json == {
        "text": f"Budget waiting for approval: {project_of(tenant)} from Admin (Original budget (request #1), "
        f"1 line, original $1,200.00, changes $0.00).\n{link}"
    }
    assert rejected.json == {
        "text": f"Budget rejected by Approver: {project_of(tenant)}. Reason: Split &lt;03-300&gt; &amp; resend\n{link}"
    }
    rows = await outbox_of(services, tenant.company_id)
    chat = [r for r in rows if r.channel == "CHAT"]
    assert [(r.kind, r.status) for r in chat] == [("REQUEST_ARRIVED", "SENT"), ("REQUEST_REJECTED", "SENT")]
    assert chat[0].attempts == 2 and chat[0].last_error == "the chat webhook answered HTTP 503"  # not its body
    assert {r.status for r in rows if r.channel == "EMAIL"} == {"NOT_SENT_NO_SMTP"}


async def test_a_private_address_saved_without_permission_is_refused_at_delivery(services: Services) -> None:
    """Say a name was re-pointed at an internal address after it was checked: delivery checks again."""
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with running_integrator() as receiver:
        await notifications.set_chat_webhook(
            services, tenant.company_id, receiver.url.replace("http:", "https:"), allow_private_network=False, at=now()
        )
        notifier = notifier_for(tenant, None)
        await lock_and_send(tenant)
        assert await notifier.deliver_due() == 2
    assert receiver.received == []
    (chat,) = [r for r in await outbox_of(services, tenant.company_id) if r.channel == "CHAT"]
    assert chat.status == "FAILED" and chat.attempts == 1
    assert chat.last_error is not None and "non-public address (127.0.0.1)" in chat.last_error


async def test_a_name_re_pointed_between_the_check_and_the_connection_is_refused(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is public when delivery checks it and the loopback receiver a moment later, when
    the client would resolve it again. The connection goes only to the address checked, so it is refused."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    monkeypatch.setattr(url_safety, "resolve_host", rebinding)
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    async with running_integrator() as receiver:
        url = f"https://chat.example.com:{receiver.port}/hook"
        await notifications.set_chat_webhook(services, tenant.company_id, url, allow_private_network=False, at=now())
        await lock_and_send(tenant)
        assert await notifier_for(tenant, None).deliver_due() == 2
    assert receiver.received == []
    (chat,) = [r for r in await outbox_of(services, tenant.company_id) if r.channel == "CHAT"]
    assert chat.status == "FAILED" and chat.attempts == 1
    assert chat.last_error == (
        "the chat webhook URL is refused: the host 'chat.example.com' is a loopback, private, link-local or "
        "otherwise non-public address (127.0.0.1); use --allow-private-network if the server should call it anyway"
    )


async def test_a_chat_message_without_a_chat_channel_any_more_is_recorded_not_sent(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    await notifications.set_chat_webhook(
        services, tenant.company_id, "https://hooks.example.com/x", allow_private_network=False, at=now()
    )
    await lock_and_send(tenant)
    await notifications.set_chat_webhook(services, tenant.company_id, None, allow_private_network=False, at=now())
    assert await notifier_for(tenant, None).deliver_due() == 2
    (chat,) = [r for r in await outbox_of(services, tenant.company_id) if r.channel == "CHAT"]
    assert (chat.status, chat.last_error) == ("NOT_SENT_NO_CHAT", "the company has no chat channel any more")
