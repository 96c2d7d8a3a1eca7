"""Read models handed to the schema layer: records plus what the domain derives from them (whether a line
or a modification is synced), and the record -> domain value conversions the write side shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain import export
from domain.export import EntryKind, ExportedEntry
from domain.status import WITHDRAWN, ExportStatus
from persistence.records import ExportEntryRecord, LineItemRecord, ModificationRecord


@dataclass(frozen=True, slots=True)
class LineItemView:
    id: str
    budget_id: str
    cost_code_id: str
    cost_type_id: str
    sub_job: str | None
    description: str | None
    original_amount: Decimal
    modifications_amount: Decimal
    revised_amount: Decimal
    quantity: Decimal | None
    unit_of_measure: str | None
    unit_cost: Decimal | None
    position: int
    erp_synced: bool | None  # None: not computed (a page whose query does not select erpSynced)
    cost_code: str
    cost_code_description: str
    cost_code_synced: bool
    cost_type: str
    cost_type_name: str
    cost_type_synced: bool


@dataclass(frozen=True, slots=True)
class ModificationView:
    id: str
    budget_id: str
    number: int
    from_line_item_id: str | None
    to_line_item_id: str | None
    amount: Decimal
    notes: str | None
    created_at: datetime
    created_by_id: str
    erp_synced: bool


def exported_entry(row: ExportEntryRecord) -> ExportedEntry:
    status = ExportStatus(row.request_status)
    return ExportedEntry(
        line_item_id=row.line_item_id,
        kind=EntryKind(row.kind),
        source_id=row.source_id,
        amount=row.amount,
        withdrawn=status in WITHDRAWN,
        synced=status is ExportStatus.SYNCED,
    )


def domain_modification(row: ModificationRecord) -> export.Modification:
    return export.Modification(row.id, row.number, row.from_line_item_id, row.to_line_item_id, row.amount)


def domain_line(row: LineItemRecord) -> export.Line:
    return export.Line(
        id=row.id,
        cost_code=row.cost_code,
        cost_type=row.cost_type,
        sub_job=row.sub_job or None,
        description=row.description,
        original_amount=row.original_amount,
        cost_code_id=row.cost_code_id,
        cost_type_id=row.cost_type_id,
    )


def line_item_views(
    rows: list[LineItemRecord],
    mod_rows: list[ModificationRecord] | None,
    entry_rows: list[ExportEntryRecord] | None,
) -> list[LineItemView]:
    """Views of lines; without their sync inputs (None), erp_synced is None."""
    synced = mod_rows is not None and entry_rows is not None
    mods_by_line = export.modifications_by_line(domain_modification(r) for r in mod_rows or [])
    entries_by_line: dict[str, list[ExportedEntry]] = {}
    for entry_row in entry_rows or []:
        entries_by_line.setdefault(entry_row.line_item_id, []).append(exported_entry(entry_row))
    return [
        LineItemView(
            id=row.id,
            budget_id=row.budget_id,
            cost_code_id=row.cost_code_id,
            cost_type_id=row.cost_type_id,
            sub_job=row.sub_job or None,
            description=row.description,
            original_amount=row.original_amount,
            modifications_amount=row.modifications_amount,
            revised_amount=row.original_amount + row.modifications_amount,
            quantity=row.quantity,
            unit_of_measure=row.unit_of_measure,
            unit_cost=row.unit_cost,
            position=row.position,
            erp_synced=export.line_synced(
                domain_line(row), mods_by_line.get(row.id, []), entries_by_line.get(row.id, [])
            )
            if synced
            else None,
            cost_code=row.cost_code,
            cost_code_description=row.cost_code_description,
            cost_code_synced=row.cost_code_synced,
            cost_type=row.cost_type,
            cost_type_name=row.cost_type_name,
            cost_type_synced=row.cost_type_synced,
        )
        for row in rows
    ]


def modification_views(rows: list[ModificationRecord], entry_rows: list[ExportEntryRecord]) -> list[ModificationView]:
    entries = [exported_entry(r) for r in entry_rows]
    by_source: dict[str, list[ExportedEntry]] = {}
    for entry in entries:
        by_source.setdefault(entry.source_id, []).append(entry)
    return [
        ModificationView(
            id=row.id,
            budget_id=row.budget_id,
            number=row.number,
            from_line_item_id=row.from_line_item_id,
            to_line_item_id=row.to_line_item_id,
            amount=row.amount,
            notes=row.notes,
            created_at=row.created_at,
            created_by_id=row.created_by_id,
            erp_synced=export.modification_synced(row.id, by_source.get(row.id, [])),
        )
        for row in rows
    ]
