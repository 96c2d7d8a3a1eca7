"""Projects and the company's cost lists (cost codes, cost types)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from persistence.records import CostCodeRecord, CostTypeRecord, ProjectRecord
from schema.common import Ctx, Node, described, node_id
from schema.enums import PermissionLevel

if TYPE_CHECKING:
    from schema.budgets import Budget


@strawberry.type(description="An entry of the company's cost code list (e.g. 03-300, Cast-in-place concrete).")
class CostCode(Node):
    id: strawberry.ID = node_id("CostCode")
    code: str = strawberry.field(description="The code, unique in the company (at most 40 characters).")
    description: str = strawberry.field(description="What the code stands for (at most 200 characters).")
    erp_synced: bool = strawberry.field(
        description="The code exists in the ERP (syncProjectToERP of a project whose lines use it); a send needs "
        "every code it uses synced (else COST_CODE_NOT_SYNCED)."
    )

    @classmethod
    def from_record(cls, r: CostCodeRecord) -> CostCode:
        return cls(id=strawberry.ID(r.id), code=r.code, description=r.description, erp_synced=r.erp_synced)


@strawberry.type(
    description="An entry of the company's cost type list (e.g. L labor, M material, E equipment, S subcontract)."
)
class CostType(Node):
    id: strawberry.ID = node_id("CostType")
    code: str = strawberry.field(description="The code, unique in the company (at most 20 characters).")
    name: str = strawberry.field(description="What the type stands for (at most 100 characters).")
    erp_synced: bool = strawberry.field(
        description="The type exists in the ERP (syncProjectToERP of a project whose lines use it); a send needs "
        "every type it uses synced (else COST_TYPE_NOT_SYNCED)."
    )

    @classmethod
    def from_record(cls, r: CostTypeRecord) -> CostType:
        return cls(id=strawberry.ID(r.id), code=r.code, name=r.name, erp_synced=r.erp_synced)


@strawberry.type(
    description="A construction project (a job in the ERP) and its one budget. Visible to its members (any "
    "Budget tool permission), company admins and ERP Integrations users."
)
class Project(Node):
    id: strawberry.ID = node_id("Project")
    name: str = strawberry.field(description="The project's name (at most 200 characters).")
    number: str = strawberry.field(description="The project's number, unique in the company (at most 60 characters).")
    erp_job_id: Optional[str] = strawberry.field(
        description="The job's id in the ERP; null until the project is synced."
    )
    erp_synced: bool = strawberry.field(
        description="The project is synced with the ERP as a job (erpJobId is set); a send needs it (else "
        "PROJECT_NOT_SYNCED)."
    )

    @described("The project's budget (every project has exactly one, created with it).")
    async def budget(self, info: Ctx) -> Annotated[Budget, strawberry.lazy("schema.budgets")]:
        from schema.budgets import Budget

        budget = await info.context.loaders.budget_by_project.load(str(self.id))
        assert budget is not None, "every project has its budget"
        return Budget.from_record(budget, info.context.viewer.currency)

    @described(
        "The viewer's Budget tool permission on this project (NONE when the viewer sees it only as a company admin "
        "or an ERP Integrations user)."
    )
    async def viewer_permission(self, info: Ctx) -> PermissionLevel:
        return (await info.context.loaders.access.load(str(self.id))).budget_permission

    @classmethod
    def from_record(cls, r: ProjectRecord) -> Project:
        return cls(
            id=strawberry.ID(r.id),
            name=r.name,
            number=r.number,
            erp_job_id=r.erp_job_id,
            erp_synced=r.erp_job_id is not None,
        )


async def load_project(info: Ctx, project_id: str) -> Project:
    """The project a record points at (a budget's, a request's, an event's): in the viewer's company."""
    project = await info.context.loaders.project.load(project_id)
    assert project is not None, f"project {project_id} is referenced but missing"
    return Project.from_record(project)
