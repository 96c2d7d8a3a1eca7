"""The Query root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional

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
from schema.common import AFTER, Connection, Ctx, Node, at_most, connection, described, first_argument, selects
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


@strawberry.type(
    description="Everything the viewer may read, in their company. An object that does not exist, is in another "
    "company or that the viewer may not see reads as null (or is left out of a list), never as an error."
)
class Query:
    @described(
        "Any object by its id: Project, Budget, BudgetLineItem, BudgetModification, ErpRequest, User, CostCode, "
        "CostType or Company (the viewer's own); null when the viewer may not see it."
    )
    async def node(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="An id this API returned.")]
    ) -> Optional[Node]:
        found = await queries.node(info.context, str(id))
        if found is None:
            return None
        if isinstance(found, BudgetRecord):
            return Budget.from_record(found, info.context.viewer.currency)
        return _NODE_TYPES[type(found)](found)

    @described("The authenticated user.")
    async def viewer(self, info: Ctx) -> User:
        return User.from_record(await queries.viewer_user(info.context))

    @described(
        "The projects the viewer sees, oldest first: company admins and ERP Integrations users see every project "
        "of the company, others the projects where they have a Budget tool permission."
    )
    async def projects(
        self,
        info: Ctx,
        first: Annotated[Optional[int], strawberry.argument(description=first_argument(50, 200))] = 50,
        after: Annotated[Optional[str], strawberry.argument(description=AFTER)] = None,
    ) -> Connection[Project]:
        page = await queries.projects(info.context, first, after, counted=selects(info, "totalCount"))
        return connection(page, Project.from_record, info)

    @described("A project by id; null when it does not exist or the viewer cannot see it.")
    async def project(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="A Project id.")]
    ) -> Optional[Project]:
        project = await queries.visible_project(info.context, str(id))
        return Project.from_record(project) if project is not None else None

    @described("A budget by id; null when it does not exist or the viewer cannot see its project.")
    async def budget(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="A Budget id.")]
    ) -> Optional[Budget]:
        budget = await queries.visible_budget(info.context, str(id))
        return Budget.from_record(budget, info.context.viewer.currency) if budget is not None else None

    @described(
        "The ERP Integrations queue of the viewer's company (approver dashboard). `status` / `projectId` and "
        "`filter` combine (a request matches both); `orderBy` defaults to SENT_AT DESC. Company admins and ERP "
        "Integrations users see every request; anyone else sees only the requests of one project they can see, "
        "named by projectId (the argument or the filter's; without it the page is empty)."
    )
    async def erp_requests(
        self,
        info: Ctx,
        status: Annotated[
            Optional[list[ExportStatus]],
            strawberry.argument(description="Requests in any of these statuses; null or empty: any status."),
        ] = None,
        project_id: Annotated[
            Optional[strawberry.ID],
            strawberry.argument(
                description="Requests of this project only; a project the viewer cannot see gives an empty page."
            ),
        ] = None,
        first: Annotated[Optional[int], strawberry.argument(description=first_argument(50, 200))] = 50,
        after: Annotated[Optional[str], strawberry.argument(description=AFTER)] = None,
        filter: Annotated[
            Optional[ErpRequestFilter], strawberry.argument(description="More conditions; each one set must hold.")
        ] = None,
        order_by: Annotated[
            Optional[ErpRequestOrder], strawberry.argument(description="The order; null: SENT_AT DESC.")
        ] = None,
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
        return connection(page, ErpRequest.from_record, info)

    @described("An ERP request by id; null when it does not exist or the viewer cannot see its project.")
    async def erp_request(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="An ErpRequest id.")]
    ) -> Optional[ErpRequest]:
        request = await queries.visible_request(info.context, str(id))
        return ErpRequest.from_record(request) if request is not None else None

    @described("The company's ERP connection and what its connector supports; null when the company has none.")
    async def erp_connection(self, info: Ctx) -> Optional[ErpConnection]:
        viewer = info.context.viewer
        connector = info.context.services.connectors.get(viewer.erp_connector, viewer.erp_settings)
        return ErpConnection.of(connector) if connector is not None else None

    @described(f"The company's cost codes, by code. {at_most('Query.costCodes')}")
    async def cost_codes(self, info: Ctx) -> list[CostCode]:
        return [CostCode.from_record(r) for r in await queries.cost_codes(info.context)]

    @described(f"The company's cost types, by code. {at_most('Query.costTypes')}")
    async def cost_types(self, info: Ctx) -> list[CostType]:
        return [CostType.from_record(r) for r in await queries.cost_types(info.context)]
