"""A project's budget, its lines and its modifications."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Optional

import strawberry

from domain import reconciliation as rec
from domain.money import ZERO
from persistence.records import BudgetRecord
from resolvers import queries
from resolvers.pagination import capped
from resolvers.views import LineItemView, ModificationView
from schema.actions import BudgetActions
from schema.common import (
    AFTER,
    Blocker,
    Connection,
    Ctx,
    Node,
    at_most,
    blockers,
    connection,
    described,
    first_argument,
    node_id,
    selects,
)
from schema.enums import ExportStatus
from schema.events import BudgetEvent
from schema.people import User, load_known_user, load_user
from schema.projects import CostCode, CostType, Project, load_project
from schema.requests import ErpRequest, ExportLine


@strawberry.type(
    description="A line of a budget, unique by (cost code, cost type, sub job). Amounts are decimal strings in the "
    'company\'s currency with 2 decimals (e.g. "1250.00").'
)
class BudgetLineItem(Node):
    id: strawberry.ID = node_id("BudgetLineItem")
    sub_job: Optional[str] = strawberry.field(
        description="The sub job (phase, extra) within the project, part of the line's key; null when none. At most "
        "60 characters."
    )
    description: Optional[str] = strawberry.field(description="Free text (at most 500 characters); null when none.")
    original_amount: Decimal = strawberry.field(
        description="The original budget amount. Read-only while the budget is locked."
    )
    modifications_amount: Decimal = strawberry.field(
        description="Net effect of budget modifications on this line: amounts moved in minus amounts moved out."
    )
    revised_amount: Decimal = strawberry.field(description="originalAmount + modificationsAmount.")
    quantity: Optional[Decimal] = strawberry.field(
        description="Units of the estimate (up to 4 decimals); null when not given. Exported with the line's "
        "original budget (ExportEntry.quantity), as the ERP's import format carries it."
    )
    unit_of_measure: Optional[str] = strawberry.field(
        description="The unit of quantity, e.g. CY or HR (at most 20 characters); null when not given."
    )
    unit_cost: Optional[Decimal] = strawberry.field(
        description="Cost per unit (up to 4 decimals), as given; not checked against originalAmount."
    )
    erp_synced: bool = strawberry.field(
        description="Everything on this line has been exported and posted (every request that carried it is "
        "SYNCED and nothing of it is waiting to be sent)."
    )
    # Plain fields, read with the line in the same statement: no resolver call per line.
    cost_code: CostCode = strawberry.field(description="The line's cost code.")
    cost_type: CostType = strawberry.field(description="The line's cost type.")
    budget_id: strawberry.Private[str]

    @classmethod
    def from_view(cls, v: LineItemView) -> BudgetLineItem:
        return cls(
            id=strawberry.ID(v.id),
            sub_job=v.sub_job,
            description=v.description,
            original_amount=v.original_amount,
            modifications_amount=v.modifications_amount,
            revised_amount=v.revised_amount,
            quantity=v.quantity,
            unit_of_measure=v.unit_of_measure,
            unit_cost=v.unit_cost,
            # None only in a page whose query does not select erpSynced (resolvers.loaders): never sent.
            erp_synced=bool(v.erp_synced),
            budget_id=v.budget_id,
            cost_code=CostCode(
                id=strawberry.ID(v.cost_code_id),
                code=v.cost_code,
                description=v.cost_code_description,
                erp_synced=v.cost_code_synced,
            ),
            cost_type=CostType(
                id=strawberry.ID(v.cost_type_id), code=v.cost_type, name=v.cost_type_name, erp_synced=v.cost_type_synced
            ),
        )


async def load_line(info: Ctx, line_id: str | None) -> BudgetLineItem | None:
    if line_id is None:
        return None
    view = await info.context.loaders.line_item.load(line_id)
    return BudgetLineItem.from_view(view) if view is not None else None


@strawberry.type(
    description="A change made after the budget is locked: `amount` moves from one line to another, onto one line "
    "(no fromLineItem) or off one line (no toLineItem)."
)
class BudgetModification(Node):
    id: strawberry.ID = node_id("BudgetModification")
    number: int = strawberry.field(description="Numbered per budget: 1, 2, 3, ... in the order they were made.")
    amount: Decimal = strawberry.field(
        description="Always > 0: the amount moved, a decimal string in the company's currency with 2 decimals."
    )
    notes: Optional[str] = strawberry.field(description="Why, in the author's words (at most 2,000 characters).")
    created_at: datetime = strawberry.field(description="When it was made.")
    erp_synced: bool = strawberry.field(
        description="Exported and posted in the ERP's Job Cost (the request that carried it is SYNCED)."
    )
    from_line_item_id: strawberry.Private[Optional[str]]
    to_line_item_id: strawberry.Private[Optional[str]]
    created_by_id: strawberry.Private[str]

    @described("The line the amount moves out of; null when the amount is added to the budget.")
    async def from_line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await load_line(info, self.from_line_item_id)

    @described("The line the amount moves into; null when the amount is taken off the budget.")
    async def to_line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await load_line(info, self.to_line_item_id)

    @described("Who made it.")
    async def created_by(self, info: Ctx) -> User:
        return await load_known_user(info, self.created_by_id)

    @classmethod
    def from_view(cls, v: ModificationView) -> BudgetModification:
        return cls(
            id=strawberry.ID(v.id),
            number=v.number,
            amount=v.amount,
            notes=v.notes,
            created_at=v.created_at,
            erp_synced=v.erp_synced,
            from_line_item_id=v.from_line_item_id,
            to_line_item_id=v.to_line_item_id,
            created_by_id=v.created_by_id,
        )


async def load_modification(info: Ctx, modification_id: str | None) -> BudgetModification | None:
    if modification_id is None:
        return None
    view = await info.context.loaders.modification.load(modification_id)
    return BudgetModification.from_view(view) if view is not None else None


@strawberry.type(description="Per (cost code, cost type, sub job): where every cent of the revised budget stands.")
class ReconciliationLine:
    cost_code: str = strawberry.field(description="The line's cost code (empty in the totals).")
    cost_type: str = strawberry.field(description="The line's cost type (empty in the totals).")
    sub_job: Optional[str] = strawberry.field(description="The line's sub job; null when none (and in the totals).")
    revised_amount: Decimal = strawberry.field(description="The line's revised amount (original + modifications).")
    exported: Decimal = strawberry.field(
        description="Accepted and written to the ERP (requests AWAITING_POSTING or SYNCED)."
    )
    posted: Decimal = strawberry.field(description="Of exported: posted in the ERP's Job Cost (requests SYNCED).")
    pending: Decimal = strawberry.field(
        description="Sent and not written to the ERP yet (requests PENDING_ACCEPTANCE, EXPORTING or EXPORT_FAILED)."
    )
    unsent: Decimal = strawberry.field(
        description="Not sent yet: what a send would carry now (retrieved and rejected requests count here again)."
    )
    difference: Decimal = strawberry.field(
        description="revisedAmount - exported - pending - unsent; zero unless something is wrong."
    )
    line_item_id: strawberry.Private[Optional[str]]

    @described("The budget line; null in the totals.")
    async def line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await load_line(info, self.line_item_id)

    @classmethod
    def of(cls, line: rec.ReconciliationLine) -> ReconciliationLine:
        return cls(
            cost_code=line.cost_code,
            cost_type=line.cost_type,
            sub_job=line.sub_job,
            revised_amount=line.revised_amount,
            exported=line.exported,
            posted=line.posted,
            pending=line.pending,
            unsent=line.unsent,
            difference=line.difference,
            line_item_id=line.line_item_id,
        )


@strawberry.type(
    description="Where every cent of a budget stands. Amounts are decimal strings in the company's currency with 2 "
    "decimals."
)
class Reconciliation:
    lines: list[ReconciliationLine] = strawberry.field(
        description=f"One per budget line, in the budget's line order. {at_most('Reconciliation.lines')} (the "
        "totals still count every line)."
    )
    totals: ReconciliationLine = strawberry.field(
        description="The budget's totals in the company's currency (empty costCode and costType, no lineItem)."
    )
    balanced: bool = strawberry.field(description="Every line's difference, and the totals', is zero.")

    @classmethod
    def of(cls, value: rec.Reconciliation) -> Reconciliation:
        return cls(
            lines=[ReconciliationLine.of(line) for line in capped(value.lines, "Reconciliation.lines")],
            totals=ReconciliationLine.of(value.totals),
            balanced=value.balanced,
        )


async def load_budget(info: Ctx, budget_id: str) -> Budget:
    """The budget a record points at (a request's, an event's): in the viewer's company."""
    budget = await info.context.loaders.budget.load(budget_id)
    assert budget is not None, f"budget {budget_id} is referenced but missing"
    return Budget.from_record(budget, info.context.viewer.currency)


