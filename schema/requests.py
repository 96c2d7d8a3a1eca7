"""ERP requests (a send of a budget to the ERP), what they export, and the company's ERP connection."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry

from domain import export
from domain.money import ZERO, to_amount
from domain.status import ExportStatus as Status
from erp.base import Connector
from erp.registry import CONNECTORS
from persistence.records import ErpRequestRecord, RequestEntryRecord, RequestLineRecord
from resolvers import queries
from resolvers.pagination import capped
from schema.actions import ErpRequestActions
from schema.common import Ctx, Node, at_most, described, node_id
from schema.enums import ErpRequestKind, ExportEntryKind, ExportStatus
from schema.people import User, load_known_user, load_user
from schema.projects import Project, load_project

if TYPE_CHECKING:
    from schema.budgets import Budget, BudgetLineItem, BudgetModification


@strawberry.type(
    description="One line of what a request exports (the approver's details view). Amounts are decimal strings in "
    "the company's currency with 2 decimals."
)
class ExportLine:
    cost_code: str = strawberry.field(description="The line's cost code, as exported.")
    cost_type: str = strawberry.field(description="The line's cost type, as exported.")
    sub_job: Optional[str] = strawberry.field(description="The line's sub job, as exported; null when none.")
    description: Optional[str] = strawberry.field(description="The line's description, as exported; null when none.")
    original_budget: Decimal = strawberry.field(
        description="Original-budget amount exported by this request (a signed delta on re-send)."
    )
    budget_changes: Decimal = strawberry.field(description="Modification amounts exported by this request (signed).")
    revised_estimate: Decimal = strawberry.field(description="The line's revised amount once this request is synced.")
    is_new_line: bool = strawberry.field(
        description="The line's first export: it is not in the ERP yet (nothing of it was exported before)."
    )
    line_item_id: strawberry.Private[str]

    @described("The budget line as it is now (it may have changed since the send).")
    async def line_item(self, info: Ctx) -> Annotated[BudgetLineItem, strawberry.lazy("schema.budgets")]:
        from schema.budgets import load_line

        line = await load_line(info, self.line_item_id)
        assert line is not None, "an exported line is never deleted"
        return line

    @classmethod
    def from_record(cls, r: RequestLineRecord) -> ExportLine:
        """A line as a request froze it at send time."""
        return cls(
            cost_code=r.cost_code,
            cost_type=r.cost_type,
            sub_job=r.sub_job,
            description=r.description,
            original_budget=r.original_budget,
            budget_changes=r.budget_changes,
            revised_estimate=r.revised_estimate,
            is_new_line=r.is_new_line,
            line_item_id=r.line_item_id,
        )

    @classmethod
    def from_pending(cls, p: export.ExportLine) -> ExportLine:
        """A line as a send would export it now."""
        return cls(
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


@strawberry.type(
    description="One exported job-cost entry, as the ERP received it. Amounts are decimal strings in the company's "
    "currency with 2 decimals."
)
class ExportEntry:
    id: strawberry.ID = strawberry.field(description="Opaque id of the entry (the same as entryId).")
    entry_id: str = strawberry.field(
        description="The id the ERP de-duplicates on (ledger entry id, file row key, webhook transaction entryId)."
    )
    kind: ExportEntryKind = strawberry.field(description="What the entry carries.")
    cost_code: str = strawberry.field(description="The cost code of the entry's line.")
    cost_type: str = strawberry.field(description="The cost type of the entry's line.")
    sub_job: Optional[str] = strawberry.field(description="The sub job of the entry's line; null when none.")
    amount: Decimal = strawberry.field(
        description="Signed: money moved out of a line by a modification, or an original amount lowered on a "
        "re-send, is negative."
    )
    quantity: Optional[Decimal] = strawberry.field(
        description="The line's quantity, on original-budget entries (modifications move money only)."
    )
    posted: bool = strawberry.field(description="Posted in the ERP's Job Cost (its request is SYNCED).")
    posted_at: Optional[datetime] = strawberry.field(
        description="When its request was recorded as posted (SYNCED); null until then."
    )
    line_item_id: strawberry.Private[str]
    modification_id: strawberry.Private[Optional[str]]

    @described("The budget line the entry belongs to.")
    async def line_item(self, info: Ctx) -> Optional[Annotated[BudgetLineItem, strawberry.lazy("schema.budgets")]]:
        from schema.budgets import load_line

        return await load_line(info, self.line_item_id)

    @described("The budget modification this entry carries, for kind BUDGET_MODIFICATION.")
    async def modification(
        self, info: Ctx
    ) -> Optional[Annotated[BudgetModification, strawberry.lazy("schema.budgets")]]:
        from schema.budgets import load_modification

        return await load_modification(info, self.modification_id)

    @classmethod
    def from_record(cls, r: RequestEntryRecord, request: ErpRequestRecord) -> ExportEntry:
        kind = export.EntryKind(r.kind)
        synced = request.status == Status.SYNCED.value
        return cls(
            id=strawberry.ID(r.id),
            entry_id=r.id,
            kind=kind,
            cost_code=r.cost_code,
            cost_type=r.cost_type,
            sub_job=r.sub_job or None,
            amount=r.amount,
            quantity=r.quantity if kind is export.EntryKind.ORIGINAL_BUDGET else None,
            posted=synced,
            posted_at=request.posted_at if synced else None,
            line_item_id=r.line_item_id,
            modification_id=r.source_id if kind is export.EntryKind.BUDGET_MODIFICATION else None,
        )


@strawberry.type(
    description="One send of a budget to the ERP Integrations queue, with a frozen snapshot of exactly what it "
    "exports and its own status. Amounts are decimal strings in the company's currency with 2 decimals; times are "
    "UTC."
)
class ErpRequest(Node):
    id: strawberry.ID = node_id("ErpRequest")
    sequence: int = strawberry.field(description="1 for a budget's first send, then 2, 3, ...")
    kind: ErpRequestKind = strawberry.field(description="Whether it creates the budget in the ERP or updates it.")
    status: ExportStatus = strawberry.field(description="Where the request stands (never NOT_SENT).")
    sent_at: datetime = strawberry.field(description="When it was sent.")
    decided_at: Optional[datetime] = strawberry.field(
        description="When an approver accepted or rejected it; null until then."
    )
    rejection_reason: Optional[str] = strawberry.field(
        description="The approver's reason, when REJECTED (at most 2,000 characters); null otherwise."
    )
    retrieved_at: Optional[datetime] = strawberry.field(description="When its sender retrieved it; null otherwise.")
    exported_at: Optional[datetime] = strawberry.field(
        description="When the ERP connector wrote its entries to the ERP; null until then."
    )
    posted_at: Optional[datetime] = strawberry.field(
        description="When its entries were recorded as posted in the ERP's Job Cost (SYNCED); null until then."
    )
    erp_reference: Optional[str] = strawberry.field(
        description="The document or batch id the ERP gave the export (or the one confirmJobCostPosting gave); "
        "null when none."
    )
    failure_message: Optional[str] = strawberry.field(
        description="Why the export failed, in the ERP connector's words, while EXPORT_FAILED; null otherwise."
    )
    record: strawberry.Private[ErpRequestRecord]

    @described("The budget it sends.")
    async def budget(self, info: Ctx) -> Annotated[Budget, strawberry.lazy("schema.budgets")]:
        from schema.budgets import load_budget

        return await load_budget(info, self.record.budget_id)

    @described("The budget's project.")
    async def project(self, info: Ctx) -> Project:
        return await load_project(info, self.record.project_id)

    @described("Who sent it.")
    async def sent_by(self, info: Ctx) -> User:
        return await load_known_user(info, self.record.sent_by_id)

    @described("The approver who accepted or rejected it; null until then.")
    async def decided_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.decided_by_id)

    @described("Who retrieved it; null unless RETRIEVED.")
    async def retrieved_by(self, info: Ctx) -> Optional[User]:
        return await load_user(info, self.record.retrieved_by_id)

    @described(f"What it exports, per line, frozen at send time. {at_most('ErpRequest.lines')}")
    async def lines(self, info: Ctx) -> list[ExportLine]:
        found = await info.context.loaders.request_lines.load(self.record.id)
        return [ExportLine.from_record(r) for r in capped(found, "ErpRequest.lines")]

    @described("Sum of its lines' originalBudget.")
    async def total_original_budget(self, info: Ctx) -> Decimal:
        lines = await info.context.loaders.request_lines.load(self.record.id)
        return sum((r.original_budget for r in lines), ZERO)

    @described("Sum of its lines' budgetChanges.")
    async def total_budget_changes(self, info: Ctx) -> Decimal:
        lines = await info.context.loaders.request_lines.load(self.record.id)
        return sum((r.budget_changes for r in lines), ZERO)

    @described(
        "Exported entries, by line (empty until the export is written: AWAITING_POSTING or SYNCED). "
        f"{at_most('ErpRequest.entries')} (entryCount and entriesTotal still count every entry)."
    )
    async def entries(self, info: Ctx) -> list[ExportEntry]:
        found = await queries.exported_entries(info.context, self.record)
        return [ExportEntry.from_record(r, self.record) for r in capped(found, "ErpRequest.entries")]

    @described("How many entries were exported (0 until the export is written): a posting's control count.")
    async def entry_count(self, info: Ctx) -> int:
        return len(await queries.exported_entries(info.context, self.record))

    @described("The signed sum of the exported entries (0 until the export is written): a posting's control total.")
    async def entries_total(self, info: Ctx) -> Decimal:
        return to_amount(sum((r.amount for r in await queries.exported_entries(info.context, self.record)), ZERO))

    @described("Whether each action on this request would succeed now for the viewer.")
    def viewer_can(self) -> ErpRequestActions:
        return ErpRequestActions(record=self.record)

    @classmethod
    def from_record(cls, r: ErpRequestRecord) -> ErpRequest:
        return cls(
            id=strawberry.ID(r.id),
            sequence=r.sequence,
            kind=ErpRequestKind[r.kind],
            status=ExportStatus(r.status),
            sent_at=r.sent_at,
            decided_at=r.decided_at,
            rejection_reason=r.rejection_reason,
            retrieved_at=r.retrieved_at,
            exported_at=r.exported_at,
            posted_at=r.posted_at,
            erp_reference=r.erp_reference,
            failure_message=r.failure_message,
            record=r,
        )


@strawberry.type(description="What the company's ERP connector supports; the workflow obeys it.")
class ErpCapabilities:
    exports_budget: bool = strawberry.field(
        description="Can export original budgets at all (else a send carrying one is refused with VALIDATION_FAILED)."
    )
    exports_modifications: bool = strawberry.field(
        description="Can export budget modifications (else MODIFICATIONS_NOT_SUPPORTED)."
    )
    supports_sub_jobs: bool = strawberry.field(
        description="Lines with a sub job may be exported (else SUB_JOB_NOT_SUPPORTED per such line)."
    )
    requires_posting: bool = strawberry.field(
        description="Exported entries must be posted in the ERP before the budget can be unlocked or re-sent "
        "(AWAITING_POSTING); without it an export goes straight to SYNCED."
    )
    exports_quantities: bool = strawberry.field(description="Quantities and units of measure travel too.")
    requires_posting_totals: bool = strawberry.field(
        description="confirmJobCostPosting (and an integrator's posted callback) must give entryCount and "
        "totalAmount (the connection's option require_posting_totals)."
    )


@strawberry.type(description="The company's one ERP connection (set by an administrator with the CLI).")
class ErpConnection:
    connector: str = strawberry.field(
        description=f"The connector's name, one of: {', '.join(CONNECTORS)}."
    )
    display_name: str = strawberry.field(description="The connector's name for people.")
    capabilities: ErpCapabilities = strawberry.field(description="What the connector supports.")

    @classmethod
    def of(cls, connector: Connector) -> ErpConnection:
        caps = connector.capabilities
        return cls(
            connector=connector.name,
            display_name=connector.display_name,
            capabilities=ErpCapabilities(
                exports_budget=caps.exports_budget,
                exports_modifications=caps.exports_modifications,
                supports_sub_jobs=caps.supports_sub_jobs,
                requires_posting=caps.requires_posting,
                exports_quantities=caps.exports_quantities,
                requires_posting_totals=connector.requires_posting_totals,
            ),
        )
