"""Company set-up through the API: projects (each with its budget), the cost code / cost type lists, and
syncing a project to the ERP as a job."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Literal

from domain import budget as wf
from domain import permissions
from domain.errors import DomainError, DomainErrors, ErrorCode, invalid, not_found
from domain.permissions import PermissionLevel, ProjectAccess
from domain.status import ExportStatus
from erp.base import Connector, ConnectorError, JobSpec
from persistence.ids import new_id
from persistence.records import BudgetRecord, CostCodeRecord, CostTypeRecord, ProjectRecord
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers import input_validation as check
from resolvers.budget_state import budget_state
from resolvers.context import Context
from resolvers.service import Changed, Outcome, refusals, run_mutation, run_unit

SYNC_TIMEOUT_SECONDS = 30.0

CostListKind = Literal["costCode", "costType"]


def connector_of(ctx: Context) -> Connector | None:
    return ctx.services.connectors.get(ctx.viewer.erp_connector, ctx.viewer.erp_settings)


async def create_project(ctx: Context, name: str, number: str) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        wf.require_none([permissions.company_admin_refusal(actor, "creating a project")])
        project_id = await add_project(uow, actor.company_id, name, number, None, at=ctx.services.clock())
        await uow.access.grant(actor.user_id, project_id, ProjectAccess(PermissionLevel.ADMIN))
        return Changed(project_id=project_id)

    return await run_mutation(ctx, "createProject", body)


async def add_project(
    uow: AbstractUnitOfWork, company_id: str, name: str, number: str, erp_job_id: str | None, *, at: datetime
) -> str:
    """A project with its (empty) budget; `erp_job_id` links it to a job that already exists in the ERP.
    createProject (which grants its creator Admin on it) and `budgetbridge project create` both add projects
    here, so they refuse the same input. Fields are named as the API names them (["input", "name"], ...)."""
    clean_name = check.required_text(name, ["input", "name"], max_len=200)
    clean_number = check.required_text(number, ["input", "number"], max_len=60)
    clean_job = check.text(erp_job_id, ["input", "erpJobId"], max_len=100)
    if await uow.projects.number_taken(company_id, clean_number):
        raise invalid(f"project number {clean_number} is already used", ["input", "number"])
    project_id = new_id("Project")
    await uow.projects.add(
        ProjectRecord(
            id=project_id, company_id=company_id, name=clean_name, number=clean_number, erp_job_id=clean_job,
            created_at=at,
        )
    )
    await uow.budgets.add(
        BudgetRecord(
            id=new_id("Budget"),
            company_id=company_id,
            project_id=project_id,
            locked=False,
            locked_at=None,
            locked_by_id=None,
            version=1,
            export_status=ExportStatus.NOT_SENT.value,
            last_request_id=None,
            request_count=0,
        )
    )
    return project_id


# Per kind: the label's input name, the lengths of the code and the label (as stored), the id prefix.
_COST_LISTS: dict[CostListKind, tuple[str, int, int, str]] = {
    "costCode": ("description", 40, 200, "CostCode"),
    "costType": ("name", 20, 100, "CostType"),
}


async def create_cost_list_entry(ctx: Context, kind: CostListKind, code: str, label: str) -> Outcome:
    """createCostCode / createCostType: the two company lists differ only in their label column."""
    actor = ctx.actor
    label_column, code_length, label_length, id_type = _COST_LISTS[kind]

    async def body(uow: AbstractUnitOfWork) -> Changed:
        what = "a cost code" if kind == "costCode" else "a cost type"
        wf.require_none([permissions.company_admin_refusal(actor, f"creating {what}")])
        clean_code = check.required_text(code, ["input", "code"], max_len=code_length)
        clean_label = check.required_text(label, ["input", label_column], max_len=label_length)
        repository = uow.cost_codes if kind == "costCode" else uow.cost_types
        if await repository.code_taken(actor.company_id, clean_code):
            raise invalid(f"code {clean_code} already exists", ["input", "code"])
        row_id = new_id(id_type)
        if kind == "costCode":
            await uow.cost_codes.add(CostCodeRecord(row_id, actor.company_id, clean_code, clean_label, False))
            return Changed(cost_code_id=row_id)
        await uow.cost_types.add(CostTypeRecord(row_id, actor.company_id, clean_code, clean_label, False))
        return Changed(cost_type_id=row_id)

    return await run_mutation(ctx, f"create_{kind}", body)


async def sync_project_to_erp(ctx: Context, project_id: str) -> Outcome:
    """The connector call happens between two short units of work: an ERP is another system, and holding
    our locks across its latency would stall every writer of the company."""
    actor = ctx.actor
    connector = connector_of(ctx)

    async def load(uow: AbstractUnitOfWork) -> tuple[ProjectRecord, JobSpec, list[str], list[str]]:
        check.identifier(project_id, ["projectId"])
        project = await uow.projects.get(actor.company_id, project_id)
        if project is None:
            raise not_found("project", ["projectId"])
        wf.require_none([permissions.sync_project_refusal(actor, await uow.access.of(actor.user_id, project_id))])
        if connector is None:
            raise DomainError(ErrorCode.ERP_NOT_CONNECTED, "the company has no ERP connection")
        lines = await uow.line_items.of_budget(await _budget_id(uow, project))
        codes = await uow.cost_codes.get_many(actor.company_id, sorted({r.cost_code_id for r in lines}))
        types = await uow.cost_types.get_many(actor.company_id, sorted({r.cost_type_id for r in lines}))
        spec = JobSpec(
            company_id=actor.company_id,
            project_id=project.id,
            number=project.number,
            name=project.name,
            cost_codes=tuple((c.code, c.description) for c in codes),
            cost_types=tuple((t.code, t.name) for t in types),
            pairs=tuple(sorted({(r.cost_code, r.cost_type) for r in lines})),
        )
        return project, spec, [c.id for c in codes], [t.id for t in types]

    try:
        project, spec, code_ids, type_ids = await run_unit(ctx.services, load)
    except (DomainError, DomainErrors) as exc:
        return Outcome(errors=refusals(exc))
    assert connector is not None
    try:
        async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
            job_id = await connector.sync_job(spec)
    except (ConnectorError, TimeoutError) as exc:
        message = str(exc) if isinstance(exc, ConnectorError) else "the ERP did not answer in time"
        return Outcome(errors=[DomainError(ErrorCode.ERP_SYNC_FAILED, f"the ERP refused the job sync: {message}")])

    async def body(uow: AbstractUnitOfWork) -> Changed:
        # The budget first, as every writer locks (persistence.unit_of_work.LockOrder).
        budget = await uow.budgets.get_for_update(actor.company_id, await _budget_id(uow, project))
        assert budget is not None
        await uow.projects.set_erp_job(project.id, job_id)
        await uow.cost_codes.mark_synced(code_ids)
        await uow.cost_types.mark_synced(type_ids)
        event = wf.sync_project(budget_state(budget), actor.user_id, job_id)
        await uow.events.append(actor.company_id, event, ctx.services.clock())
        return Changed(project_id=project.id)

    return await run_mutation(ctx, "syncProjectToERP", body)


async def _budget_id(uow: AbstractUnitOfWork, project: ProjectRecord) -> str:
    budget = await uow.budgets.of_project(project.company_id, project.id)
    assert budget is not None  # every project is created with its budget
    return budget.id
