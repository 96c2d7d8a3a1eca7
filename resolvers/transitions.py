"""Moving an ERP request through the domain's transition table, with its budget and its event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import budget as wf
from domain.budget import ExportStatus, RequestAction
from domain.events import BudgetEvent
from persistence import event_log, writes
from persistence.tables import erp_requests


async def apply_request_action(
    conn: AsyncConnection,
    budget: Row,
    request: Row,
    action: RequestAction,
    *,
    actor_id: str | None,
    at: Any,
    reason: str | None = None,
    **values: Any,
) -> ExportStatus:
    """Move a request (and its budget's export status) through TRANSITIONS, with its event."""
    previous = ExportStatus(request.status)
    status = wf.transition(previous, action)
    await writes.update_row(conn, erp_requests, request.id, status=status.value, **values)
    budget_values: dict[str, Any] = {}
    if budget.last_request_id == request.id:
        budget_values["export_status"] = status.value
    await writes.bump_budget(conn, budget, **budget_values)
    await event_log.append(conn, budget.company_id, BudgetEvent(
        type=wf.EVENT_NAMES[action], project_id=budget.project_id, budget_id=budget.id, erp_request_id=request.id,
        previous_status=previous, status=status, actor_id=actor_id, reason=reason,
    ), at)
    return status
