"""GraphQL input types (the payloads mutations return are in schema.payloads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

import strawberry

from schema.enums import ErpDecision

# Text inputs are trimmed; the lengths are in characters, as the columns hold them.
EXPECTED_VERSION = (
    "Refuse with VERSION_CONFLICT unless the budget is at this version (Budget.version); null: no check."
)
IDEMPOTENCY_KEY = (
    "A key you choose per intended action (at most 200 characters, e.g. a UUID): a retried call with the same key "
    "and input returns the first call's result and changes nothing; the same key with other input is "
    "VALIDATION_FAILED. Keys are per user and mutation."
)


def _described(description: str, default: object = None) -> Any:
    return strawberry.field(default=default, description=description)


@strawberry.input(description="A new project.")
class CreateProjectInput:
    name: str = strawberry.field(description="The project's name (not blank, at most 200 characters).")
    number: str = strawberry.field(
        description="The project's number (not blank, at most 60 characters), unique in the company."
    )


@strawberry.input(description="A new entry of the company's cost code list.")
class CreateCostCodeInput:
    code: str = strawberry.field(description="The code (not blank, at most 40 characters), unique in the company.")
    description: str = strawberry.field(description="What it stands for (not blank, at most 200 characters).")


@strawberry.input(description="A new entry of the company's cost type list.")
class CreateCostTypeInput:
    code: str = strawberry.field(description="The code (not blank, at most 20 characters), unique in the company.")
    name: str = strawberry.field(description="What it stands for (not blank, at most 100 characters).")


@strawberry.input(
    description="A line item's fields. Amounts: decimal strings (or Int) in the company's currency, at most 2 "
    "decimals; quantities and unit costs at most 4."
)
class BudgetLineItemFields:
    cost_code_id: strawberry.ID = strawberry.field(description="A CostCode id of the company (else NOT_FOUND).")
    cost_type_id: strawberry.ID = strawberry.field(description="A CostType id of the company (else NOT_FOUND).")
    sub_job: Optional[str] = _described("The sub job (at most 60 characters), part of the line's key; blank: none.")
    description: Optional[str] = _described("Free text (at most 500 characters).")
    original_amount: Decimal = strawberry.field(
        description="The original budget amount. A locked budget only takes new lines of amount 0 (else "
        "BUDGET_LOCKED)."
    )
    quantity: Optional[Decimal] = _described("Units of the estimate (at most 4 decimals).")
    unit_of_measure: Optional[str] = _described("The unit of quantity, e.g. CY (at most 20 characters).")
    unit_cost: Optional[Decimal] = _described("Cost per unit (at most 4 decimals).")


@strawberry.input(description="A new line for a budget.")
class CreateBudgetLineItemInput:
    budget_id: strawberry.ID = strawberry.field(description="The Budget to add the line to.")
    item: BudgetLineItemFields = strawberry.field(description="The line's fields.")
    expected_version: Optional[int] = _described(EXPECTED_VERSION)


@strawberry.input(
    description="Changes to one line of an unlocked budget: a field left out stays as it is; null clears an "
    "optional one. The line's key (cost code, cost type, sub job) cannot change. Naming no field changes nothing, "
    "not even the version."
)
class UpdateBudgetLineItemInput:
    id: strawberry.ID = strawberry.field(description="The BudgetLineItem to change.")
    description: Optional[str] = _described(
        "New description (at most 500 characters); null clears it.", strawberry.UNSET
    )
    original_amount: Optional[Decimal] = _described(
        "New original amount (at most 2 decimals); null is refused.", strawberry.UNSET
    )
    quantity: Optional[Decimal] = _described("New quantity (at most 4 decimals); null clears it.", strawberry.UNSET)
    unit_of_measure: Optional[str] = _described(
        "New unit of measure (at most 20 characters); null clears it.", strawberry.UNSET
    )
    unit_cost: Optional[Decimal] = _described("New unit cost (at most 4 decimals); null clears it.", strawberry.UNSET)
    expected_version: Optional[int] = _described(EXPECTED_VERSION)


@strawberry.input(description="Bulk create-or-update by (cost code, cost type, sub job); all or nothing.")
class ImportBudgetLineItemsInput:
    budget_id: strawberry.ID = strawberry.field(description="The Budget to import into.")
    items: list[BudgetLineItemFields] = strawberry.field(
        description="The rows (at least one). A row whose key matches an existing line replaces that line's "
        "description, amount, quantity, unit of measure and unit cost (left out: cleared); any other row adds a "
        "line at the end. Every bad row is reported, `field` starting with [\"input\", \"items\", \"<index>\"]."
    )
    expected_version: Optional[int] = _described(EXPECTED_VERSION)


@strawberry.input(
    description="Money moved on a locked budget: name fromLineItemId, toLineItemId or both (two different lines of "
    "this budget)."
)
class CreateBudgetModificationInput:
    budget_id: strawberry.ID = strawberry.field(description="The Budget to modify.")
    from_line_item_id: Optional[strawberry.ID] = _described(
        "The BudgetLineItem the amount moves out of; null: the amount is added to the budget."
    )
    to_line_item_id: Optional[strawberry.ID] = _described(
        "The BudgetLineItem the amount moves into; null: the amount is taken off the budget."
    )
    amount: Decimal = strawberry.field(
        description="The amount moved: greater than 0, at most 2 decimals, in the company's currency."
    )
    notes: Optional[str] = _described("Why (at most 2,000 characters).")
    expected_version: Optional[int] = _described(EXPECTED_VERSION)


@strawberry.input(
    description="expectedVersion: refuse with VERSION_CONFLICT if the budget changed since. idempotencyKey: a "
    "retried call with the same key returns the first call's result and changes nothing."
)
class BudgetActionInput:
    budget_id: strawberry.ID = strawberry.field(description="The Budget to act on.")
    expected_version: Optional[int] = _described(EXPECTED_VERSION)
    idempotency_key: Optional[str] = _described(IDEMPOTENCY_KEY)


@strawberry.input(description="An approver's decision on a request PENDING_ACCEPTANCE.")
class DecideExportInput:
    erp_request_id: strawberry.ID = strawberry.field(description="The ErpRequest to decide.")
    decision: ErpDecision = strawberry.field(description="ACCEPT or REJECT.")
    reason: Optional[str] = _described(
        "Required for REJECT (not blank, at most 2,000 characters): the sender reads it. Given with ACCEPT, it is "
        "recorded on the event."
    )
    idempotency_key: Optional[str] = _described(IDEMPOTENCY_KEY)


@strawberry.input(description="A request to act on: retryExport, confirmJobCostPosting.")
class ErpRequestActionInput:
    erp_request_id: strawberry.ID = strawberry.field(description="The ErpRequest to act on.")
    erp_reference: Optional[str] = _described(
        "confirmJobCostPosting: the ERP's document or batch id of the posting (at most 200 characters), kept as "
        "ErpRequest.erpReference. Ignored by retryExport."
    )
    idempotency_key: Optional[str] = _described(IDEMPOTENCY_KEY)
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
