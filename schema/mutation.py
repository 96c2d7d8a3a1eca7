"""The Mutation root: input -> service call -> payload. Refusals arrive as DomainErrors and leave as
userErrors; the payload's objects are read after the commit, when selected (schema.payloads)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import budget_lines, company_setup, erp_requests, locking
from resolvers.context import Context
from resolvers.input_validation import LineFields
from resolvers.service import Outcome
from schema import notifications as notification_settings
from schema.common import Ctx, described_mutation
from schema.inputs import (
    EXPECTED_VERSION,
    BudgetActionInput,
    BudgetLineItemFields,
    CreateBudgetLineItemInput,
    CreateBudgetModificationInput,
    CreateCostCodeInput,
    CreateCostTypeInput,
    CreateProjectInput,
    DecideExportInput,
    ErpRequestActionInput,
    ImportBudgetLineItemsInput,
    UpdateBudgetLineItemInput,
)
from schema.payloads import (
    BudgetLineItemPayload,
    BudgetModificationPayload,
    BudgetPayload,
    CostCodePayload,
    CostTypePayload,
    ErpRequestPayload,
    ProjectPayload,
)


async def _budget_payload(ctx: Context, outcome: Outcome) -> BudgetPayload:
    return BudgetPayload.of(ctx, outcome)


async def _request_payload(ctx: Context, outcome: Outcome) -> ErpRequestPayload:
    return ErpRequestPayload.of(ctx, outcome)


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


@strawberry.type(
    description="Every change. Each mutation returns a payload whose userErrors says why it was refused (see "
    "ErrorCode); when it is not empty nothing changed. Besides the codes each mutation names, input text that "
    "cannot be stored is VALIDATION_FAILED, and a concurrent change that won is VERSION_CONFLICT (retry)."
)
class Mutation:
    @described_mutation(
        "Create a project with its budget (unlocked, NOT_SENT); the creator gets ADMIN on its Budget tool. Needs a "
        "company admin. userErrors: FORBIDDEN, VALIDATION_FAILED (blank or too long, number already used)."
    )
    async def create_project(
        self, info: Ctx, input: Annotated[CreateProjectInput, strawberry.argument(description="The project to create.")]
    ) -> ProjectPayload:
        outcome = await company_setup.create_project(info.context, input.name, input.number)
        return ProjectPayload.of(info.context, outcome)

    @described_mutation(
        "Add a cost code to the company's list (erpSynced false until syncProjectToERP of a project whose lines use "
        "it). Needs a company admin. userErrors: FORBIDDEN, VALIDATION_FAILED (blank or too long, code already "
        "used)."
    )
    async def create_cost_code(
        self,
        info: Ctx,
        input: Annotated[CreateCostCodeInput, strawberry.argument(description="The cost code to create.")],
    ) -> CostCodePayload:
        outcome = await company_setup.create_cost_list_entry(info.context, "costCode", input.code, input.description)
        return CostCodePayload.of(info.context, outcome)

    @described_mutation(
        "Add a cost type to the company's list (erpSynced false until syncProjectToERP of a project whose lines use "
        "it). Needs a company admin. userErrors: FORBIDDEN, VALIDATION_FAILED (blank or too long, code already "
        "used)."
    )
    async def create_cost_type(
        self,
        info: Ctx,
        input: Annotated[CreateCostTypeInput, strawberry.argument(description="The cost type to create.")],
    ) -> CostTypePayload:
        outcome = await company_setup.create_cost_list_entry(info.context, "costType", input.code, input.name)
        return CostTypePayload.of(info.context, outcome)

    @described_mutation(
        "Create or link the project's job and its cost codes/types in the ERP through the connector; the cost codes "
        "and types the budget's lines use become erpSynced. Run it again after adding lines with new codes. Needs "
        "ERP Integrations ADMIN, a company admin, or ADMIN on the project's Budget tool. userErrors: NOT_FOUND, "
        "FORBIDDEN, ERP_NOT_CONNECTED, ERP_SYNC_FAILED.",
        name="syncProjectToERP",
    )
    async def sync_project_to_erp(
        self, info: Ctx, project_id: Annotated[strawberry.ID, strawberry.argument(description="The Project to sync.")]
    ) -> ProjectPayload:
        outcome = await company_setup.sync_project_to_erp(info.context, str(project_id))
        return ProjectPayload.of(info.context, outcome)

    @described_mutation(
        "Add a line to a budget; a locked budget only takes lines of amount 0. Needs STANDARD or ADMIN on the "
        "project's Budget tool. userErrors: NOT_FOUND (budget, cost code, cost type), FORBIDDEN, BUDGET_LOCKED, "
        "EXPORT_IN_PROGRESS, DUPLICATE_LINE_ITEM, AMOUNT_OUT_OF_RANGE, VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def create_budget_line_item(
        self,
        info: Ctx,
        input: Annotated[CreateBudgetLineItemInput, strawberry.argument(description="The budget and the new line.")],
    ) -> BudgetLineItemPayload:
        outcome = await budget_lines.create_line_item(
            info.context, str(input.budget_id), _line_fields(input.item), input.expected_version
        )
        return BudgetLineItemPayload.of(info.context, outcome)

    @described_mutation(
        "Change fields of a line of an unlocked budget. Needs STANDARD or ADMIN on the project's Budget tool. "
        "userErrors: NOT_FOUND, FORBIDDEN, BUDGET_LOCKED, EXPORT_IN_PROGRESS, AMOUNT_OUT_OF_RANGE, "
        "VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def update_budget_line_item(
        self,
        info: Ctx,
        input: Annotated[
            UpdateBudgetLineItemInput, strawberry.argument(description="The line and the fields to change.")
        ],
    ) -> BudgetLineItemPayload:
        changes = {
            name: getattr(input, name)
            for name in ("description", "original_amount", "quantity", "unit_of_measure", "unit_cost")
            if getattr(input, name) is not strawberry.UNSET
        }
        outcome = await budget_lines.update_line_item(info.context, str(input.id), changes, input.expected_version)
        return BudgetLineItemPayload.of(info.context, outcome)

    @described_mutation(
        "Delete a line of an unlocked budget that was never part of an ERP request and has no modifications (set a "
        "sent line's amount to 0 instead). Needs STANDARD or ADMIN on the project's Budget tool. userErrors: "
        "NOT_FOUND, FORBIDDEN, BUDGET_LOCKED, EXPORT_IN_PROGRESS, AMOUNT_OUT_OF_RANGE, VALIDATION_FAILED, "
        "VERSION_CONFLICT."
    )
    async def delete_budget_line_item(
        self,
        info: Ctx,
        id: Annotated[strawberry.ID, strawberry.argument(description="The BudgetLineItem to delete.")],
        expected_version: Annotated[int | None, strawberry.argument(description=EXPECTED_VERSION)] = None,
    ) -> BudgetPayload:
        return await _budget_payload(
            info.context, await budget_lines.delete_line_item(info.context, str(id), expected_version)
        )

    @described_mutation(
        "Create or update many lines at once by key (cost code, cost type, sub job); all or nothing: every bad row "
        "is reported and then nothing changes. A locked budget only takes new lines of amount 0. Needs STANDARD or "
        "ADMIN on the project's Budget tool. userErrors: NOT_FOUND (budget, cost code, cost type), FORBIDDEN, "
        "BUDGET_LOCKED, EXPORT_IN_PROGRESS, DUPLICATE_LINE_ITEM, AMOUNT_OUT_OF_RANGE, VALIDATION_FAILED, "
        "VERSION_CONFLICT."
    )
    async def import_budget_line_items(
        self,
        info: Ctx,
        input: Annotated[ImportBudgetLineItemsInput, strawberry.argument(description="The budget and the rows.")],
    ) -> BudgetPayload:
        outcome = await budget_lines.import_line_items(
            info.context, str(input.budget_id), [_line_fields(i) for i in input.items], input.expected_version
        )
        return await _budget_payload(info.context, outcome)

    @described_mutation(
        "Move money on a locked budget: between two lines, onto one or off one. Needs STANDARD or ADMIN on the "
        "project's Budget tool. userErrors: NOT_FOUND (budget, line), FORBIDDEN, BUDGET_NOT_LOCKED, "
        "EXPORT_IN_PROGRESS, AMOUNT_OUT_OF_RANGE, VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def create_budget_modification(
        self,
        info: Ctx,
        input: Annotated[
            CreateBudgetModificationInput, strawberry.argument(description="The budget, lines and amount.")
        ],
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
        return BudgetModificationPayload.of(info.context, outcome)

    @described_mutation(
        "Lock a budget: original amounts become read-only, changes go through modifications, and it can be sent. "
        "Needs ADMIN on the project's Budget tool or the Lock Budget grant. userErrors: NOT_FOUND, FORBIDDEN, "
        "BUDGET_LOCKED (already locked), VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def lock_budget(
        self, info: Ctx, input: Annotated[BudgetActionInput, strawberry.argument(description="The budget to lock.")]
    ) -> BudgetPayload:
        outcome = await locking.lock_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _budget_payload(info.context, outcome)

    @described_mutation(
        "Unlock a locked budget, allowed when its latest request is none, RETRIEVED, REJECTED or SYNCED "
        "(unlockBlockers lists what stands in the way). Needs ADMIN on the project's Budget tool. userErrors: "
        "NOT_FOUND, FORBIDDEN, BUDGET_NOT_LOCKED, EXPORT_IN_PROGRESS, AWAITING_POSTING, VALIDATION_FAILED, "
        "VERSION_CONFLICT."
    )
    async def unlock_budget(
        self, info: Ctx, input: Annotated[BudgetActionInput, strawberry.argument(description="The budget to unlock.")]
    ) -> BudgetPayload:
        outcome = await locking.unlock_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _budget_payload(info.context, outcome)

    @described_mutation(
        "Send a locked budget to the ERP Integrations queue: a new request PENDING_ACCEPTANCE with a frozen snapshot "
        "of what is not exported yet (pendingExport), and approvers are notified. Refused for exactly the reasons "
        "sendBlockers lists. Needs ADMIN on the project's Budget tool or the Send and Retrieve grant. userErrors: "
        "NOT_FOUND, FORBIDDEN, BUDGET_NOT_LOCKED, ERP_NOT_CONNECTED, PROJECT_NOT_SYNCED, COST_CODE_NOT_SYNCED, "
        "COST_TYPE_NOT_SYNCED, SUB_JOB_NOT_SUPPORTED, MODIFICATIONS_NOT_SUPPORTED, ERP_FORMAT_INVALID, "
        "EXPORT_IN_PROGRESS, AWAITING_POSTING, AMOUNT_OUT_OF_RANGE, NOTHING_TO_SEND, VALIDATION_FAILED, "
        "VERSION_CONFLICT.",
        name="sendToERP",
    )
    async def send_to_erp(
        self, info: Ctx, input: Annotated[BudgetActionInput, strawberry.argument(description="The budget to send.")]
    ) -> ErpRequestPayload:
        outcome = await erp_requests.send_to_erp(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @described_mutation(
        "Take back the budget's latest request while it is PENDING_ACCEPTANCE: it becomes RETRIEVED, nothing is "
        "exported, and the budget stays locked. Needs ADMIN on the project's Budget tool or the Send and Retrieve "
        "grant. userErrors: NOT_FOUND, FORBIDDEN, NOT_PENDING, VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def retrieve_budget(
        self,
        info: Ctx,
        input: Annotated[BudgetActionInput, strawberry.argument(description="The budget whose request to retrieve.")],
    ) -> ErpRequestPayload:
        outcome = await erp_requests.retrieve_budget(
            info.context, str(input.budget_id), input.expected_version, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @described_mutation(
        "Decide a request PENDING_ACCEPTANCE: ACCEPT makes it EXPORTING (the ERP connector exports its snapshot in "
        "the background), REJECT with a reason makes it REJECTED (the sender is notified). Needs the accounting "
        "approver flag and ERP Integrations STANDARD or ADMIN. userErrors: NOT_FOUND, FORBIDDEN, NOT_PENDING, "
        "ALREADY_DECIDED, REASON_REQUIRED, VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def decide_export(
        self,
        info: Ctx,
        input: Annotated[DecideExportInput, strawberry.argument(description="The request and the decision.")],
    ) -> ErpRequestPayload:
        outcome = await erp_requests.decide_export(
            info.context, str(input.erp_request_id), input.decision.value, input.reason, input.idempotency_key
        )
        return await _request_payload(info.context, outcome)

    @described_mutation(
        "Export a failed request again: EXPORT_FAILED becomes EXPORTING; no entry is ever exported twice. Needs "
        "the accounting approver flag and ERP Integrations STANDARD or ADMIN. userErrors: NOT_FOUND, FORBIDDEN, "
        "NOT_FAILED, VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def retry_export(
        self,
        info: Ctx,
        input: Annotated[ErpRequestActionInput, strawberry.argument(description="The request to retry.")],
    ) -> ErpRequestPayload:
        outcome = await erp_requests.retry_export(info.context, str(input.erp_request_id), input.idempotency_key)
        return await _request_payload(info.context, outcome)

    @described_mutation(
        "The ERP reports the exported entries posted in Job Cost (integrator or ERP admin): AWAITING_POSTING "
        "becomes SYNCED. The posting journal's entryCount and totalAmount, when given (required where "
        "ErpCapabilities.requiresPostingTotals), must equal the request's entryCount and entriesTotal. Needs ERP "
        "Integrations ADMIN. userErrors: NOT_FOUND, FORBIDDEN, NOT_PENDING, POSTING_TOTALS_MISMATCH, "
        "VALIDATION_FAILED, VERSION_CONFLICT."
    )
    async def confirm_job_cost_posting(
        self,
        info: Ctx,
        input: Annotated[
            ErpRequestActionInput,
            strawberry.argument(description="The request, with the posting's reference and totals."),
        ],
    ) -> ErpRequestPayload:
        outcome = await erp_requests.confirm_posting(
            info.context,
            str(input.erp_request_id),
            input.erp_reference,
            input.idempotency_key,
            entry_count=input.entry_count,
            total_amount=input.total_amount,
        )
        return await _request_payload(info.context, outcome)

    @described_mutation(
        "Turn the viewer's email notifications on or off, per kind; kinds not named stay as they are. Any user, for "
        "themselves. userErrors: VALIDATION_FAILED (a kind given as null)."
    )
    async def update_notification_settings(
        self,
        info: Ctx,
        input: Annotated[
            notification_settings.UpdateNotificationSettingsInput,
            strawberry.argument(description="The kinds to change."),
        ],
    ) -> notification_settings.NotificationSettingsPayload:
        return await notification_settings.update(info.context, input)
