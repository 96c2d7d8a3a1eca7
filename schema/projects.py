"""Projects and the company's cost lists (cost codes, cost types)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from persistence.records import CostCodeRecord, CostTypeRecord, ProjectRecord
from schema.common import Ctx, Node, described
from schema.enums import PermissionLevel

if TYPE_CHECKING:
    from schema.budgets import Budget


@strawberry.type
class CostCode(Node):
    id: strawberry.ID
    code: str
    description: str
    erp_synced: bool

    @classmethod
    def from_record(cls, r: CostCodeRecord) -> CostCode:
        return cls(id=strawberry.ID(r.id), code=r.code, description=r.description, erp_synced=r.erp_synced)


@strawberry.type
class CostType(Node):
    id: strawberry.ID
    code: str
    name: str
    erp_synced: bool

    @classmethod
    def from_record(cls, r: CostTypeRecord) -> CostType:
        return cls(id=strawberry.ID(r.id), code=r.code, name=r.name, erp_synced=r.erp_synced)


@strawberry.type
class Project(Node):
    id: strawberry.ID
    name: str
    number: str
    erp_job_id: Optional[str] = strawberry.field(
        description="The job's id in the ERP; null until the project is synced."
    )
    erp_synced: bool

    @strawberry.field
    async def budget(self, info: Ctx) -> Annotated[Budget, strawberry.lazy("schema.budgets")]:
        from schema.budgets import Budget

        budget = await info.context.loaders.budget_by_project.load(str(self.id))
        assert budget is not None, "every project has its budget"
        return Budget.from_record(budget, info.context.viewer.currency)

    @described("The viewer's Budget tool permission on this project.")
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
