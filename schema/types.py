"""GraphQL object types. Leaf fields are plain attributes (graphql-core reads them with getattr, no
coroutine per field); relations are async fields that go through the request's DataLoaders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Optional

import strawberry
from sqlalchemy.engine import Row
from strawberry.types import Info

from domain.money import ZERO
from domain.permissions import PermissionLevel as DomainPermissionLevel
from resolvers import queries
from resolvers.context import Context
from resolvers.views import LineItemView, ModificationView
from schema.enums import ErpRequestKind, ErrorCode, ExportStatus, PermissionLevel

Ctx = Info[Context, None]


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: Annotated[Optional[list[str]], strawberry.field(description="Path to the input field at fault, if any.")]


@strawberry.type(description="A reason an action is not possible right now (same codes as userErrors).")
class Blocker:
    code: ErrorCode
    message: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.type
class Company(Node):
    id: strawberry.ID
    name: str
    currency: str

    @classmethod
    def from_row(cls, row: Row) -> Company:
        return cls(id=strawberry.ID(row.id), name=row.name, currency=row.currency)


@strawberry.type
class User(Node):
    id: strawberry.ID
    name: str
    email: str
    is_accounting_approver: bool
    erp_integrations_permission: PermissionLevel
    company_id: strawberry.Private[str]

    @strawberry.field
    async def company(self, info: Ctx) -> Company:
        return Company.from_row(await info.context.loaders.company.load(self.company_id))

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            email=row.email,
            is_accounting_approver=row.is_accounting_approver,
            erp_integrations_permission=PermissionLevel[row.erp_permission],
            company_id=row.company_id,
        )


async def load_user(info: Ctx, user_id: str | None) -> User | None:
    if user_id is None:
        return None
    row = await info.context.loaders.user.load(user_id)
    return User.from_row(row) if row is not None else None


@strawberry.type
class CostCode(Node):
    id: strawberry.ID
    code: str
    description: str
    erp_synced: bool

    @classmethod
    def from_row(cls, row: Row) -> CostCode:
        return cls(id=strawberry.ID(row.id), code=row.code, description=row.description, erp_synced=row.erp_synced)


@strawberry.type
class CostType(Node):
    id: strawberry.ID
    code: str
    name: str
    erp_synced: bool

    @classmethod
    def from_row(cls, row: Row) -> CostType:
        return cls(id=strawberry.ID(row.id), code=row.code, name=row.name, erp_synced=row.erp_synced)


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
    async def budget(self, info: Ctx) -> Budget:
        row = await info.context.loaders.budget_by_project.load(str(self.id))
        return Budget.from_row(row, info.context.viewer.currency)

    @strawberry.field(description="The viewer's Budget tool permission on this project.")
    async def viewer_permission(self, info: Ctx) -> PermissionLevel:
        access = await info.context.loaders.access.load(str(self.id))
        return PermissionLevel.of(DomainPermissionLevel(access.budget_permission))

    @classmethod
    def from_row(cls, row: Row) -> Project:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            number=row.number,
            erp_job_id=row.erp_job_id,
            erp_synced=row.erp_job_id is not None,
        )


@strawberry.type
class ProjectEdge:
    node: Project
    cursor: str


@strawberry.type
class ProjectConnection:
    edges: list[ProjectEdge]
    page_info: PageInfo
    total_count: int


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
class BudgetLineItemEdge:
    node: BudgetLineItem
    cursor: str


@strawberry.type
class BudgetLineItemConnection:
    edges: list[BudgetLineItemEdge]
    page_info: PageInfo
    total_count: int


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
        user = await load_user(info, self.created_by_id)
        assert user is not None
        return user

    @classmethod
    def from_view(cls, v: ModificationView) -> BudgetModification:
        return cls(
            id=strawberry.ID(v.id),
            number=v.number,
            amount=v.amount,
            notes=v.notes,
            created_at=v.created_at,  # type: ignore[arg-type]
            erp_synced=v.erp_synced,
            from_line_item_id=v.from_line_item_id,
            to_line_item_id=v.to_line_item_id,
            created_by_id=v.created_by_id,
        )


@strawberry.type(description="One line of what a request exports (the approver's details view).")
class ExportLine:
    cost_code: str
    cost_type: str
    sub_job: Optional[str]
    description: Optional[str]
    original_budget: Decimal = strawberry.field(
        description="Original-budget amount exported by this request (a signed delta on re-send)."
    )
    budget_changes: Decimal = strawberry.field(description="Modification amounts exported by this request (signed).")
    revised_estimate: Decimal = strawberry.field(description="The line's revised amount once this request is synced.")
    is_new_line: bool
    line_item_id: strawberry.Private[str]

    @strawberry.field
    async def line_item(self, info: Ctx) -> BudgetLineItem:
        line = await load_line(info, self.line_item_id)
        assert line is not None
        return line


@strawberry.type
class ErpRequest(Node):
    id: strawberry.ID
    sequence: int = strawberry.field(description="1 for a budget's first send, then 2, 3, ...")
    kind: ErpRequestKind
    status: ExportStatus
    sent_at: datetime
    decided_at: Optional[datetime]
    rejection_reason: Optional[str]
    retrieved_at: Optional[datetime]
    exported_at: Optional[datetime]
    posted_at: Optional[datetime]
    erp_reference: Optional[str] = strawberry.field(description="The document or batch id the ERP gave the export.")
    failure_message: Optional[str]
    row: strawberry.Private[Row]

    @strawberry.field
    async def budget(self, info: Ctx) -> Budget:
        row = await info.context.loaders.budget.load(self.row.budget_id)
        return Budget.from_row(row, info.context.viewer.currency)

    @strawberry.field
    async def project(self, info: Ctx) -> Project:
        return Project.from_row(await info.context.loaders.project.load(self.row.project_id))

    @strawberry.field
    async def sent_by(self, info: Ctx) -> User:
        user = await load_user(info, self.row.sent_by_id)
        assert user is not None
        return user

    @strawberry.field
    async def decided_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.row.decided_by_id)

    @strawberry.field
    async def retrieved_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.row.retrieved_by_id)

    @strawberry.field(description="Frozen at send time.")
    async def lines(self, info: Ctx) -> list[ExportLine]:
        rows = await info.context.loaders.request_lines.load(str(self.id))
        return [export_line_from_row(r) for r in rows]

    @strawberry.field
    async def total_original_budget(self, info: Ctx) -> Decimal:
        rows = await info.context.loaders.request_lines.load(str(self.id))
        return sum((r.original_budget for r in rows), ZERO)

    @strawberry.field
    async def total_budget_changes(self, info: Ctx) -> Decimal:
        rows = await info.context.loaders.request_lines.load(str(self.id))
        return sum((r.budget_changes for r in rows), ZERO)

    @classmethod
    def from_row(cls, row: Row) -> ErpRequest:
        return cls(
            id=strawberry.ID(row.id),
            sequence=row.sequence,
            kind=ErpRequestKind[row.kind],
            status=ExportStatus[row.status],
            sent_at=row.sent_at,
            decided_at=row.decided_at,
            rejection_reason=row.rejection_reason,
            retrieved_at=row.retrieved_at,
            exported_at=row.exported_at,
            posted_at=row.posted_at,
            erp_reference=row.erp_reference,
            failure_message=row.failure_message,
            row=row,
        )


def export_line_from_row(row: Row) -> ExportLine:
    return ExportLine(
        cost_code=row.cost_code,
        cost_type=row.cost_type,
        sub_job=row.sub_job,
        description=row.description,
        original_budget=row.original_budget,
        budget_changes=row.budget_changes,
        revised_estimate=row.revised_estimate,
        is_new_line=row.is_new_line,
        line_item_id=row.line_item_id,
    )


@strawberry.type
class ErpRequestEdge:
    node: ErpRequest
    cursor: str


@strawberry.type
class ErpRequestConnection:
    edges: list[ErpRequestEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ErpCapabilities:
    exports_budget: bool
    exports_modifications: bool
    supports_sub_jobs: bool
    requires_posting: bool
    exports_quantities: bool


@strawberry.type
class ErpConnection:
    connector: str
    display_name: str
    capabilities: ErpCapabilities


@strawberry.type(description="An entry of the audit trail and of the live event stream.")
class BudgetEvent:
    sequence: str = strawberry.field(
        description="Increasing sequence number within the company; pass the last one you saw as `after` to resume."
    )
    occurred_at: datetime
    type: str
    previous_status: Optional[ExportStatus]
    status: ExportStatus
    reason: Optional[str]
    row: strawberry.Private[Row]

    @strawberry.field
    async def actor(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.row.actor_id)

    @strawberry.field
    async def project(self, info: Ctx) -> Project:
        return Project.from_row(await info.context.loaders.project.load(self.row.project_id))

    @strawberry.field
    async def budget(self, info: Ctx) -> Budget:
        row = await info.context.loaders.budget.load(self.row.budget_id)
        return Budget.from_row(row, info.context.viewer.currency)

    @strawberry.field
    async def erp_request(self, info: Ctx) -> Optional[ErpRequest]:
        if self.row.erp_request_id is None:
            return None
        row = await info.context.loaders.erp_request.load(self.row.erp_request_id)
        return ErpRequest.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, row: Row) -> BudgetEvent:
        return cls(
            sequence=str(row.sequence),
            occurred_at=row.occurred_at,
            type=row.type,
            previous_status=ExportStatus[row.previous_status] if row.previous_status else None,
            status=ExportStatus[row.status],
            reason=row.reason,
            row=row,
        )


@strawberry.type
class BudgetEventEdge:
    node: BudgetEvent
    cursor: str


@strawberry.type
class BudgetEventConnection:
    edges: list[BudgetEventEdge]
    page_info: PageInfo
    total_count: int


def _blockers(errors: list) -> list[Blocker]:  # type: ignore[type-arg]
    return [Blocker(code=e.code, message=e.message) for e in errors]


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
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row, currency: str) -> Budget:
        return cls(
            id=strawberry.ID(row.id),
            currency=currency,
            locked=row.locked,
            locked_at=row.locked_at,
            version=row.version,
            export_status=ExportStatus[row.export_status],
            row=row,
        )

    @strawberry.field
    async def project(self, info: Ctx) -> Project:
        return Project.from_row(await info.context.loaders.project.load(self.row.project_id))

    @strawberry.field
    async def locked_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.row.locked_by_id)

    @strawberry.field
    async def last_erp_request(self, info: Ctx) -> Optional[ErpRequest]:
        requests = await info.context.loaders.requests_of_budget.load(str(self.id))
        return ErpRequest.from_row(requests[0]) if requests else None

    @strawberry.field(description="Newest first.")
    async def erp_requests(self, info: Ctx) -> list[ErpRequest]:
        return [ErpRequest.from_row(r) for r in await info.context.loaders.requests_of_budget.load(str(self.id))]

    @strawberry.field
    async def original_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(str(self.id))
        return totals.original_total if totals else ZERO

    @strawberry.field
    async def modifications_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(str(self.id))
        return totals.modifications_total if totals else ZERO

    @strawberry.field
    async def revised_budget_total(self, info: Ctx) -> Decimal:
        totals = await info.context.loaders.budget_totals.load(str(self.id))
        return totals.original_total + totals.modifications_total if totals else ZERO

    @strawberry.field
    async def line_item_count(self, info: Ctx) -> int:
        totals = await info.context.loaders.budget_totals.load(str(self.id))
        return int(totals.line_count) if totals else 0

    @strawberry.field
    async def line_items(
        self, info: Ctx, first: Optional[int] = 100, after: Optional[str] = None
    ) -> BudgetLineItemConnection:
        views, has_next, total = await queries.line_item_page(info.context, str(self.id), first, after)
        edges = [BudgetLineItemEdge(node=BudgetLineItem.from_view(v), cursor=queries.line_cursor(v)) for v in views]
        return BudgetLineItemConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field
    async def modifications(self, info: Ctx) -> list[BudgetModification]:
        return [BudgetModification.from_view(v) for v in await info.context.loaders.modifications.load(str(self.id))]

    @strawberry.field(description="Why sendToERP would be refused now; empty when it would succeed.")
    async def send_blockers(self, info: Ctx) -> list[Blocker]:
        return _blockers(await queries.send_blockers(info.context, self.row))

    @strawberry.field(description="Why unlockBudget would be refused now; empty when it would succeed.")
    async def unlock_blockers(self, info: Ctx) -> list[Blocker]:
        return _blockers(await queries.unlock_blockers(info.context, self.row))

    @strawberry.field(description="What a send would contain now: only what is not yet exported.")
    async def pending_export(self, info: Ctx) -> list[ExportLine]:
        lines = await queries.pending_export(info.context, self.row)
        return [
            ExportLine(
                cost_code=p.line.cost_code,
                cost_type=p.line.cost_type,
                sub_job=p.line.sub_job,
                description=p.line.description,
                original_budget=p.original_budget,
                budget_changes=p.budget_changes,
                revised_estimate=p.revised_estimate,
                is_new_line=p.is_new_line,
                line_item_id=p.line.id,
            )
            for p in lines
        ]

    @strawberry.field(description="Audit trail, newest first.")
    async def history(self, info: Ctx, first: Optional[int] = 50, after: Optional[str] = None) -> BudgetEventConnection:
        rows, has_next, total = await queries.history(info.context, str(self.id), first, after)
        edges = [BudgetEventEdge(node=BudgetEvent.from_row(r), cursor=queries.event_cursor(r)) for r in rows]
        return BudgetEventConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )
