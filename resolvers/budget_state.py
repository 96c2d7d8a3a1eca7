"""Everything the send/unlock checks need about one budget, computed from records (no storage access).

Both the mutations (from their unit of work's repositories) and the `sendBlockers` / `pendingExport` fields
(from the read side's loaders) build this same object, so the blockers a user sees are exactly the checks a
send runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from domain import export
from domain.budget import BudgetState, FormatProblem, SendConditions
from domain.export import Capabilities, EntryKind, ExportedEntry, ExportLine
from domain.reconciliation import Reconciliation, SentEntry, reconcile
from domain.status import ExportStatus
from erp.base import Connector, ExportBatch, ExportItem
from persistence.records import BudgetRecord, ExportEntryRecord, LineItemRecord, ModificationRecord, ProjectRecord
from resolvers.views import domain_line, domain_modification, exported_entry


@dataclass(frozen=True)
class ExportState:
    budget: BudgetState
    lines: list[export.Line]
    modifications: list[export.Modification]
    exported: list[ExportedEntry]
    pending: list[ExportLine]
    unsynced_cost_codes: tuple[str, ...]
    unsynced_cost_types: tuple[str, ...]
    # The records it was computed from (what a send's batch and the reconciliation need beyond the above).
    line_records: Sequence[LineItemRecord] = field(default_factory=list)
    modification_records: Sequence[ModificationRecord] = field(default_factory=list)
    entry_records: Sequence[ExportEntryRecord] = field(default_factory=list)


def budget_state(record: BudgetRecord) -> BudgetState:
    return BudgetState(
        id=record.id,
        project_id=record.project_id,
        locked=record.locked,
        version=record.version,
        export_status=ExportStatus(record.export_status),
        last_request_id=record.last_request_id,
        request_count=record.request_count,
        locked_at=record.locked_at,
        locked_by_id=record.locked_by_id,
    )


def export_state(
    budget: BudgetRecord,
    lines: Sequence[LineItemRecord],
    modifications: Sequence[ModificationRecord],
    entries: Sequence[ExportEntryRecord],
) -> ExportState:
    """The budget's export state from all its lines, modifications and export entries."""
    domain_lines = [domain_line(r) for r in lines]
    mods = [domain_modification(r) for r in modifications]
    exported = [exported_entry(r) for r in entries]
    pending = export.pending_export(domain_lines, mods, exported)
    by_id = {r.id: r for r in lines}
    pending_rows = [by_id[p.line.id] for p in pending]
    return ExportState(
        budget=budget_state(budget),
        lines=domain_lines,
        modifications=mods,
        exported=exported,
        pending=pending,
        unsynced_cost_codes=tuple(sorted({r.cost_code for r in pending_rows if not r.cost_code_synced})),
        unsynced_cost_types=tuple(sorted({r.cost_type for r in pending_rows if not r.cost_type_synced})),
        line_records=lines,
        modification_records=modifications,
        entry_records=entries,
    )


PREVIEW = "preview"


def send_batch(state: ExportState, project: ProjectRecord, today: date) -> ExportBatch:
    """The batch a send would export now, as the connector would get it from the worker: every pending entry
    with its line's fields (persistence.export_reads builds the real one from the stored request, in the same
    order: by line, the original entry first, then modifications by number). Entry, request and export ids are
    placeholders; no format check looks at them."""
    lines = {r.id: r for r in state.line_records}
    mods = {r.id: r for r in state.modification_records}
    items = []
    for pending in state.pending:
        line = lines[pending.line.id]
        for position, entry in enumerate(pending.entries):
            original = entry.kind is EntryKind.ORIGINAL_BUDGET
            mod = None if original else mods.get(entry.source_id)
            items.append(
                ExportItem(
                    entry_id=f"{PREVIEW}-{line.id}-{position}",
                    line_item_id=line.id,
                    cost_code=line.cost_code,
                    cost_code_description=line.cost_code_description,
                    cost_type=line.cost_type,
                    sub_job=line.sub_job or None,
                    description=line.description,
                    kind=entry.kind.value,
                    amount=entry.amount,
                    quantity=line.quantity,
                    unit_of_measure=line.unit_of_measure,
                    unit_cost=line.unit_cost,
                    modification_number=mod.number if mod is not None else None,
                    modification_notes=mod.notes if mod is not None else None,
                    is_new_line=pending.is_new_line and original,
                    line_original_amount=line.original_amount if original else None,
                )
            )
    return ExportBatch(
        export_id=PREVIEW,
        company_id=project.company_id,
        request_id=PREVIEW,
        request_sequence=state.budget.request_count + 1,
        request_kind=export.request_kind(state.exported),
        erp_job_id=project.erp_job_id or "",
        job_number=project.number,
        job_name=project.name,
        export_date=today,
        items=tuple(items),
    )


def format_problems(
    state: ExportState, connector: Connector | None, project: ProjectRecord, today: date
) -> tuple[FormatProblem, ...]:
    """What the connector's format check says about the batch a send would export now: the very check the
    worker runs again before writing. None without a connection (ERP_NOT_CONNECTED says that)."""
    if connector is None:
        return ()
    violations = connector.validate(send_batch(state, project, today))
    return tuple(FormatProblem(v.line_item_id, str(v.field), v.message) for v in violations)


def reconciliation_of(state: ExportState) -> Reconciliation:
    entries = [
        SentEntry(r.line_item_id, EntryKind(r.kind), r.source_id, r.amount, ExportStatus(r.request_status))
        for r in state.entry_records
    ]
    return reconcile(state.lines, state.modifications, entries)


def send_conditions(
    state: ExportState,
    capabilities: Capabilities | None,
    project: ProjectRecord,
    problems: Sequence[FormatProblem] = (),
) -> SendConditions:
    caps = capabilities or Capabilities()
    entries = [e for p in state.pending for e in p.entries]
    sub_job_lines = [p.line for p in state.pending if p.line.sub_job]
    return SendConditions(
        erp_connected=capabilities is not None,
        exports_budget=caps.exports_budget,
        exports_modifications=caps.exports_modifications,
        supports_sub_jobs=caps.supports_sub_jobs,
        project_synced=project.erp_job_id is not None,
        unsynced_cost_codes=state.unsynced_cost_codes,
        unsynced_cost_types=state.unsynced_cost_types,
        sub_job_lines=tuple(line.label for line in sub_job_lines),
        sub_job_line_ids=tuple(line.id for line in sub_job_lines),
        has_pending_modifications=any(e.kind is export.EntryKind.BUDGET_MODIFICATION for e in entries),
        has_pending_original=any(e.kind is export.EntryKind.ORIGINAL_BUDGET and e.amount != 0 for e in entries),
        nothing_to_send=not state.pending,
        pending=tuple(state.pending),
        format_problems=tuple(problems),
    )


def conditions_for_send(
    state: ExportState, connector: Connector | None, project: ProjectRecord, today: date
) -> SendConditions:
    """Everything a send is checked against, the connector's format check included: `sendBlockers` (from the
    loaders) and `sendToERP` (from its unit of work) both ask this, so they refuse for the same reasons."""
    capabilities = connector.capabilities if connector is not None else None
    return send_conditions(state, capabilities, project, format_problems(state, connector, project, today))
