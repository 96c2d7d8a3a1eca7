"""Moving an ERP request through the domain's decision, with its budget and its event, in a unit of work.

Every path that moves a request (an approver's mutation, the export worker, posting detection, an
integrator's callback) goes through `apply_request_action`, so the transition table, the budget's export
status and the event log stay in step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.requests import RequestState, decide
from domain.status import ExportStatus, RequestAction
from persistence.records import BudgetRecord, ErpRequestRecord, ExportEntryRecord
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers.budget_state import budget_state


def request_state(record: ErpRequestRecord) -> RequestState:
    return RequestState(
        id=record.id, budget_id=record.budget_id, project_id=record.project_id, status=ExportStatus(record.status)
    )


async def apply_request_action(
    uow: AbstractUnitOfWork,
    budget: BudgetRecord,
    request: ErpRequestRecord,
    action: RequestAction,
    *,
    actor_id: str | None,
    at: datetime,
    reason: str | None = None,
    **values: Any,
) -> ExportStatus:
    """Decide, then write the request (with `values`: decided_at, erp_reference, ...), the budget and the
    event. The budget must have been read with `get_for_update` in this unit of work."""
    change = decide(budget_state(budget), request_state(request), action, actor_id=actor_id, reason=reason)
    await uow.requests.update(request.id, status=change.request.status.value, **values)
    await uow.save_with_event(budget, change.budget, budget.company_id, change.event, at)
    return change.request.status


async def request_entries(uow: AbstractUnitOfWork, request: ErpRequestRecord) -> list[ExportEntryRecord]:
    """The export entries a request carries (its budget's, filtered: no repository method of its own)."""
    return [e for e in await uow.entries.of_budget(request.budget_id) if e.request_id == request.id]
