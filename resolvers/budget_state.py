"""Everything the send/unlock checks need about one budget, computed from records (no storage access).

Both the mutations (from their unit of work's repositories) and the `sendBlockers` / `pendingExport` fields
(from the read side's loaders) build this same object, so the blockers a user sees are exactly the checks a
send runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain import export
from domain.budget import BudgetState, SendConditions
from domain.export import Capabilities, ExportedEntry, ExportLine
from domain.status import ExportStatus
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
    )


def send_conditions(state: ExportState, capabilities: Capabilities | None, project: ProjectRecord) -> SendConditions:
    caps = capabilities or Capabilities()
    entries = [e for p in state.pending for e in p.entries]
    return SendConditions(
        erp_connected=capabilities is not None,
        exports_budget=caps.exports_budget,
        exports_modifications=caps.exports_modifications,
        supports_sub_jobs=caps.supports_sub_jobs,
        project_synced=project.erp_job_id is not None,
        unsynced_cost_codes=state.unsynced_cost_codes,
        unsynced_cost_types=state.unsynced_cost_types,
        sub_job_lines=tuple(p.line.label for p in state.pending if p.line.sub_job),
        has_pending_modifications=any(e.kind is export.EntryKind.BUDGET_MODIFICATION for e in entries),
        has_pending_original=any(e.kind is export.EntryKind.ORIGINAL_BUDGET and e.amount != 0 for e in entries),
        nothing_to_send=not state.pending,
        pending=tuple(state.pending),
    )
