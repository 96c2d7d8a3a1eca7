"""The Subscription root."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Optional

import strawberry

from resolvers import subscriptions
from schema.common import Ctx, described_subscription
from schema.events import BudgetEvent


@strawberry.type(
    description="Live streams over WebSocket on /graphql (graphql-transport-ws, or the legacy graphql-ws), "
    'authenticated by {"authorization": "Bearer <token>"} in the connection_init payload.'
)
class Subscription:
    @described_subscription(
        "Every export status change the viewer may see: of one project when projectId is given, else "
        "of the whole company (approver dashboards). With `after`, first replays every event after that sequence, "
        "in order, then goes live — no event is lost or repeated across a reconnect. Only events that move a "
        "status (previousStatus differs from status) are delivered. A subscriber that falls too far behind gets an "
        "error SUBSCRIBER_TOO_SLOW with extensions.resumeAfter, and the stream ends: subscribe again with it."
    )
    async def export_status_changed(
        self,
        info: Ctx,
        project_id: Annotated[
            Optional[strawberry.ID],
            strawberry.argument(description="Only this project's events; null: every project the viewer can see."),
        ] = None,
        after: Annotated[
            Optional[str],
            strawberry.argument(
                description="The last BudgetEvent.sequence you saw: replay what came after it first. null: live "
                "from now. Anything but a sequence number is BAD_USER_INPUT."
            ),
        ] = None,
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
            root_of=BudgetEvent.from_record,
        )
        async for event in stream:
            yield BudgetEvent.from_record(event)
