"""Where every cent of a budget stands: exported, posted, pending and unsent per line, and a difference that is
zero unless the entries and the budget disagree."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.export import EntryKind, Line, Modification
from domain.reconciliation import Reconciliation, ReconciliationLine, SentEntry, reconcile
from domain.status import ExportStatus

S = ExportStatus
ORIGINAL, MOD = EntryKind.ORIGINAL_BUDGET, EntryKind.BUDGET_MODIFICATION
D = Decimal

CONCRETE = Line("li_c", "03-300", "L", "BLDG-A", "Footings", D("1000.00"))
STEEL = Line("li_s", "05-120", "M", None, None, D("2500.00"))
CO_1 = Modification("mod_1", 1, "li_s", "li_c", D("300.00"))  # 300 from steel to concrete


def entry(line: Line, kind: EntryKind, source: str, amount: str, status: ExportStatus) -> SentEntry:
    return SentEntry(line.id, kind, source, D(amount), status)


def row(result: Reconciliation, line: Line) -> tuple[str, ...]:
    found = next(r for r in result.lines if r.line_item_id == line.id)
    return tuple(str(v) for v in (found.revised_amount, found.exported, found.posted, found.pending, found.unsent,
                                  found.difference))


def test_nothing_sent_is_all_unsent() -> None:
    result = reconcile([CONCRETE, STEEL], [CO_1], [])
    assert row(result, CONCRETE) == ("1300.00", "0.00", "0.00", "0.00", "1300.00", "0.00")
    assert row(result, STEEL) == ("2200.00", "0.00", "0.00", "0.00", "2200.00", "0.00")
    assert result.balanced


# The first send's entries (concrete's original, steel's original, both sides of modification 1) in a request
# of each status: which bucket they land in.
BUCKETS = {
    # status: (exported, posted, pending, unsent) of the concrete line (original 1000 + 300 moved in)
    S.PENDING_ACCEPTANCE: ("0.00", "0.00", "1300.00", "0.00"),
    S.EXPORTING: ("0.00", "0.00", "1300.00", "0.00"),
    S.EXPORT_FAILED: ("0.00", "0.00", "1300.00", "0.00"),  # a failed export wrote nothing
    S.AWAITING_POSTING: ("1300.00", "0.00", "0.00", "0.00"),
    S.SYNCED: ("1300.00", "1300.00", "0.00", "0.00"),
    S.RETRIEVED: ("0.00", "0.00", "0.00", "1300.00"),  # never exported: a later send carries it again
    S.REJECTED: ("0.00", "0.00", "0.00", "1300.00"),
}


@pytest.mark.parametrize("status", list(BUCKETS), ids=[s.value for s in BUCKETS])
def test_each_request_status_puts_its_entries_in_one_bucket(status: ExportStatus) -> None:
    entries = [
        entry(CONCRETE, ORIGINAL, CONCRETE.id, "1000.00", status),
        entry(STEEL, ORIGINAL, STEEL.id, "2500.00", status),
        entry(CONCRETE, MOD, CO_1.id, "300.00", status),
        entry(STEEL, MOD, CO_1.id, "-300.00", status),
    ]
    result = reconcile([CONCRETE, STEEL], [CO_1], entries)
    assert row(result, CONCRETE) == ("1300.00", *BUCKETS[status], "0.00")
    assert result.balanced
    assert result.totals.revised_amount == D("3500.00")
    assert result.totals.difference == 0


def test_a_re_send_splits_a_line_between_what_was_exported_and_what_is_not() -> None:
    """Synced first send of 1000.00; the amount went to 1250.00 and modification 1 came since; a second request
    is pending acceptance with the +250.00 only; modification 1 is not sent yet."""
    changed = Line("li_c", "03-300", "L", "BLDG-A", "Footings", D("1250.00"))
    entries = [
        entry(changed, ORIGINAL, changed.id, "1000.00", S.SYNCED),
        entry(STEEL, ORIGINAL, STEEL.id, "2500.00", S.SYNCED),
        entry(changed, ORIGINAL, changed.id, "250.00", S.PENDING_ACCEPTANCE),
    ]
    result = reconcile([changed, STEEL], [CO_1], entries)
    assert row(result, changed) == ("1550.00", "1000.00", "1000.00", "250.00", "300.00", "0.00")
    assert row(result, STEEL) == ("2200.00", "2500.00", "2500.00", "0.00", "-300.00", "0.00")
    totals = result.totals
    assert (totals.line_item_id, totals.cost_code, totals.cost_type, totals.sub_job) == (None, "", "", None)
    assert [str(v) for v in (totals.revised_amount, totals.exported, totals.posted, totals.pending, totals.unsent,
                             totals.difference)] == ["3750.00", "3500.00", "3500.00", "250.00", "0.00", "0.00"]
    assert result.balanced


def test_lines_keep_their_order_and_codes() -> None:
    result = reconcile([STEEL, CONCRETE], [], [])
    assert [(r.cost_code, r.cost_type, r.sub_job, r.label) for r in result.lines] == [
        ("05-120", "M", None, "05-120/M"), ("03-300", "L", "BLDG-A", "03-300/L/BLDG-A"),
    ]


def test_an_entry_that_disagrees_with_the_budget_unbalances_its_line() -> None:
    """A modification written to the ERP with another amount than the modification's (a bug, or a ledger
    edited by hand): the line's difference shows it, and the reconciliation is not balanced."""
    entries = [
        entry(CONCRETE, ORIGINAL, CONCRETE.id, "1000.00", S.SYNCED),
        entry(STEEL, ORIGINAL, STEEL.id, "2500.00", S.SYNCED),
        entry(CONCRETE, MOD, CO_1.id, "330.00", S.SYNCED),
        entry(STEEL, MOD, CO_1.id, "-300.00", S.SYNCED),
    ]
    result = reconcile([CONCRETE, STEEL], [CO_1], entries)
    assert row(result, CONCRETE) == ("1300.00", "1330.00", "1330.00", "0.00", "0.00", "-30.00")
    assert [r.line_item_id for r in result.unbalanced_lines] == ["li_c"]
    assert not result.balanced
    assert result.totals.difference == D("-30.00")


def test_an_empty_budget_is_balanced_at_zero() -> None:
    result = reconcile([], [], [])
    assert result.lines == ()
    assert result.totals == ReconciliationLine(None, "", "", None, *(D("0.00"),) * 5)
    assert result.balanced
