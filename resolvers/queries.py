"""The read side: what each query field returns, with company isolation and visibility applied, in records
and views. Anything the viewer may not see is None (never an error that would confirm it exists)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from domain import budget as wf
from domain import permissions
from domain.errors import DomainError
from domain.export import ExportLine
from domain.reconciliation import Reconciliation
from domain.status import WRITTEN, ExportStatus
from persistence.ids import type_of
from persistence.keyset import RequestOrder, RequestQueueFilter
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    EventRecord,
    ProjectRecord,
    RequestEntryRecord,
    UserRecord,
)
from resolvers import input_validation as check
from resolvers import pagination
from resolvers.budget_state import budget_state, conditions_for_send, reconciliation_of
from resolvers.context import Context
from resolvers.pagination import Page, capped
from resolvers.views import LineItemView, ModificationView

# What `node(id:)` can answer with.
NodeValue = (
    ProjectRecord
    | BudgetRecord
    | ErpRequestRecord
    | LineItemView
    | ModificationView
    | UserRecord
    | CostCodeRecord
    | CostTypeRecord
    | CompanyRecord
)


async def visible_project(ctx: Context, project_id: str) -> ProjectRecord | None:
    check.argument(project_id, "id")
    project = await ctx.loaders.project.load(project_id)
    if project is None:
        return None
    access = await ctx.loaders.access.load(project_id)
    return project if permissions.can_view_project(ctx.actor, access) else None


async def visible_budget(ctx: Context, budget_id: str) -> BudgetRecord | None:
    check.argument(budget_id, "id")
    budget = await ctx.loaders.budget.load(budget_id)
    if budget is None or await visible_project(ctx, budget.project_id) is None:
        return None
    return budget


async def visible_request(ctx: Context, request_id: str) -> ErpRequestRecord | None:
    check.argument(request_id, "id")
    request = await ctx.loaders.erp_request.load(request_id)
    if request is None or await visible_project(ctx, request.project_id) is None:
        return None
    return request


def _sees_all_projects(ctx: Context) -> bool:
    return permissions.can_view_project(ctx.actor, permissions.NO_ACCESS)


# --- keyset cursors: each names the last row of a page by its sort value(s) and id (resolvers.pagination) --


def project_cursor(project: ProjectRecord) -> str:
    return pagination.encode("project", project.created_at, project.id)


def line_cursor(view: LineItemView) -> str:
    return pagination.encode("line", view.position, view.id)


def event_cursor(event: EventRecord) -> str:
    """A budget's history is ordered by the company's event sequence, which is unique: it is the row's key
    (the table's own id is global and would hint how many events other companies have)."""
    return pagination.encode("event", event.sequence)


async def projects(
    ctx: Context, first: int | None, after: str | None, *, counted: bool = True
) -> Page[ProjectRecord]:
    """`counted`: whether the total is asked for (a statement of its own)."""
    limit = pagination.check_first(first, 200)
    position = pagination.decode("project", after, pagination.timestamp, pagination.text)
    actor = ctx.actor
    found, total = await ctx.services.reads.project_page(
        actor.company_id, actor.user_id, _sees_all_projects(ctx), after=position, limit=limit + 1, counted=counted
    )
    page = Page.fetched(found, limit, project_cursor, total=total)
    for project in page.items:  # later fields of the same request reuse these records
        ctx.loaders.project.prime(project.id, project)
    return page


async def line_item_page(
    ctx: Context, budget_id: str, first: int | None, after: str | None, *, counted: bool = True, synced: bool = True
) -> Page[LineItemView]:
    """`counted`: whether the total is asked for; `synced`: whether the lines' erpSynced is (two statements
    for the whole batch of pages when it is)."""
    limit = pagination.check_first(first, default=100)
    position = pagination.decode("line", after, pagination.integer, pagination.text)
    views = await ctx.loaders.line_page.load((budget_id, position, limit + 1, synced))
    total: int | None = None
    if counted:
        totals = await ctx.loaders.budget_totals.load(budget_id)
        total = int(totals.line_count) if totals else 0
    return Page.fetched(views, limit, line_cursor, total=total)


async def history(
    ctx: Context, budget_id: str, first: int | None, after: str | None, *, counted: bool = True
) -> Page[EventRecord]:
    limit = pagination.check_first(first, 500)
    position = pagination.decode("event", after, pagination.integer)
    before = position[0] if position is not None else None
    found, total = await ctx.services.reads.budget_history(budget_id, limit=limit + 1, before=before, counted=counted)
    return Page.fetched(found, limit, event_cursor, total=total)


async def send_blockers(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    connector = ctx.services.connectors.get(ctx.viewer.erp_connector, ctx.viewer.erp_settings)
    access = await ctx.loaders.access.load(budget.project_id)
    project = await ctx.loaders.project.load(budget.project_id)
    assert project is not None, "a budget's project is in the budget's company"
    state = await ctx.loaders.export_state.load(budget)
    conditions = conditions_for_send(state, connector, project, ctx.services.clock().date())
    return wf.send_blockers(state.budget, access, conditions)


async def unlock_blockers(ctx: Context, budget: BudgetRecord) -> list[DomainError]:
    return wf.unlock_blockers(budget_state(budget), await ctx.loaders.access.load(budget.project_id))


async def pending_export(ctx: Context, budget: BudgetRecord) -> list[ExportLine]:
    return (await ctx.loaders.export_state.load(budget)).pending


async def budget_reconciliation(ctx: Context, budget: BudgetRecord) -> Reconciliation:
    """Per line: revised, exported, posted, pending, unsent and their difference (domain.reconciliation), from
    the same batched export state as sendBlockers and pendingExport: no statement of its own."""
    return reconciliation_of(await ctx.loaders.export_state.load(budget))


async def exported_entries(ctx: Context, request: ErpRequestRecord) -> list[RequestEntryRecord]:
    """The request's entries once the connector wrote them (AWAITING_POSTING, SYNCED); none before, and none
    for a request that was retrieved, rejected or whose export failed (nothing was written; domain.status)."""
    if ExportStatus(request.status) not in WRITTEN:
        return []
    return await ctx.loaders.request_entries.load(request.id)


# How the queue's cursor carries the sort value of each order column.
_REQUEST_SORT_VALUE: dict[str, pagination.Parser] = {
    "sent_at": pagination.timestamp,
    "decided_at": pagination.optional(pagination.timestamp),
    "total_original_budget": pagination.decimal,
}


def _request_cursor_kind(order: RequestOrder) -> str:
    return f"request.{order.column}.{'desc' if order.descending else 'asc'}"


def request_cursor(order: RequestOrder) -> Callable[[ErpRequestRecord], str]:
    kind = _request_cursor_kind(order)
    return lambda request: pagination.encode(kind, getattr(request, order.column), request.id)


def _both(first: tuple[str, ...] | None, second: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Two conditions on one column that must both hold (None: no condition)."""
    if first is None or second is None:
        return first if second is None else second
    return tuple(value for value in first if value in second)


async def erp_requests(
    ctx: Context,
    statuses: list[str] | None,
    project_id: str | None,
    first: int | None,
    after: str | None,
    where: RequestQueueFilter | None = None,
    order: RequestOrder | None = None,
) -> Page[ErpRequestRecord]:
    """The company's ERP Integrations queue. Approvers and ERP users see all of it; others see the
    requests of projects they can see, one project at a time. The `status` / `projectId` arguments and the
    filter combine: a request must match both."""
    limit = pagination.check_first(first, 200)
    order = order or RequestOrder()
    position = pagination.decode(
        _request_cursor_kind(order), after, _REQUEST_SORT_VALUE[order.column], pagination.text
    )
    check.argument(project_id, "projectId")
    where = where or RequestQueueFilter()
    check.argument(where.project_id, "projectId")
    check.argument(where.sent_by_id, "sentById")
    named = {p for p in (project_id, where.project_id) if p is not None}
    if len(named) > 1:  # two different projects: no request is in both
        return Page.empty()
    project = next(iter(named), None)
    if project is not None and await visible_project(ctx, project) is None:
        return Page.empty()
    if project is None and not _sees_all_projects(ctx):
        return Page.empty()
    where = replace(
        where,
        statuses=_both(tuple(statuses) if statuses else None, where.statuses),
        project_id=project,
    )
    found, total = await ctx.services.reads.request_queue(
        ctx.actor.company_id, where=where, order=order, after=position, limit=limit + 1
    )
    return Page.fetched(found, limit, request_cursor(order), total=total)


async def viewer_user(ctx: Context) -> UserRecord:
    user = await ctx.loaders.user.load(ctx.actor.user_id)
    assert user is not None, "the viewer was read at authentication"
    return user


async def cost_codes(ctx: Context) -> list[CostCodeRecord]:
    return list(capped(await ctx.services.reads.company_cost_codes(ctx.actor.company_id), "Query.costCodes"))


async def cost_types(ctx: Context) -> list[CostTypeRecord]:
    return list(capped(await ctx.services.reads.company_cost_types(ctx.actor.company_id), "Query.costTypes"))


async def node(ctx: Context, node_id: str) -> NodeValue | None:
    """The read model of any object the viewer may see."""
    check.argument(node_id, "id")
    kind = type_of(node_id)
    loaders = ctx.loaders
    if kind == "Project":
        return await visible_project(ctx, node_id)
    if kind == "Budget":
        return await visible_budget(ctx, node_id)
    if kind == "ErpRequest":
        return await visible_request(ctx, node_id)
    if kind == "BudgetLineItem":
        line = await loaders.line_item.load(node_id)
        return line if line is not None and await visible_budget(ctx, line.budget_id) else None
    if kind == "BudgetModification":
        modification = await loaders.modification.load(node_id)
        return modification if modification is not None and await visible_budget(ctx, modification.budget_id) else None
    if kind == "User":
        return await loaders.user.load(node_id)
    if kind == "CostCode":
        return await loaders.cost_code.load(node_id)
    if kind == "CostType":
        return await loaders.cost_type.load(node_id)
    if kind == "Company":
        return await loaders.company.load(node_id) if node_id == ctx.actor.company_id else None
    return None
