"""GraphQL input types and mutation payloads."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import strawberry

from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.common import UserError
from schema.enums import ErpDecision
from schema.projects import CostCode, CostType, Project
from schema.requests import ErpRequest


@strawberry.input
class CreateProjectInput:
    name: str
    number: str


@strawberry.input
class CreateCostCodeInput:
    code: str
    description: str


@strawberry.input
class CreateCostTypeInput:
    code: str
    name: str


@strawberry.input
class BudgetLineItemFields:
    cost_code_id: strawberry.ID
    cost_type_id: strawberry.ID
    sub_job: Optional[str] = None
    description: Optional[str] = None
    original_amount: Decimal
    quantity: Optional[Decimal] = None
    unit_of_measure: Optional[str] = None
    unit_cost: Optional[Decimal] = None


@strawberry.input
class CreateBudgetLineItemInput:
    budget_id: strawberry.ID
    item: BudgetLineItemFields
    expected_version: Optional[int] = None


@strawberry.input
class UpdateBudgetLineItemInput:
    id: strawberry.ID
    description: Optional[str] = strawberry.UNSET
    original_amount: Optional[Decimal] = strawberry.UNSET
    quantity: Optional[Decimal] = strawberry.UNSET
    unit_of_measure: Optional[str] = strawberry.UNSET
    unit_cost: Optional[Decimal] = strawberry.UNSET
    expected_version: Optional[int] = None


@strawberry.input(description="Bulk create-or-update by (cost code, cost type, sub job); all or nothing.")
class ImportBudgetLineItemsInput:
    budget_id: strawberry.ID
    items: list[BudgetLineItemFields]
    expected_version: Optional[int] = None


@strawberry.input
class CreateBudgetModificationInput:
    budget_id: strawberry.ID
    from_line_item_id: Optional[strawberry.ID] = None
    to_line_item_id: Optional[strawberry.ID] = None
    amount: Decimal
    notes: Optional[str] = None
    expected_version: Optional[int] = None


@strawberry.input(
    description="expectedVersion: refuse with VERSION_CONFLICT if the budget changed since. idempotencyKey: a "
    "retried call with the same key returns the first call's result and changes nothing."
)
class BudgetActionInput:
    budget_id: strawberry.ID
    expected_version: Optional[int] = None
    idempotency_key: Optional[str] = None


@strawberry.input
class DecideExportInput:
    erp_request_id: strawberry.ID
    decision: ErpDecision
    reason: Optional[str] = None
    idempotency_key: Optional[str] = None


@strawberry.input
class ErpRequestActionInput:
    erp_request_id: strawberry.ID
    erp_reference: Optional[str] = None
    idempotency_key: Optional[str] = None
    entry_count: Optional[int] = strawberry.field(
        default=None,
        description="confirmJobCostPosting: how many entries were posted (the ERP's posting journal). Must equal "
        "the request's entryCount; required when the connection sets require_posting_totals.",
    )
    total_amount: Optional[Decimal] = strawberry.field(
        default=None,
        description="confirmJobCostPosting: the signed total of the posted entries. Must equal the request's "
        "entriesTotal; required when the connection sets require_posting_totals.",
    )


@strawberry.type
class ProjectPayload:
    project: Optional[Project]
    user_errors: list[UserError]


@strawberry.type
class CostCodePayload:
    cost_code: Optional[CostCode]
    user_errors: list[UserError]


@strawberry.type
class CostTypePayload:
    cost_type: Optional[CostType]
    user_errors: list[UserError]


@strawberry.type
class BudgetPayload:
    budget: Optional[Budget]
    user_errors: list[UserError]


@strawberry.type
class BudgetLineItemPayload:
    line_item: Optional[BudgetLineItem]
    budget: Optional[Budget]
    user_errors: list[UserError]


@strawberry.type
class BudgetModificationPayload:
    modification: Optional[BudgetModification]
    budget: Optional[Budget]
    user_errors: list[UserError]


@strawberry.type
class ErpRequestPayload:
    erp_request: Optional[ErpRequest]
    budget: Optional[Budget]
    user_errors: list[UserError]
