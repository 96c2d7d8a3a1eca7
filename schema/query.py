"""The Query root."""

from __future__ import annotations

from typing import Optional

import strawberry

from persistence import reads
from persistence.tables import cost_codes, cost_types
from resolvers import pagination, queries
from schema.enums import ExportStatus
from schema.types import (
    Budget,
    BudgetLineItem,
    BudgetModification,
    Company,
    CostCode,
    CostType,
    Ctx,
    ErpCapabilities,
    ErpConnection,
    ErpRequest,
    ErpRequestConnection,
    ErpRequestEdge,
    Node,
    PageInfo,
    Project,
    ProjectConnection,
    ProjectEdge,
    User,
)

_NODE_TYPES = {
    "Project": Project.from_row,
    "ErpRequest": ErpRequest.from_row,
    "BudgetLineItem": BudgetLineItem.from_view,
    "BudgetModification": BudgetModification.from_view,
    "User": User.from_row,
    "CostCode": CostCode.from_row,
    "CostType": CostType.from_row,
    "Company": Company.from_row,
}


@strawberry.type
class Query:
    @strawberry.field
    async def node(self, info: Ctx, id: strawberry.ID) -> Optional[Node]:
        found = await queries.node(info.context, str(id))
        if found is None:
            return None
        kind, row = found
        if kind == "Budget":
            return Budget.from_row(row, info.context.viewer.currency)  # type: ignore[arg-type]
        return _NODE_TYPES[kind](row)  # type: ignore[operator, no-any-return]

    @strawberry.field
    async def viewer(self, info: Ctx) -> User:
        row = await info.context.loaders.user.load(info.context.actor.user_id)
        return User.from_row(row)

    @strawberry.field
    async def projects(self, info: Ctx, first: Optional[int] = 50, after: Optional[str] = None) -> ProjectConnection:
        rows, has_next, total, start = await queries.projects(info.context, first, after)
        edges = [
            ProjectEdge(node=Project.from_row(r), cursor=pagination.encode("o", start + i)) for i, r in enumerate(rows)
        ]
        for row in rows:  # later fields of the same request reuse these rows
            info.context.loaders.project.prime(row.id, row)
        return ProjectConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field
    async def project(self, info: Ctx, id: strawberry.ID) -> Optional[Project]:
        row = await queries.visible_project(info.context, str(id))
        return Project.from_row(row) if row is not None else None

    @strawberry.field
    async def budget(self, info: Ctx, id: strawberry.ID) -> Optional[Budget]:
        row = await queries.visible_budget(info.context, str(id))
        return Budget.from_row(row, info.context.viewer.currency) if row is not None else None

    @strawberry.field(description="The ERP Integrations queue of the viewer's company (approver dashboard).")
    async def erp_requests(
        self,
        info: Ctx,
        status: Optional[list[ExportStatus]] = None,
        project_id: Optional[strawberry.ID] = None,
        first: Optional[int] = 50,
        after: Optional[str] = None,
    ) -> ErpRequestConnection:
        statuses = [s.value for s in status] if status else None
        rows, has_next, total, start = await queries.erp_requests(
            info.context, statuses, str(project_id) if project_id is not None else None, first, after
        )
        edges = [
            ErpRequestEdge(node=ErpRequest.from_row(r), cursor=pagination.encode("o", start + i))
            for i, r in enumerate(rows)
        ]
        return ErpRequestConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field
    async def erp_request(self, info: Ctx, id: strawberry.ID) -> Optional[ErpRequest]:
        row = await queries.visible_request(info.context, str(id))
        return ErpRequest.from_row(row) if row is not None else None

    @strawberry.field
    async def erp_connection(self, info: Ctx) -> Optional[ErpConnection]:
        connector = info.context.services.connectors.get(
            info.context.viewer.erp_connector, info.context.viewer.erp_settings
        )
        if connector is None:
            return None
        caps = connector.capabilities
        return ErpConnection(
            connector=connector.name,
            display_name=connector.display_name,
            capabilities=ErpCapabilities(
                exports_budget=caps.exports_budget,
                exports_modifications=caps.exports_modifications,
                supports_sub_jobs=caps.supports_sub_jobs,
                requires_posting=caps.requires_posting,
                exports_quantities=caps.exports_quantities,
            ),
        )

    @strawberry.field
    async def cost_codes(self, info: Ctx) -> list[CostCode]:
        async with info.context.db.read() as conn:
            rows = await reads.company_list(conn, cost_codes, info.context.actor.company_id)
        return [CostCode.from_row(r) for r in rows]

    @strawberry.field
    async def cost_types(self, info: Ctx) -> list[CostType]:
        async with info.context.db.read() as conn:
            rows = await reads.company_list(conn, cost_types, info.context.actor.company_id)
        return [CostType.from_row(r) for r in rows]
