"""A subscriber that stops reading while the log grows is ended with a resumable reason, not buffered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from resolvers.context import Services
from resolvers.subscriptions import SubscriberTooSlowError, export_status_changed
from tests.erp.workflow import SEND, locked_with_one_line
from tests.support import make_tenant

RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code } } }"


class Immediate:
    """Wake-ups that ring at once: the stream re-reads the log on every wait."""

    @contextlib.asynccontextmanager
    async def listen(self, company_id: str) -> AsyncIterator[Immediate]:
        yield self

    async def wait(self, timeout: float) -> bool:
        return True


async def test_a_subscriber_too_far_behind_is_ended_with_where_to_resume(services: Services) -> None:
    tenant = await make_tenant(services)
    after = str(await locked_with_one_line(tenant))
    ctx = await tenant.context("approver")
    stream = export_status_changed(ctx, None, after, wakeups=Immediate(), reread_seconds=0.01, max_lag=3)
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    first = await anext(stream)
    assert first.status == "PENDING_ACCEPTANCE"
    for _ in range(3):  # the consumer reads nothing while six more events are written
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
        await tenant.ok("admin", SEND, b=tenant.budget_id)
    with pytest.raises(SubscriberTooSlowError) as ended:
        await anext(stream)
    assert ended.value.extensions == {"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": str(first.sequence)}
    await stream.aclose()
