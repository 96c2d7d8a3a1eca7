"""The Mutation root: input -> service call -> payload. Refusals arrive as DomainErrors and leave as
userErrors; the payload's objects are read after the commit, through fresh loaders."""

from __future__ import annotations

from typing import Any

import strawberry

from domain.errors import DomainError
from resolvers import budget_lines, company_setup, erp_requests, locking
from resolvers.context import Context
from resolvers.input_validation import LineFields
from resolvers.service import Outcome
from schema import notifications as notification_settings
from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.common import Ctx, UserError, described_mutation
from schema.inputs import (
    BudgetActionInput,
    BudgetLineItemFields,
    BudgetLineItemPayload,
    BudgetModificationPayload,
    BudgetPayload,
    CostCodePayload,
    CostTypePayload,
    CreateBudgetLineItemInput,
    CreateBudgetModificationInput,
    CreateCostCodeInput,
    CreateCostTypeInput,
    CreateProjectInput,
    DecideExportInput,
    ErpRequestActionInput,
    ErpRequestPayload,
    ImportBudgetLineItemsInput,
    ProjectPayload,
    UpdateBudgetLineItemInput,
)
from schema.projects import CostCode, CostType, Project
from schema.requests import ErpRequest


def user_errors(errors: list[DomainError]) -> list[UserError]:
    return [UserError(code=e.code, message=e.message, field=list(e.field) if e.field else None) for e in errors]


class _Loaded:
    """Loads the objects named in a mutation's result."""

    def __init__(self, ctx: Context, outcome: Outcome) -> None:
        self.ctx, self.changed, self.errors = ctx, outcome.changed, user_errors(outcome.errors)

    @staticmethod
    async def _load(object_id: str | None, loader: Any) -> Any:
        return await loader.load(object_id) if object_id else None

    async def budget(self) -> Budget | None:
        row = await self._load(self.changed.budget_id, self.ctx.loaders.budget)
        return Budget.from_record(row, self.ctx.viewer.currency) if row else None

    async def project(self) -> Project | None:
        row = await self._load(self.changed.project_id, self.ctx.loaders.project)
        return Project.from_record(row) if row else None

    async def erp_request(self) -> ErpRequest | None:
        row = await self._load(self.changed.erp_request_id, self.ctx.loaders.erp_request)
        return ErpRequest.from_record(row) if row else None

    async def line_item(self) -> BudgetLineItem | None:
        view = await self._load(self.changed.line_item_id, self.ctx.loaders.line_item)
        return BudgetLineItem.from_view(view) if view else None

    async def modification(self) -> BudgetModification | None:
        view = await self._load(self.changed.modification_id, self.ctx.loaders.modification)
        return BudgetModification.from_view(view) if view else None

    async def cost_code(self) -> CostCode | None:
        row = await self._load(self.changed.cost_code_id, self.ctx.loaders.cost_code)
        return CostCode.from_record(row) if row else None

    async def cost_type(self) -> CostType | None:
        row = await self._load(self.changed.cost_type_id, self.ctx.loaders.cost_type)
        return CostType.from_record(row) if row else None


async def _budget_payload(ctx: Context, outcome: Outcome) -> BudgetPayload:
    loaded = _Loaded(ctx, outcome)
    return BudgetPayload(budget=await loaded.budget(), user_errors=loaded.errors)


async def _request_payload(ctx: Context, outcome: Outcome) -> ErpRequestPayload:
    loaded = _Loaded(ctx, outcome)
    return ErpRequestPayload(
        erp_request=await loaded.erp_request(), budget=await loaded.budget(), user_errors=loaded.errors
    )