@strawberry.type(
    description="A project's budget: line items by cost code, cost type and sub job, then budget modifications once "
    "it is locked. Amounts are decimal strings in the company's currency with 2 decimals. Visible to whoever sees "
    "its project."
)
class Budget(Node):
    id: strawberry.ID = node_id("Budget")
    currency: str = strawberry.field(description="ISO 4217 code of the company's currency, which every amount is in.")
    locked: bool = strawberry.field(
        description="Locked: original amounts are read-only (new lines of amount 0 are still taken), money moves by "
        "budget modifications, and the budget can be sent to the ERP."
    )
    locked_at: Optional[datetime] = strawberry.field(description="When it was locked; null while unlocked.")
    version: int = strawberry.field(
        description="Increases on every change of the budget, its lines, modifications or export state. Pass it as "
        "expectedVersion to refuse a change (VERSION_CONFLICT) if someone else changed the budget meanwhile."
    )
    export_status: ExportStatus = strawberry.field(
        description="The status of its latest ERP request (lastErpRequest); NOT_SENT before the first send."
    )
    record: strawberry.Private[BudgetRecord]

    @classmethod
    def from_record(cls, r: BudgetRecord, currency: str) -> Budget:
        return cls(
            id=strawberry.ID(r.id),
            currency=currency,
            locked=r.locked,
            locked_at=r.locked_at,
            version=r.version,
            export_status=ExportStatus(r.export_status),
            record=r,
        )

    @described("The budget's project.")
    async def project(self, info: Ctx) -> Project:
        return await load_project(info, self.record.project_id)

    @described("Who locked it; null while unlocked.")
    async def locked_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.locked_by_id)

    @described("Its latest ERP request (the one exportStatus follows); null before the first send.")
    async def last_erp_request(self, info: Ctx) -> Optional[ErpRequest]:
        requests = await info.context.loaders.requests_of_budget.load(self.record.id)
        return ErpRequest.from_record(requests[0]) if requests else None

    @described(f"Every ERP request of the budget, newest first. {at_most('Budget.erpRequests')}")
    async def erp_requests(self, info: Ctx) -> list[ErpRequest]:
        found = await info.context.loaders.requests_of_budget.load(self.record.id)
        return [ErpRequest.from_record(r) for r in capped(found, "Budget.erpRequests")]

    @described("Sum of the lines' originalAmount.")
    async def original_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.original_total if totals else ZERO

    @described(
        "Sum of the lines' modificationsAmount: what modifications added to or took off the budget (a move "
        "between two lines adds 0)."
    )
    async def modifications_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.modifications_total if totals else ZERO

    @described("originalBudgetTotal + modificationsTotal.")
    async def revised_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.original_total + totals.modifications_total if totals else ZERO

    @described("How many lines the budget has.")
    async def line_item_count(self, info: Ctx) -> int:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return int(totals.line_count) if totals else 0

    @described("The budget's lines, in the order they were added.")
    async def line_items(
        self,
        info: Ctx,
        first: Annotated[Optional[int], strawberry.argument(description=first_argument(100, 1000))] = 100,
        after: Annotated[Optional[str], strawberry.argument(description=AFTER)] = None,
    ) -> Connection[BudgetLineItem]:
        page = await queries.line_item_page(
            info.context, self.record.id, first, after,
            counted=selects(info, "totalCount"), synced=selects(info, "edges", "node", "erpSynced"),
        )
        return connection(page, BudgetLineItem.from_view, info)

    @described(f"The budget's modifications, by number. {at_most('Budget.modifications')}")
    async def modifications(self, info: Ctx) -> list[BudgetModification]:
        found = await info.context.loaders.modifications.load(self.record.id)
        return [BudgetModification.from_view(v) for v in capped(found, "Budget.modifications")]

    @described(
        "Why sendToERP would be refused now for the viewer, every reason at once (the checks sendToERP runs); empty "
        f"when it would succeed. {at_most('Budget.sendBlockers')}"
    )
    async def send_blockers(self, info: Ctx) -> list[Blocker]:
        return blockers(capped(await queries.send_blockers(info.context, self.record), "Budget.sendBlockers"))

    @described(
        "Why unlockBudget would be refused now for the viewer (the checks unlockBudget runs); empty when it would "
        f"succeed. {at_most('Budget.unlockBlockers')}"
    )
    async def unlock_blockers(self, info: Ctx) -> list[Blocker]:
        return blockers(capped(await queries.unlock_blockers(info.context, self.record), "Budget.unlockBlockers"))

    @described(
        "What a send would contain now, per line: only what is not yet exported (new lines, changed original "
        f"amounts as signed deltas, modifications not yet sent). {at_most('Budget.pendingExport')}"
    )
    async def pending_export(self, info: Ctx) -> list[ExportLine]:
        pending = await queries.pending_export(info.context, self.record)
        return [ExportLine.from_pending(p) for p in capped(pending, "Budget.pendingExport")]

    @described(
        "Per line (cost code, cost type, sub job): the revised amount and where it stands (exported, posted, "
        "pending, unsent), with totals. Exported: requests AWAITING_POSTING or SYNCED; pending: "
        "PENDING_ACCEPTANCE, EXPORTING or EXPORT_FAILED."
    )
    async def reconciliation(self, info: Ctx) -> Reconciliation:
        return Reconciliation.of(await queries.budget_reconciliation(info.context, self.record))

    @described("Audit trail: every event of this budget (changes, sends, decisions, exports), newest first.")
    async def history(
        self,
        info: Ctx,
        first: Annotated[Optional[int], strawberry.argument(description=first_argument(50, 500))] = 50,
        after: Annotated[Optional[str], strawberry.argument(description=AFTER)] = None,
    ) -> Connection[BudgetEvent]:
        page = await queries.history(info.context, self.record.id, first, after, counted=selects(info, "totalCount"))
        return connection(page, BudgetEvent.from_record, info)

    @described("Whether each action would succeed now for the viewer: the same checks the mutations run.")
    def viewer_can(self) -> BudgetActions:
        return BudgetActions(record=self.record)
