"""The ERP Integrations queue's filter and order (`Query.erpRequests(filter:, orderBy:)`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Optional

import strawberry

from persistence.keyset import RequestOrder, RequestQueueFilter
from resolvers.pagination import QueryLimitError
from schema.enums import ErpRequestKind, ExportStatus


@strawberry.enum(description="What the queue can be ordered by; ties are broken by id, in the same direction.")
class ErpRequestOrderField(enum.Enum):
    SENT_AT = "sent_at"
    DECIDED_AT = "decided_at"
    TOTAL_ORIGINAL_BUDGET = "total_original_budget"


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input(description="Every condition that is set must hold.")
class ErpRequestFilter:
    status: Optional[list[ExportStatus]] = None
    project_id: Optional[strawberry.ID] = None
    kind: Optional[list[ErpRequestKind]] = None
    sent_after: Optional[datetime] = strawberry.field(default=None, description="Sent at or after this instant.")
    sent_before: Optional[datetime] = strawberry.field(default=None, description="Sent before this instant.")
    sent_by_id: Optional[strawberry.ID] = None

    def plain(self) -> RequestQueueFilter:
        for name, instant in (("sentAfter", self.sent_after), ("sentBefore", self.sent_before)):
            if instant is not None and instant.tzinfo is None:
                raise QueryLimitError(f"filter.{name} needs a time zone offset, e.g. 2026-01-31T00:00:00Z")
        return RequestQueueFilter(
            statuses=tuple(s.value for s in self.status) if self.status else None,
            project_id=str(self.project_id) if self.project_id is not None else None,
            kinds=tuple(k.value for k in self.kind) if self.kind else None,
            sent_after=self.sent_after,
            sent_before=self.sent_before,
            sent_by_id=str(self.sent_by_id) if self.sent_by_id is not None else None,
        )


@strawberry.input(
    description="DECIDED_AT puts requests not decided yet after all others ascending, before them descending."
)
class ErpRequestOrder:
    field: ErpRequestOrderField
    direction: OrderDirection

    def plain(self) -> RequestOrder:
        return RequestOrder(column=self.field.value, descending=self.direction is OrderDirection.DESC)
