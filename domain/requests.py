"""An ERP request's decisions: each moves the request through the transition table, moves the budget's
export status with it when it is the budget's latest request, and returns the event that records it.

The same decision serves every path that moves a request (an approver's mutation, the export worker,
posting detection, an integrator's callback), so the table, the budget and the log cannot drift apart.
Permission checks stay with the callers (`budget.decide_blockers` and friends): the worker and the
integrator act as the system, not as a user.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from domain import events as ev
from domain.budget import BudgetState
from domain.status import ExportStatus, RequestAction, transition

A = RequestAction

EVENTS: dict[RequestAction, type[ev.BudgetEvent]] = {
    A.RETRIEVE: ev.BudgetRetrieved,
    A.ACCEPT: ev.ExportAccepted,
    A.REJECT: ev.ExportRejected,
    A.EXPORT_WRITTEN: ev.ExportWritten,
    A.EXPORT_POSTED: ev.ExportPosted,
    A.EXPORT_FAILED: ev.ExportFailed,
    A.RETRY: ev.ExportRetried,
    A.CONFIRM_POSTING: ev.JobCostPosted,
}


@dataclass(frozen=True)
class RequestState:
    id: str
    budget_id: str
    project_id: str
    status: ExportStatus


@dataclass(frozen=True)
class RequestChange:
    request: RequestState
    budget: BudgetState  # its version moves on; its export status follows its latest request
    event: ev.BudgetEvent


def decide(
    budget: BudgetState,
    request: RequestState,
    action: RequestAction,
    *,
    actor_id: str | None,
    reason: str | None = None,
) -> RequestChange:
    """The request after `action` (or the refusal the transition table gives), with its budget and event."""
    status = transition(request.status, action)
    latest = budget.last_request_id == request.id
    after = replace(
        budget,
        version=budget.version + 1,
        export_status=status if latest else budget.export_status,
    )
    event = EVENTS[action](
        project_id=budget.project_id,
        budget_id=budget.id,
        erp_request_id=request.id,
        previous_status=request.status,
        status=status,
        actor_id=actor_id,
        reason=reason,
    )
    return RequestChange(replace(request, status=status), after, event)
