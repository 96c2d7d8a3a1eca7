"""Events of the audit trail and the live stream, named in the past tense."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.budget import ExportStatus

BUDGET_LOCKED = "BudgetLocked"
BUDGET_UNLOCKED = "BudgetUnlocked"
BUDGET_SENT = "BudgetSentToErp"
LINE_ITEM_CREATED = "LineItemCreated"
LINE_ITEM_UPDATED = "LineItemUpdated"
LINE_ITEM_DELETED = "LineItemDeleted"
LINE_ITEMS_IMPORTED = "LineItemsImported"
MODIFICATION_CREATED = "BudgetModificationCreated"


@dataclass(frozen=True)
class BudgetEvent:
    type: str
    project_id: str
    budget_id: str
    status: ExportStatus
    previous_status: ExportStatus | None = None
    actor_id: str | None = None
    erp_request_id: str | None = None
    reason: str | None = None
    data: dict[str, str] = field(default_factory=dict)

    @property
    def is_status_change(self) -> bool:
        return self.previous_status is not None and self.previous_status != self.status
