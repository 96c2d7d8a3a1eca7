"""The ERP Integrations queue's filter and order (`Query.erpRequests(filter:, orderBy:)`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Optional

import strawberry

from persistence.keyset import RequestOrder, RequestQueueFilter
from resolvers.pagination import QueryLimitError
from schema.enums import ErpRequestKind, ExportStatus, served_enum


class ErpRequestOrderField(enum.Enum):
    SENT_AT = "sent_at"
    DECIDED_AT = "decided_at"
    TOTAL_ORIGINAL_BUDGET = "total_original_budget"


served_enum(
    ErpRequestOrderField,
    name="ErpRequestOrderField",
    description="What the queue can be ordered by; ties are broken by id, in the same direction.",
    values={
        ErpRequestOrderField.SENT_AT: "When the request was sent (ErpRequest.sentAt).",
        ErpRequestOrderField.DECIDED_AT: (
            "When an approver accepted or rejected it (ErpRequest.decidedAt); requests not decided yet sort as "
            "if later than every decided one."
        ),
        ErpRequestOrderField.TOTAL_ORIGINAL_BUDGET: "The request's totalOriginalBudget.",
    },
)


class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


served_enum(
    OrderDirection,
    name="OrderDirection",
    description="The direction of an order.",
    values={
        OrderDirection.ASC: "Smallest (earliest) first.",
        OrderDirection.DESC: "Largest (latest) first.",
    },
)


@strawberry.input(description="Which requests of the queue to list. Every condition that is set must hold.")
class ErpRequestFilter:
    status: Optional[list[ExportStatus]] = strawberry.field(
        default=None, description="Requests in any of these statuses; null or empty: any status."
    )
    project_id: Optional[strawberry.ID] = strawberry.field(
        default=None,
        description="Requests of this project only. A project the viewer cannot see gives an empty page.",
    )
    kind: Optional[list[ErpRequestKind]] = strawberry.field(
        default=None, description="Requests of any of these kinds; null or empty: any kind."
    )
    sent_after: Optional[datetime] = strawberry.field(
        default=None, description="Sent at or after this instant (with a time zone offset, e.g. 2026-01-31T00:00:00Z)."
    )
    sent_before: Optional[datetime] = strawberry.field(
        default=None, description="Sent before this instant (with a time zone offset)."
    )
    sent_by_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Requests sent by this user (a User id)."
    )

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
    field: ErpRequestOrderField = strawberry.field(description="The value to order by.")
    direction: OrderDirection = strawberry.field(description="Ascending or descending.")

    def plain(self) -> RequestOrder:
        return RequestOrder(column=self.field.value, descending=self.direction is OrderDirection.DESC)
