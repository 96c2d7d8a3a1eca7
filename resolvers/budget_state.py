"""Everything the send/unlock checks need about one budget, loaded in a fixed number of statements.

Both the mutations (inside their transaction) and the `sendBlockers` / `pendingExport` fields (on a read
connection) build this same object, so the blockers a user sees are exactly the checks a send runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import export
from domain.budget import BudgetState, ExportStatus, SendConditions
from domain.export import Capabilities, ExportedEntry, ExportLine
from persistence import reads
from resolvers.views import domain_line, domain_modification, exported_entry


@dataclass(frozen=True)
class ExportState:
    budget: BudgetState
    lines: list[export.Line]
    line_rows: dict[str, Row]
    modifications: list[export.Modification]
    exported: list[ExportedEntry]
    pending: list[ExportLine]
    unsynced_cost_codes: tuple[str, ...]
    unsynced_cost_types: tuple[str, ...]


def budget_state(row: Row) -> BudgetState:
    return BudgetState(
        id=row.id,
        project_id=row.project_id,
        locked=row.locked,
        version=row.version,
        export_status=ExportStatus(row.export_status),
    )


async def load_export_states(conn: AsyncConnection, budget_rows: Sequence[Row]) -> dict[str, ExportState]:
    """The export state of several budgets in three statements (a list of budgets asking for sendBlockers
    costs the same as one)."""
    ids = [row.id for row in budget_rows]
    lines: dict[str, list[Row]] = defaultdict(list)
    mods: dict[str, list[Row]] = defaultdict(list)
    entries: dict[str, list[Row]] = defaultdict(list)
    for row in await reads.lines_of_budgets(conn, ids):
        lines[row.budget_id].append(row)
    for row in await reads.modifications_of_budgets(conn, ids):
        mods[row.budget_id].append(row)
    for row in await reads.entries_of_budgets(conn, ids):
        entries[row.budget_id].append(row)
    return {b.id: _export_state(b, lines[b.id], mods[b.id], entries[b.id]) for b in budget_rows}


async def load_export_state(conn: AsyncConnection, budget_row: Row) -> ExportState:
    return (await load_export_states(conn, [budget_row]))[budget_row.id]


def _export_state(budget_row: Row, line_rows: list[Row], mod_rows: list[Row], entry_rows: list[Row]) -> ExportState:
    lines = [domain_line(r, r.cost_code, r.cost_type) for r in line_rows]
    mods = [domain_modification(r) for r in mod_rows]
    exported = [exported_entry(r) for r in entry_rows]
    pending = export.pending_export(lines, mods, exported)
    by_id = {r.id: r for r in line_rows}
    pending_rows = [by_id[p.line.id] for p in pending]
    return ExportState(
        budget=budget_state(budget_row),
        lines=lines,
        line_rows=by_id,
        modifications=mods,
        exported=exported,
        pending=pending,
        unsynced_cost_codes=tuple(sorted({r.cost_code for r in pending_rows if not r.cost_code_synced})),
        unsynced_cost_types=tuple(sorted({r.cost_type for r in pending_rows if not r.cost_type_synced})),
    )


def send_conditions(state: ExportState, capabilities: Capabilities | None, project: Row) -> SendConditions:
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
    )
