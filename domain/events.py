"""Events of the audit trail and the live stream: one frozen dataclass per event, named in the past tense.

Every event names its project and budget and the budget's export status after it (`status`) and before it
(`previous_status`); an event that did not move the status has both equal. A request transition's event
also names the request. What else an event carries is its own fields, stored as the log's `data` (camelCase
keys, string values, as the log has always stored them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from domain.status import ExportStatus


@dataclass(frozen=True, kw_only=True)
class BudgetEvent:
    project_id: str
    budget_id: str
    status: ExportStatus
    previous_status: ExportStatus | None = None
    actor_id: str | None = None
    erp_request_id: str | None = None
    reason: str | None = None

    # Fields every event has; the rest of a subclass's fields are its data.
    _COMMON: ClassVar[frozenset[str]] = frozenset(
        {"project_id", "budget_id", "status", "previous_status", "actor_id", "erp_request_id", "reason"}
    )

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def data(self) -> dict[str, str]:
        return {
            _camel(f.name): str(getattr(self, f.name))
            for f in fields(self)
            if f.name not in self._COMMON and getattr(self, f.name) is not None
        }

    @property
    def is_status_change(self) -> bool:
        return self.previous_status is not None and self.previous_status != self.status


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- budget and line events (the status does not move) ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BudgetLocked(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class BudgetUnlocked(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class LineItemCreated(BudgetEvent):
    line_item_id: str


@dataclass(frozen=True, kw_only=True)
class LineItemUpdated(BudgetEvent):
    line_item_id: str


@dataclass(frozen=True, kw_only=True)
class LineItemDeleted(BudgetEvent):
    line_item_id: str


@dataclass(frozen=True, kw_only=True)
class LineItemsImported(BudgetEvent):
    created: int
    updated: int


@dataclass(frozen=True, kw_only=True)
class BudgetModificationCreated(BudgetEvent):
    modification_id: str
    number: int


@dataclass(frozen=True, kw_only=True)
class ProjectSyncedToErp(BudgetEvent):
    erp_job_id: str


# --- request events (each moves a request through the transition table) --------------------------------


@dataclass(frozen=True, kw_only=True)
class BudgetSentToErp(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class BudgetRetrieved(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportAccepted(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportRejected(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportWritten(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportPosted(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportFailed(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ExportRetried(BudgetEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class JobCostPosted(BudgetEvent):
    pass
