"""A project's budget, its lines and its modifications."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

import strawberry

from domain import reconciliation as rec
from domain.money import ZERO
from persistence.records import BudgetRecord
from resolvers import queries
from resolvers.pagination import capped
from resolvers.views import LineItemView, ModificationView
from schema.actions import BudgetActions
from schema.common import Blocker, Connection, Ctx, Node, blockers, connection, described
from schema.enums import ExportStatus
from schema.events import BudgetEvent
from schema.people import User, load_known_user, load_user
from schema.projects import CostCode, CostType, Project, load_project
from schema.requests import ErpRequest, ExportLine


@strawberry.type
class BudgetLineItem(Node):
    id: strawberry.ID
    sub_job: Optional[str]
    description: Optional[str]
    original_amount: Decimal
    modifications_amount: Decimal
    revised_amount: Decimal
    quantity: Optional[Decimal]
    unit_of_measure: Optional[str]
    unit_cost: Optional[Decimal]
    erp_synced: bool = strawberry.field(description="Everything on this line has been exported and posted.")
    # Plain fields, read with the line in the same statement: no resolver call per line.
    cost_code: CostCode
    cost_type: CostType
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
            erp_synced=v.erp_synced,
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


@strawberry.type
class BudgetModification(Node):
    id: strawberry.ID
    number: int
    amount: Decimal = strawberry.field(description="Always > 0.")
    notes: Optional[str]
    created_at: datetime
    erp_synced: bool
    from_line_item_id: strawberry.Private[Optional[str]]
    to_line_item_id: strawberry.Private[Optional[str]]
    created_by_id: strawberry.Private[str]

    @strawberry.field
    async def from_line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await load_line(info, self.from_line_item_id)

    @strawberry.field
    async def to_line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await load_line(info, self.to_line_item_id)

    @strawberry.field
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
    cost_code: str
    cost_type: str
    sub_job: Optional[str]
    revised_amount: Decimal
    exported: Decimal = strawberry.field(description="Accepted and written to the ERP.")
    posted: Decimal = strawberry.field(description="Of exported: posted in the ERP's Job Cost.")
    pending: Decimal = strawberry.field(description="Sent and not yet exported (pending acceptance or exporting).")
    unsent: Decimal = strawberry.field(description="Not sent yet.")
    difference: Decimal = strawberry.field(
        description="revisedAmount - exported - pending - unsent; zero unless something is wrong."
    )
    line_item_id: strawberry.Private[Optional[str]]

    @strawberry.field
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


@strawberry.type
class Reconciliation:
    lines: list[ReconciliationLine]
    totals: ReconciliationLine = strawberry.field(
        description="The budget's totals in the company's currency (empty costCode and costType, no lineItem)."
    )
    balanced: bool = strawberry.field(description="Every line's difference, and the totals', is zero.")

    @classmethod
    def of(cls, value: rec.Reconciliation) -> Reconciliation:
        return cls(
            lines=[ReconciliationLine.of(line) for line in value.lines],
            totals=ReconciliationLine.of(value.totals),
            balanced=value.balanced,
        )


async def load_budget(info: Ctx, budget_id: str) -> Budget:
    """The budget a record points at (a request's, an event's): in the viewer's company."""
    budget = await info.context.loaders.budget.load(budget_id)
    assert budget is not None, f"budget {budget_id} is referenced but missing"
    return Budget.from_record(budget, info.context.viewer.currency)


@strawberry.type
class Budget(Node):
    id: strawberry.ID
    currency: str
    locked: bool
    locked_at: Optional[datetime]
    version: int = strawberry.field(
        description="Increases on every change of the budget, its lines, modifications or export state."
    )
    export_status: ExportStatus
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

    @strawberry.field
    async def project(self, info: Ctx) -> Project:
        return await load_project(info, self.record.project_id)

    @strawberry.field
    async def locked_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.locked_by_id)

    @strawberry.field
    async def last_erp_request(self, info: Ctx) -> Optional[ErpRequest]:
        requests = await info.context.loaders.requests_of_budget.load(self.record.id)
        return ErpRequest.from_record(requests[0]) if requests else None

    @described("Newest first.")
    async def erp_requests(self, info: Ctx) -> list[ErpRequest]:
        found = await info.context.loaders.requests_of_budget.load(self.record.id)
        return [ErpRequest.from_record(r) for r in capped(found, "Budget.erpRequests")]

    @strawberry.field
    async def original_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.original_total if totals else ZERO

    @strawberry.field
    async def modifications_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.modifications_total if totals else ZERO

    @strawberry.field
    async def revised_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return totals.original_total + totals.modifications_total if totals else ZERO

    @strawberry.field
    async def line_item_count(self, info: Ctx) -> int:
        totals = await info.context.loaders.budget_totals.load(self.record.id)
        return int(totals.line_count) if totals else 0

    @strawberry.field
    async def line_items(
        self, info: Ctx, first: Optional[int] = 100, after: Optional[str] = None
    ) -> Connection[BudgetLineItem]:
        page = await queries.line_item_page(info.context, self.record.id, first, after)
        return connection(page, BudgetLineItem.from_view)

    @strawberry.field
    async def modifications(self, info: Ctx) -> list[BudgetModification]:
        found = await info.context.loaders.modifications.load(self.record.id)
        return [BudgetModification.from_view(v) for v in capped(found, "Budget.modifications")]

    @described("Why sendToERP would be refused now; empty when it would succeed.")
    async def send_blockers(self, info: Ctx) -> list[Blocker]:
        return blockers(capped(await queries.send_blockers(info.context, self.record), "Budget.sendBlockers"))

    @described("Why unlockBudget would be refused now; empty when it would succeed.")
    async def unlock_blockers(self, info: Ctx) -> list[Blocker]:
        return blockers(capped(await queries.unlock_blockers(info.context, self.record), "Budget.unlockBlockers"))

    @described("What a send would contain now: only what is not yet exported.")
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

    @described("Audit trail, newest first.")
    async def history(
        self, info: Ctx, first: Optional[int] = 50, after: Optional[str] = None
    ) -> Connection[BudgetEvent]:
        page = await queries.history(info.context, self.record.id, first, after)
        return connection(page, BudgetEvent.from_record)

    @described("Whether each action would succeed now for the viewer: the same checks the mutations run.")
    def viewer_can(self) -> BudgetActions:
        return BudgetActions(record=self.record)
