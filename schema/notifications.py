"""A user's notification settings: one Boolean per kind of notification, the viewer's own only."""

from __future__ import annotations

from typing import Optional

import strawberry

from domain import notifications as nt
from resolvers import notifications
from resolvers.context import Context
from schema.common import UserError, user_errors, user_errors_field

# The GraphQL field of each kind (requestArrived is REQUEST_ARRIVED, ...), in the order they are listed.
KIND_FIELDS = {kind: kind.value.lower() for kind in nt.KINDS}

_ON = {
    nt.NotificationKind.REQUEST_ARRIVED: (
        "Email when a budget arrives in the ERP Integrations queue (accounting approvers with ERP Integrations "
        "Standard or Admin): project, sender, kind, lines, totals and a link."
    ),
    nt.NotificationKind.REQUEST_REJECTED: "Email when a request you sent is rejected, with the approver's reason.",
    nt.NotificationKind.EXPORT_FAILED: (
        "Email when the export of a request fails, with the ERP connector's message (the sender and the "
        "approvers)."
    ),
    nt.NotificationKind.POSTING_REMINDER: (
        "Email reminder to the approvers while an exported request awaits posting in Job Cost for longer than "
        "the server's reminder period (once per request per period)."
    ),
    nt.NotificationKind.REQUEST_SYNCED: "Email when a request you sent is synced (posted in Job Cost).",
    nt.NotificationKind.DAILY_DIGEST: (
        "A daily email to approvers of what waits (pending decisions, failed exports, exports awaiting "
        "posting), sent only when something waits."
    ),
}


@strawberry.type(description="Which notifications a user receives by email. Each kind is on unless turned off.")
class NotificationSettings:
    request_arrived: bool = strawberry.field(description=_ON[nt.NotificationKind.REQUEST_ARRIVED])
    request_rejected: bool = strawberry.field(description=_ON[nt.NotificationKind.REQUEST_REJECTED])
    export_failed: bool = strawberry.field(description=_ON[nt.NotificationKind.EXPORT_FAILED])
    posting_reminder: bool = strawberry.field(description=_ON[nt.NotificationKind.POSTING_REMINDER])
    request_synced: bool = strawberry.field(description=_ON[nt.NotificationKind.REQUEST_SYNCED])
    daily_digest: bool = strawberry.field(description=_ON[nt.NotificationKind.DAILY_DIGEST])

    @classmethod
    def of(cls, settings: nt.NotificationSettings) -> NotificationSettings:
        return cls(**{name: settings.enabled(kind) for kind, name in KIND_FIELDS.items()})


_CHANGE = "true turns it on, false off; omitted: unchanged."


@strawberry.input(description="The kinds to turn on or off; the kinds not named stay as they are.")
class UpdateNotificationSettingsInput:
    request_arrived: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)
    request_rejected: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)
    export_failed: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)
    posting_reminder: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)
    request_synced: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)
    daily_digest: Optional[bool] = strawberry.field(default=strawberry.UNSET, description=_CHANGE)


@strawberry.type(description="The outcome of updateNotificationSettings.")
class NotificationSettingsPayload:
    notification_settings: Optional[NotificationSettings] = strawberry.field(
        description="The viewer's settings after the change; null when refused."
    )
    user_errors: list[UserError] = user_errors_field()


async def viewer_settings(ctx: Context) -> NotificationSettings:
    return NotificationSettings.of(await notifications.settings_of(ctx))


async def update(ctx: Context, given: UpdateNotificationSettingsInput) -> NotificationSettingsPayload:
    changes = {
        kind: getattr(given, name) for kind, name in KIND_FIELDS.items() if getattr(given, name) is not strawberry.UNSET
    }
    outcome = await notifications.update_settings(ctx, changes)
    if outcome.errors:
        return NotificationSettingsPayload(notification_settings=None, user_errors=user_errors(outcome.errors))
    return NotificationSettingsPayload(notification_settings=await viewer_settings(ctx), user_errors=[])
