"""The event log as the API shows it: the audit trail and the live stream."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from persistence.records import EventRecord
from schema.common import Ctx
from schema.enums import ExportStatus
from schema.people import User, load_user
from schema.projects import Project, load_project
from schema.requests import ErpRequest

if TYPE_CHECKING:
    from schema.budgets import Budget


@strawberry.type(description="An entry of the audit trail and of the live event stream.")
class BudgetEvent:
    sequence: str = strawberry.field(
        description="Increasing sequence number within the company; pass the last one you saw as `after` to resume."
    )
    occurred_at: datetime
    type: str
    previous_status: Optional[ExportStatus]
    status: ExportStatus
    reason: Optional[str]
    record: strawberry.Private[EventRecord]

    @strawberry.field
    async def actor(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.actor_id)

    @strawberry.field
    async def project(self, info: Ctx) -> Project:
        return await load_project(info, self.record.project_id)

    @strawberry.field
    async def budget(self, info: Ctx) -> Annotated[Budget, strawberry.lazy("schema.budgets")]:
        from schema.budgets import load_budget

        return await load_budget(info, self.record.budget_id)

    @strawberry.field
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
