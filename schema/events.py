"""The event log as the API shows it: the audit trail and the live stream."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from domain import events
from persistence.records import EventRecord
from schema.common import Ctx, described
from schema.enums import ExportStatus
from schema.people import User, load_user
from schema.projects import Project, load_project
from schema.requests import ErpRequest

if TYPE_CHECKING:
    from schema.budgets import Budget

# Every kind of event the log records, named as `BudgetEvent.type` spells them (domain.events).
EVENT_TYPES = ", ".join(kind.__name__ for kind in events.BudgetEvent.__subclasses__())


@strawberry.type(description="An entry of the audit trail and of the live event stream.")
class BudgetEvent:
    sequence: str = strawberry.field(
        description="Increasing sequence number within the company; pass the last one you saw as `after` to resume."
    )
    occurred_at: datetime = strawberry.field(description="When it happened.")
    type: str = strawberry.field(description=f"What happened, one of: {EVENT_TYPES}.")
    previous_status: Optional[ExportStatus] = strawberry.field(
        description="The export status before the event (its request's, for an event of a request); equal to status "
        "when the event did not move it."
    )
    status: ExportStatus = strawberry.field(
        description="The export status after the event: its request's for an event of a request, else the "
        "budget's."
    )
    reason: Optional[str] = strawberry.field(
        description="The approver's reason (ExportRejected; an ExportAccepted may carry one too) or the ERP "
        "connector's message (ExportFailed); null otherwise."
    )
    record: strawberry.Private[EventRecord]

    @described(
        "Who did it; null when the system did (the export worker, posting detection, an integrator's callback)."
    )
    async def actor(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.actor_id)

    @described("The project of the budget.")
    async def project(self, info: Ctx) -> Project:
        return await load_project(info, self.record.project_id)

    @described("The budget the event belongs to.")
    async def budget(self, info: Ctx) -> Annotated[Budget, strawberry.lazy("schema.budgets")]:
        from schema.budgets import load_budget

        return await load_budget(info, self.record.budget_id)

    @described("The ERP request the event moved; null for events of the budget and its lines.")
    async def erp_request(self, info: Ctx) -> Optional[ErpRequest]:
        if self.record.erp_request_id is None:
            return None
        request = await info.context.loaders.erp_request.load(self.record.erp_request_id)
        return ErpRequest.from_record(request) if request is not None else None

    @classmethod
    def from_record(cls, r: EventRecord) -> BudgetEvent:
        return cls(
            sequence=str(r.sequence),
            occurred_at=r.occurred_at,
            type=r.type,
            previous_status=ExportStatus(r.previous_status) if r.previous_status else None,
            status=ExportStatus(r.status),
            reason=r.reason,
            record=r,
        )
