"""The Subscription root."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Optional

import strawberry

from resolvers import subscriptions
from schema.common import Ctx, described_subscription
from schema.events import BudgetEvent


@strawberry.type
class Subscription:
    @described_subscription(
        "Every export status change the viewer may see: of one project when projectId is given, else "
        "of the whole company (approver dashboards). With `after`, first replays every event after that sequence, "
        "in order, then goes live — no event is lost or repeated across a reconnect."
    )
    async def export_status_changed(
        self, info: Ctx, project_id: Optional[strawberry.ID] = None, after: Optional[str] = None
    ) -> AsyncGenerator[BudgetEvent, None]:
        services = info.context.services
        stream = subscriptions.export_status_changed(
            info.context,
            str(project_id) if project_id is not None else None,
            after,
            wakeups=services.live,
            reread_seconds=services.live_reread_seconds,
            max_lag=services.max_subscriber_lag,
            tails=services.event_tails,
        )
        async for event in stream:
            yield BudgetEvent.from_record(event)