def _line_fields(item: BudgetLineItemFields) -> LineFields:
    return LineFields(
        cost_code_id=str(item.cost_code_id),
        cost_type_id=str(item.cost_type_id),
        sub_job=item.sub_job,
        description=item.description,
        original_amount=item.original_amount,
        quantity=item.quantity,
        unit_of_measure=item.unit_of_measure,
        unit_cost=item.unit_cost,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_project(self, info: Ctx, input: CreateProjectInput) -> ProjectPayload:
        loaded = _Loaded(info.context, await company_setup.create_project(info.context, input.name, input.number))
        return ProjectPayload(project=await loaded.project(), user_errors=loaded.errors)

    @strawberry.mutation
    async def create_cost_code(self, info: Ctx, input: CreateCostCodeInput) -> CostCodePayload:
        outcome = await company_setup.create_cost_list_entry(info.context, "costCode", input.code, input.description)
        loaded = _Loaded(info.context, outcome)
        return CostCodePayload(cost_code=await loaded.cost_code(), user_errors=loaded.errors)

    @strawberry.mutation
    async def create_cost_type(self, info: Ctx, input: CreateCostTypeInput) -> CostTypePayload:
        outcome = await company_setup.create_cost_list_entry(info.context, "costType", input.code, input.name)
        loaded = _Loaded(info.context, outcome)
        return CostTypePayload(cost_type=await loaded.cost_type(), user_errors=loaded.errors)

    @described_mutation(
        "Create or link the project's job and its cost codes/types in the ERP through the connector.",
        name="syncProjectToERP",
    )
    async def sync_project_to_erp(self, info: Ctx, project_id: strawberry.ID) -> ProjectPayload:
        loaded = _Loaded(info.context, await company_setup.sync_project_to_erp(info.context, str(project_id)))
        return ProjectPayload(project=await loaded.project(), user_errors=loaded.errors)

    @strawberry.mutation
    async def create_budget_line_item(self, info: Ctx, input: CreateBudgetLineItemInput) -> BudgetLineItemPayload:
        outcome = await budget_lines.create_line_item(
            info.context, str(input.budget_id), _line_fields(input.item), input.expected_version
        )
        loaded = _Loaded(info.context, outcome)
        return BudgetLineItemPayload(
            line_item=await loaded.line_item(), budget=await loaded.budget(), user_errors=loaded.errors
        )

    @strawberry.mutation
    async def update_budget_line_item(self, info: Ctx, input: UpdateBudgetLineItemInput) -> BudgetLineItemPayload:
        changes = {
            name: getattr(input, name)
            for name in ("description", "original_amount", "quantity", "unit_of_measure", "unit_cost")
            if getattr(input, name) is not strawberry.UNSET
        }
        outcome = await budget_lines.update_line_item(info.context, str(input.id), changes, input.expected_version)
        loaded = _Loaded(info.context, outcome)
        return BudgetLineItemPayload(
            line_item=await loaded.line_item(), budget=await loaded.budget(), user_errors=loaded.errors
        )

    @strawberry.mutation
    async def delete_budget_line_item(
        self, info: Ctx, id: strawberry.ID, expected_version: int | None = None
    ) -> BudgetPayload:
        return await _budget_payload(
            info.context, await budget_lines.delete_line_item(info.context, str(id), expected_version)
        )

    @strawberry.mutation
    async def import_budget_line_items(self, info: Ctx, input: ImportBudgetLineItemsInput) -> BudgetPayload:
        outcome = await budget_lines.import_line_items(
            info.context, str(input.budget_id), [_line_fields(i) for i in input.items], input.expected_version
        )
        return await _budget_payload(info.context, outcome)

    @strawberry.mutation
    async def create_budget_modification(
        self, info: Ctx, input: CreateBudgetModificationInput
    ) -> BudgetModificationPayload:
        outcome = await budget_lines.create_modification(
            info.context,
            str(input.budget_id),
            str(input.from_line_item_id) if input.from_line_item_id is not None else None,
            str(input.to_line_item_id) if input.to_line_item_id is not None else None,
            input.amount,
            input.notes,
            input.expected_version,
        )
        loaded = _Loaded(info.context, outcome)
        return BudgetModificationPayload(
            modification=await loaded.modification(), budget=await loaded.budget(), user_errors=loaded.errors
        )

    @strawberry.mutation
    async def lock_budget(self, info: Ctx, input: BudgetActionInput) -> BudgetPayload:
        outcome = await locking.lock_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _budget_payload(info.context, outcome)

    @strawberry.mutation
    async def unlock_budget(self, info: Ctx, input: BudgetActionInput) -> BudgetPayload:
        outcome = await locking.unlock_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _budget_payload(info.context, outcome)

    @described_mutation(None, name="sendToERP")
    async def send_to_erp(self, info: Ctx, input: BudgetActionInput) -> ErpRequestPayload:
        outcome = await erp_requests.send_to_erp(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @strawberry.mutation
    async def retrieve_budget(self, info: Ctx, input: BudgetActionInput) -> ErpRequestPayload:
        outcome = await erp_requests.retrieve_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @strawberry.mutation
    async def decide_export(self, info: Ctx, input: DecideExportInput) -> ErpRequestPayload:
        outcome = await erp_requests.decide_export(
            info.context, str(input.erp_request_id), input.decision.value, input.reason, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @strawberry.mutation
    async def retry_export(self, info: Ctx, input: ErpRequestActionInput) -> ErpRequestPayload:
        outcome = await erp_requests.retry_export(info.context, str(input.erp_request_id), input.idempotency_key)
        return await _request_payload(info.context, outcome)

    @described_mutation("The ERP reports the exported entries posted in Job Cost (integrator or ERP admin).")
    async def confirm_job_cost_posting(self, info: Ctx, input: ErpRequestActionInput) -> ErpRequestPayload:
        outcome = await erp_requests.confirm_posting(
            info.context,
            str(input.erp_request_id),
            input.erp_reference,
            input.idempotency_key,
            entry_count=input.entry_count,
            total_amount=input.total_amount,
        )
        return await _request_payload(info.context, outcome)

    @described_mutation("Turn the viewer's email notifications on or off, per kind; kinds not named stay as they are.")
    async def update_notification_settings(
        self, info: Ctx, input: notification_settings.UpdateNotificationSettingsInput
    ) -> notification_settings.NotificationSettingsPayload:
        return await notification_settings.update(info.context, input)
