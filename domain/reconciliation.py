"""Where every cent of a budget stands, per line (cost code, cost type, sub job): what an accountant signs.

For each line, its revised amount (original + modifications) is split by where its entries are:

* **exported**: entries of requests the connector wrote to the ERP (AWAITING_POSTING or SYNCED);
* **posted**: of exported, those of requests whose entries are posted in the ERP's Job Cost (SYNCED);
* **pending**: entries of requests sent and not written: waiting for the approver (PENDING_ACCEPTANCE), being
  exported (EXPORTING, including a webhook export the integrator has not reported on yet) or failed and
  waiting for a retry (EXPORT_FAILED: a failed export wrote nothing, see domain.status.WRITTEN);
* **unsent**: what a send would carry now (domain.export.pending_export: new lines, changes of original
  amounts, modifications not yet sent, and whatever retrieved or rejected requests carried);
* **difference** = revised - exported - pending - unsent. Every amount of a line is in exactly one of the
  buckets, so the difference is zero; anything else means the entries and the budget disagree (an entry
  written with another amount than the budget's, a bucket missed) and the reconciliation is not balanced.

Retrieved and rejected requests count nowhere: their entries were never exported, so their amounts are unsent
again. Pure: the caller gives the lines, the modifications and every entry with its request's status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain import export
from domain.export import EntryKind, ExportedEntry
from domain.money import ZERO, to_amount
from domain.status import SENT_NOT_WRITTEN, WITHDRAWN, WRITTEN, ExportStatus


@dataclass(frozen=True)
class SentEntry:
    """An export entry with the status of the request that carries it."""

    line_item_id: str
    kind: EntryKind
    source_id: str
    amount: Decimal
    status: ExportStatus

    def as_exported(self) -> ExportedEntry:
        return ExportedEntry(
            line_item_id=self.line_item_id,
            kind=self.kind,
            source_id=self.source_id,
            amount=self.amount,
            withdrawn=self.status in WITHDRAWN,
            synced=self.status is ExportStatus.SYNCED,
        )


@dataclass(frozen=True)
class ReconciliationLine:
    """One line's amounts (or, with no line, the budget's totals: empty cost code and cost type)."""

    line_item_id: str | None
    cost_code: str
    cost_type: str
    sub_job: str | None
    revised_amount: Decimal
    exported: Decimal
    posted: Decimal
    pending: Decimal
    unsent: Decimal

    @property
    def difference(self) -> Decimal:
        return to_amount(self.revised_amount - self.exported - self.pending - self.unsent)

    @property
    def label(self) -> str:
        return "/".join([self.cost_code, self.cost_type] + ([self.sub_job] if self.sub_job else []))


@dataclass(frozen=True)
class Reconciliation:
    lines: tuple[ReconciliationLine, ...]
    totals: ReconciliationLine

    @property
    def balanced(self) -> bool:
        return all(line.difference == 0 for line in self.lines) and self.totals.difference == 0

    @property
    def unbalanced_lines(self) -> tuple[ReconciliationLine, ...]:
        return tuple(line for line in self.lines if line.difference != 0)


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return to_amount(sum(amounts, ZERO))


def totals_of(lines: Sequence[ReconciliationLine]) -> ReconciliationLine:
    return ReconciliationLine(
        line_item_id=None,
        cost_code="",
        cost_type="",
        sub_job=None,
        revised_amount=_sum(line.revised_amount for line in lines),
        exported=_sum(line.exported for line in lines),
        posted=_sum(line.posted for line in lines),
        pending=_sum(line.pending for line in lines),
        unsent=_sum(line.unsent for line in lines),
    )


def reconcile(
    lines: Sequence[export.Line], modifications: Sequence[export.Modification], entries: Sequence[SentEntry]
) -> Reconciliation:
    """The reconciliation of one budget: a row per line, in the order given, and the totals."""
    entries_by_line: dict[str, list[SentEntry]] = defaultdict(list)
    for entry in entries:
        entries_by_line[entry.line_item_id].append(entry)
    unsent_by_line = {
        pending.line.id: _sum(e.amount for e in pending.entries)
        for pending in export.pending_export(lines, modifications, [e.as_exported() for e in entries])
    }
    mods = export.modifications_by_line(modifications)
    rows = []
    for line in lines:
        own = entries_by_line.get(line.id, [])
        rows.append(
            ReconciliationLine(
                line_item_id=line.id,
                cost_code=line.cost_code,
                cost_type=line.cost_type,
                sub_job=line.sub_job,
                revised_amount=to_amount(
                    line.original_amount + export.modifications_amount(line.id, mods.get(line.id, []))
                ),
                exported=_sum(e.amount for e in own if e.status in WRITTEN),
                posted=_sum(e.amount for e in own if e.status is ExportStatus.SYNCED),
                pending=_sum(e.amount for e in own if e.status in SENT_NOT_WRITTEN),
                unsent=unsent_by_line.get(line.id, ZERO),
            )
        )
    return Reconciliation(lines=tuple(rows), totals=totals_of(rows))
