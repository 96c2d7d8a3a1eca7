"""What every change loads first: its budget under the budget's lock, with the viewer's access and the
caller's version check. Another company's id, or a budget the viewer may not see, is NOT_FOUND (never a
FORBIDDEN that would confirm it exists)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain import permissions
from domain.budget import BudgetTotals
from domain.errors import VersionConflictError, not_found
from domain.permissions import ProjectAccess
from persistence.records import BudgetRecord, ErpRequestRecord, LineItemRecord
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers import input_validation as check
from resolvers.context import Context


async def budget_for_change(
    ctx: Context, uow: AbstractUnitOfWork, budget_id: str, expected: int | None
) -> tuple[BudgetRecord, ProjectAccess]:
    check.identifier(budget_id, ["input", "budgetId"])
    found = await uow.budgets.get_for_change(ctx.actor.company_id, ctx.actor.user_id, budget_id)
    if found is None:
        raise not_found("budget", ["input", "budgetId"])
    return _may_change(ctx, *found, expected)


def _may_change(
    ctx: Context, budget: BudgetRecord, access: ProjectAccess, expected: int | None
) -> tuple[BudgetRecord, ProjectAccess]:
    """The locked budget and the viewer's access, once they may see it and `expected` is its version."""
    if not permissions.can_view_project(ctx.actor, access):
        raise not_found("budget", ["input", "budgetId"])
    if expected is not None and expected != budget.version:
        raise VersionConflictError(actual=budget.version, expected=expected)
    return budget, access


@dataclass(frozen=True)
class LineChange:
    """What a change of one line loads first, under its budget's lock."""

    line: LineItemRecord
    budget: BudgetRecord
    access: ProjectAccess
    totals: BudgetTotals | None  # the budget's, read with the line when asked for


async def line_for_change(
    ctx: Context, uow: AbstractUnitOfWork, line_id: str, field: Sequence[str], expected: int | None,
    *, totals: bool = False,
) -> LineChange:
    """The line, read once under its budget's lock (the budget locked through the line), with its budget and
    the viewer's access, checked as `budget_for_change` checks them; with its budget's totals if `totals`."""
    check.identifier(line_id, field)
    found = await uow.budgets.get_for_change_of_line(ctx.actor.company_id, ctx.actor.user_id, line_id)
    if found is None:
        raise not_found("budget line item", field)
    budget, access = _may_change(ctx, *found, expected)
    if totals:
        with_totals = await uow.line_items.get_with_totals(ctx.actor.company_id, line_id)
        line, sums = with_totals if with_totals is not None else (None, None)
    else:
        line, sums = await uow.line_items.get(ctx.actor.company_id, line_id), None
    if line is None:  # deleted while this waited for the lock
        raise not_found("budget line item", field)
    return LineChange(line, budget, access, sums)


async def request_for_change(
    ctx: Context, uow: AbstractUnitOfWork, request_id: str
) -> tuple[BudgetRecord, ErpRequestRecord]:
    """The request and its budget, the budget locked first: the status decided on is the committed one."""
    check.identifier(request_id, ["input", "erpRequestId"])
    found = await uow.requests.get(ctx.actor.company_id, request_id)
    if found is None:
        raise not_found("ERP request", ["input", "erpRequestId"])
    budget = await uow.budgets.get_for_update(ctx.actor.company_id, found.budget_id)
    request = await uow.requests.get(ctx.actor.company_id, request_id)  # re-read under the budget's lock
    assert budget is not None and request is not None  # a request's budget is never deleted
    return budget, request
