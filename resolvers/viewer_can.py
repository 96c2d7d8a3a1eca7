"""`viewerCan`: whether each action would succeed now for the viewer, from the very checks its mutation runs.

One table per aggregate maps an action to the reasons it would be refused (empty: it would succeed). Each
entry runs the same domain check its mutation runs on the same state, read through the request's loaders,
so a page of budgets or requests costs a fixed number of statements, and only for the actions asked for:

- budget: editLines (`updateBudgetLineItem` / `deleteBudgetLineItem`; a locked budget still takes new lines
  of amount 0 through `createBudgetLineItem`), createModification, lock, unlock, send, retrieve;
- ERP request: accept, reject (given a reason), retrieve (`retrieveBudget` of its budget, when it is the
  budget's latest request), retryExport, confirmPosting.

The answers concern the state and the viewer's rights now; an `expectedVersion` that is stale by the time
the mutation runs, or bad input, can still refuse it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from domain import budget as wf
from domain import permissions
from domain.errors import DomainError, ErrorCode
from domain.status import ExportStatus, transition
from domain.status import RequestAction as Transition
from persistence.records import BudgetRecord, ErpRequestRecord
from resolvers import queries
from resolvers.budget_state import budget_state
from resolvers.context import Context

Blockers = Callable[[Context, BudgetRecord], Awaitable[list[DomainError]]]
RequestBlockers = Callable[[Context, ErpRequestRecord], Awaitable[list[DomainError]]]


class BudgetAction(enum.Enum):
    EDIT_LINES = "editLines"
    CREATE_MODIFICATION = "createModification"
    LOCK = "lock"
    UNLOCK = "unlock"
    SEND = "send"
    RETRIEVE = "retrieve"


class ErpRequestAction(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    RETRIEVE = "retrieve"
    RETRY_EXPORT = "retryExport"
    CONFIRM_POSTING = "confirmPosting"


# --- budgets ---------------------------------------------------------------------------------------------


async def _edit_lines(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    return wf.line_edit_blockers(budget_state(budget), await ctx.loaders.access.load(budget.project_id))


async def _create_modification(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    return wf.modification_blockers(budget_state(budget), await ctx.loaders.access.load(budget.project_id))


async def _lock(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    return wf.lock_blockers(budget_state(budget), await ctx.loaders.access.load(budget.project_id))


async def _retrieve(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    return wf.retrieve_blockers(budget_state(budget), await ctx.loaders.access.load(budget.project_id))


BUDGET_CHECKS: dict[BudgetAction, Blockers] = {
    BudgetAction.EDIT_LINES: _edit_lines,
    BudgetAction.CREATE_MODIFICATION: _create_modification,
    BudgetAction.LOCK: _lock,
    BudgetAction.UNLOCK: queries.unlock_blockers,  # what `unlockBlockers` lists
    BudgetAction.SEND: queries.send_blockers,  # what `sendBlockers` lists
    BudgetAction.RETRIEVE: _retrieve,
}


async def budget_blockers(ctx: Context, budget: BudgetRecord, action: BudgetAction) -> list[DomainError]:
    return await BUDGET_CHECKS[action](ctx, budget)


async def budget_can(ctx: Context, budget: BudgetRecord, action: BudgetAction) -> bool:
    return not await budget_blockers(ctx, budget, action)


# --- ERP requests ----------------------------------------------------------------------------------------


def _transition_refusal(request: ErpRequestRecord, move: Transition) -> DomainError | None:
    """The refusal the status table gives (the one `apply_request_action` would raise), if any."""
    try:
        transition(ExportStatus(request.status), move)
    except DomainError as refusal:
        return refusal
    return None


def _present(*errors: DomainError | None) -> list[DomainError]:
    return [e for e in errors if e is not None]


async def _accept(ctx: Context, request: ErpRequestRecord) -> list[DomainError]:
    return wf.decide_blockers(ctx.actor, ExportStatus(request.status), Transition.ACCEPT, None)


async def _reject(ctx: Context, request: ErpRequestRecord) -> list[DomainError]:
    # A rejection needs a reason, which is input: the question is whether one with a reason would pass.
    return wf.decide_blockers(ctx.actor, ExportStatus(request.status), Transition.REJECT, "a reason")


async def _retrieve_request(ctx: Context, request: ErpRequestRecord) -> list[DomainError]:
    """`retrieveBudget` retrieves the budget's latest request: this one only when it is that request."""
    budget = await ctx.loaders.budget.load(request.budget_id)
    assert budget is not None, "a request's budget is in the request's company"
    if budget.last_request_id != request.id:
        return [DomainError(ErrorCode.NOT_PENDING, "only the budget's latest request can be retrieved")]
    return await _retrieve(ctx, budget)


async def _retry_export(ctx: Context, request: ErpRequestRecord) -> list[DomainError]:
    return _present(permissions.decide_refusal(ctx.actor), _transition_refusal(request, Transition.RETRY))


async def _confirm_posting(ctx: Context, request: ErpRequestRecord) -> list[DomainError]:
    return _present(
        permissions.confirm_posting_refusal(ctx.actor), _transition_refusal(request, Transition.CONFIRM_POSTING)
    )


REQUEST_CHECKS: dict[ErpRequestAction, RequestBlockers] = {
    ErpRequestAction.ACCEPT: _accept,
    ErpRequestAction.REJECT: _reject,
    ErpRequestAction.RETRIEVE: _retrieve_request,
    ErpRequestAction.RETRY_EXPORT: _retry_export,
    ErpRequestAction.CONFIRM_POSTING: _confirm_posting,
}


async def request_blockers(ctx: Context, request: ErpRequestRecord, action: ErpRequestAction) -> list[DomainError]:
    return await REQUEST_CHECKS[action](ctx, request)


async def request_can(ctx: Context, request: ErpRequestRecord, action: ErpRequestAction) -> bool:
    return not await request_blockers(ctx, request, action)
