"""The Query root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import strawberry

from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    ProjectRecord,
    UserRecord,
)
from resolvers import queries
from resolvers.views import LineItemView, ModificationView
from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.common import Connection, Ctx, Node, connection, described
from schema.enums import ExportStatus
from schema.people import Company, User
from schema.projects import CostCode, CostType, Project
from schema.queue import ErpRequestFilter, ErpRequestOrder
from schema.requests import ErpConnection, ErpRequest

# The GraphQL type of each read model `node(id:)` can answer with (Budget also needs the currency).
_NODE_TYPES: dict[type, Callable[[Any], Node]] = {
    ProjectRecord: Project.from_record,
    ErpRequestRecord: ErpRequest.from_record,
    LineItemView: BudgetLineItem.from_view,
    ModificationView: BudgetModification.from_view,
    UserRecord: User.from_record,
    CostCodeRecord: CostCode.from_record,
    CostTypeRecord: CostType.from_record,
    CompanyRecord: Company.from_record,
}


@strawberry.type
class Query:
    @strawberry.field
    async def node(self, info: Ctx, id: strawberry.ID) -> Optional[Node]:
        found = await queries.node(info.context, str(id))
        if found is None:
            return None
        if isinstance(found, BudgetRecord):
            return Budget.from_record(found, info.context.viewer.currency)
        return _NODE_TYPES[type(found)](found)

    @strawberry.field
    async def viewer(self, info: Ctx) -> User:
        return User.from_record(await queries.viewer_user(info.context))

    @strawberry.field
    async def projects(
        self, info: Ctx, first: Optional[int] = 50, after: Optional[str] = None
    ) -> Connection[Project]:
        return connection(await queries.projects(info.context, first, after), Project.from_record)

    @strawberry.field
    async def project(self, info: Ctx, id: strawberry.ID) -> Optional[Project]:
        project = await queries.visible_project(info.context, str(id))
        return Project.from_record(project) if project is not None else None

    @strawberry.field
    async def budget(self, info: Ctx, id: strawberry.ID) -> Optional[Budget]:
        budget = await queries.visible_budget(info.context, str(id))
        return Budget.from_record(budget, info.context.viewer.currency) if budget is not None else None

    @described(
        "The ERP Integrations queue of the viewer's company (approver dashboard). `status` / `projectId` and "
        "`filter` combine (a request matches both); `orderBy` defaults to SENT_AT DESC."
    )
    async def erp_requests(
        self,
        info: Ctx,
        status: Optional[list[ExportStatus]] = None,
        project_id: Optional[strawberry.ID] = None,
        first: Optional[int] = 50,
        after: Optional[str] = None,
        filter: Optional[ErpRequestFilter] = None,
        order_by: Optional[ErpRequestOrder] = None,
    ) -> Connection[ErpRequest]:
        statuses = [s.value for s in status] if status else None
        page = await queries.erp_requests(
            info.context,
            statuses,
            str(project_id) if project_id is not None else None,
            first,
            after,
            where=filter.plain() if filter is not None else None,
            order=order_by.plain() if order_by is not None else None,
        )
        return connection(page, ErpRequest.from_record)

    @strawberry.field
    async def erp_request(self, info: Ctx, id: strawberry.ID) -> Optional[ErpRequest]:
        request = await queries.visible_request(info.context, str(id))
        return ErpRequest.from_record(request) if request is not None else None

    @strawberry.field
    async def erp_connection(self, info: Ctx) -> Optional[ErpConnection]:
        viewer = info.context.viewer
        connector = info.context.services.connectors.get(viewer.erp_connector, viewer.erp_settings)
        return ErpConnection.of(connector) if connector is not None else None

    @strawberry.field
    async def cost_codes(self, info: Ctx) -> list[CostCode]:
        return [CostCode.from_record(r) for r in await queries.cost_codes(info.context)]

    @strawberry.field
    async def cost_types(self, info: Ctx) -> list[CostType]:
        return [CostType.from_record(r) for r in await queries.cost_types(info.context)]
