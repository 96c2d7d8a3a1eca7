"""What a send contains: every source amount not yet exported, as signed entries per line.

An entry is "exported" once it belongs to a request that was not withdrawn (retrieved or rejected); a
re-send therefore carries new lines, changed original amounts as deltas, and modifications not yet sent.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.money import ZERO


class EntryKind(enum.Enum):
    ORIGINAL_BUDGET = "ORIGINAL_BUDGET"
    BUDGET_MODIFICATION = "BUDGET_MODIFICATION"


@dataclass(frozen=True)
class Capabilities:
    exports_budget: bool = True
    exports_modifications: bool = True
    supports_sub_jobs: bool = True
    requires_posting: bool = True
    exports_quantities: bool = True


@dataclass(frozen=True)
class Line:
    id: str
    cost_code: str
    cost_type: str
    sub_job: str | None
    description: str | None
    original_amount: Decimal
    cost_code_id: str = ""
    cost_type_id: str = ""

    @property
    def label(self) -> str:
        parts = [self.cost_code, self.cost_type] + ([self.sub_job] if self.sub_job else [])
        return "/".join(parts)


@dataclass(frozen=True)
class Modification:
    id: str
    number: int
    from_line_id: str | None
    to_line_id: str | None
    amount: Decimal

    def effect_on(self, line_id: str) -> Decimal:
        """Signed effect on one line: + when money moves into it, - when out of it."""
        if line_id == self.to_line_id:
            return self.amount
        if line_id == self.from_line_id:
            return -self.amount
        return ZERO


@dataclass(frozen=True)
class ExportedEntry:
    """An entry of an earlier request, with what its request's status says about it."""

    line_item_id: str
    kind: EntryKind
    source_id: str
    amount: Decimal
    withdrawn: bool  # its request was retrieved or rejected
    synced: bool  # its request reached SYNCED


@dataclass(frozen=True)
class Entry:
    line_item_id: str
    kind: EntryKind
    source_id: str
    amount: Decimal


@dataclass(frozen=True)
class ExportLine:
    line: Line
    original_budget: Decimal
    budget_changes: Decimal
    revised_estimate: Decimal
    is_new_line: bool
    entries: tuple[Entry, ...]


def modifications_by_line(modifications: Iterable[Modification]) -> dict[str, list[Modification]]:
    by_line: dict[str, list[Modification]] = defaultdict(list)
    for mod in modifications:
        for line_id in {mod.from_line_id, mod.to_line_id} - {None}:
            assert line_id is not None
            by_line[line_id].append(mod)
    return by_line


def modifications_amount(line_id: str, modifications: Iterable[Modification]) -> Decimal:
    return sum((m.effect_on(line_id) for m in modifications), ZERO)


def pending_line(
    line: Line, modifications: Sequence[Modification], exported: Sequence[ExportedEntry]
) -> ExportLine | None:
    """The part of one line not yet exported, or None when everything on it was exported."""
    live = [e for e in exported if not e.withdrawn]
    originals = [e for e in live if e.kind is EntryKind.ORIGINAL_BUDGET]
    exported_mods = {e.source_id for e in live if e.kind is EntryKind.BUDGET_MODIFICATION}
    entries: list[Entry] = []
    delta = line.original_amount - sum((e.amount for e in originals), ZERO)
    # A new line goes out even at zero, so the ERP learns its cost code / cost type pair.
    if delta != 0 or not originals:
        entries.append(Entry(line.id, EntryKind.ORIGINAL_BUDGET, line.id, delta))
    for mod in sorted(modifications, key=lambda m: m.number):
        if mod.id not in exported_mods:
            entries.append(Entry(line.id, EntryKind.BUDGET_MODIFICATION, mod.id, mod.effect_on(line.id)))
    if not entries:
        return None
    changes = sum((e.amount for e in entries if e.kind is EntryKind.BUDGET_MODIFICATION), ZERO)
    return ExportLine(
        line=line,
        original_budget=delta,
        budget_changes=changes,
        revised_estimate=line.original_amount + modifications_amount(line.id, modifications),
        is_new_line=not originals,
        entries=tuple(entries),
    )


def pending_export(
    lines: Sequence[Line], modifications: Sequence[Modification], exported: Sequence[ExportedEntry]
) -> list[ExportLine]:
    mods = modifications_by_line(modifications)
    entries_by_line: dict[str, list[ExportedEntry]] = defaultdict(list)
    for entry in exported:
        entries_by_line[entry.line_item_id].append(entry)
    result = []
    for line in lines:
        pending = pending_line(line, mods.get(line.id, []), entries_by_line.get(line.id, []))
        if pending is not None:
            result.append(pending)
    return result


def line_synced(line: Line, modifications: Sequence[Modification], exported: Sequence[ExportedEntry]) -> bool:
    """Everything on the line was exported, and every request that carried it reached SYNCED."""
    if not exported:  # never exported: its original budget is still to send (a page of new lines stops here)
        return False
    if pending_line(line, modifications, exported) is not None:
        return False
    return all(e.synced for e in exported if not e.withdrawn)


def modification_synced(modification_id: str, exported: Iterable[ExportedEntry]) -> bool:
    live = [e for e in exported if not e.withdrawn and e.source_id == modification_id]
    return bool(live) and all(e.synced for e in live)


def request_kind(exported: Iterable[ExportedEntry]) -> str:
    """A budget's first accepted-or-pending send creates it in the ERP; later ones update it."""
    return "UPDATE_BUDGET" if any(not e.withdrawn for e in exported) else "CREATE_BUDGET"
