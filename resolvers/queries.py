"""The read side: what each query field returns, with company isolation and visibility applied.
Anything the viewer may not see is None (never an error that would confirm it exists)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Row

from domain import budget as wf
from domain import permissions
from domain.errors import DomainError
from domain.export import ExportLine
from persistence import event_log, reads
from persistence.ids import type_of
from persistence.tables import events
from resolvers import pagination
from resolvers.budget_state import budget_state, send_conditions
from resolvers.context import Context
from resolvers.views import LineItemView


async def visible_project(ctx: Context, project_id: str) -> Row | None:
    row = await ctx.loaders.project.load(project_id)
    if row is None:
        return None
    access = await ctx.loaders.access.load(project_id)
    return row if permissions.can_view_project(ctx.actor, access) else None


async def visible_budget(ctx: Context, budget_id: str) -> Row | None:
    row = await ctx.loaders.budget.load(budget_id)
    if row is None or await visible_project(ctx, row.project_id) is None:
        return None
    return row


async def visible_request(ctx: Context, request_id: str) -> Row | None:
    row = await ctx.loaders.erp_request.load(request_id)
    if row is None or await visible_project(ctx, row.project_id) is None:
        return None
    return row


def _sees_all_projects(ctx: Context) -> bool:
    return permissions.can_view_project(ctx.actor, permissions.NO_ACCESS)


async def projects(ctx: Context, first: int | None, after: str | None) -> tuple[list[Row], bool, int, int]:
    limit = pagination.check_first(first, 200)
    ctx.spend(limit)
    offset = pagination.decode("o", after)
    start = 0 if offset is None else offset + 1
    async with ctx.db.read() as conn:
        rows, total = await reads.project_page(
            conn, ctx.actor.company_id, ctx.actor.user_id, _sees_all_projects(ctx), offset=start, limit=limit
        )
    return rows, start + len(rows) < total, total, start


async def line_item_page(
    ctx: Context, budget_id: str, first: int | None, after: str | None
) -> tuple[list[LineItemView], bool, int]:
    limit = pagination.check_first(first, default=100)
    ctx.spend(limit)
    after_position = pagination.decode("p", after)
    views = await ctx.loaders.line_page.load((budget_id, after_position, limit + 1))
    totals = await ctx.loaders.budget_totals.load(budget_id)
    return views[:limit], len(views) > limit, int(totals.line_count) if totals else 0


def line_cursor(view: LineItemView) -> str:
    return pagination.encode("p", view.position)


def event_cursor(row: Row) -> str:
    return pagination.encode("s", row.sequence)


async def history(ctx: Context, budget_id: str, first: int | None, after: str | None) -> tuple[list[Row], bool, int]:
    limit = pagination.check_first(first, 500)
    ctx.spend(limit)
    before = pagination.decode("s", after)
    async with ctx.db.read() as conn:
        rows = await event_log.budget_history(conn, budget_id, limit=limit + 1, before=before)
        total = (await conn.execute(select(func.count()).where(events.c.budget_id == budget_id))).scalar_one()
    return rows[:limit], len(rows) > limit, int(total)


async def _project_access(ctx: Context, row: Row) -> permissions.ProjectAccess:
    return await ctx.loaders.access.load(row.project_id)


async def send_blockers(ctx: Context, budget_row: Row) -> list[DomainError]:
    connector = ctx.services.connectors.get(ctx.viewer.erp_connector, ctx.viewer.erp_settings)
    access = await _project_access(ctx, budget_row)
    project = await ctx.loaders.project.load(budget_row.project_id)
    state = await ctx.loaders.export_state.load(budget_row.id)
    conditions = send_conditions(state, connector.capabilities if connector else None, project)
    return wf.send_blockers(state.budget, access, conditions)


async def unlock_blockers(ctx: Context, budget_row: Row) -> list[DomainError]:
    return wf.unlock_blockers(budget_state(budget_row), await _project_access(ctx, budget_row))


async def pending_export(ctx: Context, budget_row: Row) -> list[ExportLine]:
    state = await ctx.loaders.export_state.load(budget_row.id)
    return state.pending if state is not None else []


async def erp_requests(
    ctx: Context, statuses: list[str] | None, project_id: str | None, first: int | None, after: str | None
) -> tuple[list[Row], bool, int, int]:
    """The company's ERP Integrations queue. Approvers and ERP users see all of it; others see the
    requests of projects they can see."""
    limit = pagination.check_first(first, 200)
    ctx.spend(limit)
    offset = pagination.decode("o", after)
    start = 0 if offset is None else offset + 1
    if project_id is not None and await visible_project(ctx, project_id) is None:
        return [], False, 0, start
    if project_id is None and not _sees_all_projects(ctx):
        return [], False, 0, start
    async with ctx.db.read() as conn:
        rows, total = await reads.request_queue(
            conn, ctx.actor.company_id, statuses=statuses, project_id=project_id, offset=start, limit=limit
        )
    return rows, start + len(rows) < total, total, start


async def node(ctx: Context, node_id: str) -> tuple[str, object] | None:
    """The type name and read model of any object the viewer may see."""
    kind = type_of(node_id)
    loaders = ctx.loaders
    if kind == "Project":
        row = await visible_project(ctx, node_id)
    elif kind == "Budget":
        row = await visible_budget(ctx, node_id)
    elif kind == "ErpRequest":
        row = await visible_request(ctx, node_id)
    elif kind == "BudgetLineItem":
        view = await loaders.line_item.load(node_id)
        row = view if view is not None and await visible_budget(ctx, view.budget_id) else None
    elif kind == "BudgetModification":
        view = await loaders.modification.load(node_id)
        row = view if view is not None and await visible_budget(ctx, view.budget_id) else None
    elif kind in ("User", "CostCode", "CostType"):
        row = await {"User": loaders.user, "CostCode": loaders.cost_code, "CostType": loaders.cost_type}[kind].load(
            node_id
        )
    elif kind == "Company":
        row = await loaders.company.load(node_id) if node_id == ctx.actor.company_id else None
    else:
        return None
    return (kind, row) if row is not None else None
