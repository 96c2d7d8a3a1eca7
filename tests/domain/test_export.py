"""What a send carries: every source amount not yet exported, as signed entries per line (Decimal only)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.export import (
    Entry,
    EntryKind,
    ExportedEntry,
    ExportLine,
    Line,
    Modification,
    line_synced,
    modification_synced,
    modifications_amount,
    pending_export,
    request_kind,
)

ORIGINAL, MOD = EntryKind.ORIGINAL_BUDGET, EntryKind.BUDGET_MODIFICATION
D = Decimal


def line(line_id: str, amount: str, *, code: str = "03-300", kind: str = "L", sub_job: str | None = None) -> Line:
    return Line(line_id, code, kind, sub_job, f"line {line_id}", D(amount))


def mod(mod_id: str, number: int, amount: str, *, src: str | None = None, dst: str | None = None) -> Modification:
    return Modification(mod_id, number, src, dst, D(amount))


def sent(
    line_id: str,
    kind: EntryKind,
    source_id: str,
    amount: str,
    *,
    withdrawn: bool = False,
    synced: bool = False,
) -> ExportedEntry:
    return ExportedEntry(line_id, kind, source_id, D(amount), withdrawn, synced)


def by_line(result: list[ExportLine]) -> dict[str, ExportLine]:
    return {export_line.line.id: export_line for export_line in result}


def amounts(export_line: ExportLine) -> list[tuple[EntryKind, str, Decimal]]:
    return [(e.kind, e.source_id, e.amount) for e in export_line.entries]


def assert_all_decimal(result: list[ExportLine]) -> None:
    for export_line in result:
        for value in (export_line.original_budget, export_line.budget_changes, export_line.revised_estimate):
            assert type(value) is Decimal
        for entry in export_line.entries:
            assert type(entry.amount) is Decimal


A = line("A", "1250.00")
B = line("B", "800.00", code="05-100", kind="M")
ZERO_LINE = line("Z", "0.00", code="09-900", kind="S")


# ---------------------------------------------------------------- first send


def test_first_send_carries_every_line_with_its_full_original_amount() -> None:
    result = pending_export([A, B, ZERO_LINE], [], [])
    assert [x.line.id for x in result] == ["A", "B", "Z"]
    assert amounts(by_line(result)["A"]) == [(ORIGINAL, "A", D("1250.00"))]
    assert amounts(by_line(result)["B"]) == [(ORIGINAL, "B", D("800.00"))]
    assert all(x.is_new_line for x in result)
    assert_all_decimal(result)


def test_first_send_carries_a_zero_amount_line_so_the_erp_learns_its_cost_code() -> None:
    [zero] = pending_export([ZERO_LINE], [], [])
    assert zero.is_new_line
    assert amounts(zero) == [(ORIGINAL, "Z", D("0"))]
    assert zero.original_budget == 0
    assert zero.revised_estimate == 0


def test_first_send_of_a_modified_budget_carries_originals_and_modifications() -> None:
    m1 = mod("m1", 1, "100.00", src="A", dst="B")
    result = by_line(pending_export([A, B], [m1], []))
    assert amounts(result["A"]) == [(ORIGINAL, "A", D("1250.00")), (MOD, "m1", D("-100.00"))]
    assert amounts(result["B"]) == [(ORIGINAL, "B", D("800.00")), (MOD, "m1", D("100.00"))]
    assert result["A"].revised_estimate == D("1150.00")
    assert result["B"].revised_estimate == D("900.00")


def test_entries_carry_the_line_item_they_belong_to() -> None:
    m1 = mod("m1", 1, "100.00", src="A", dst="B")
    for export_line in pending_export([A, B], [m1], []):
        assert {e.line_item_id for e in export_line.entries} == {export_line.line.id}


# ---------------------------------------------------------------- re-send


def first_send_of(*lines: Line, synced: bool) -> list[ExportedEntry]:
    return [sent(x.id, ORIGINAL, x.id, str(x.original_amount), synced=synced) for x in lines]


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "awaiting_posting"])
def test_a_re_send_without_changes_carries_nothing(synced: bool) -> None:
    assert pending_export([A, B], [], first_send_of(A, B, synced=synced)) == []


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "live_not_yet_synced"])
def test_a_re_send_carries_only_signed_deltas_of_changed_original_amounts(synced: bool) -> None:
    exported = first_send_of(A, B, ZERO_LINE, synced=synced)
    raised = line("A", "1300.00")
    lowered = line("B", "750.50", code="05-100", kind="M")
    result = by_line(pending_export([raised, lowered, ZERO_LINE], [], exported))
    assert set(result) == {"A", "B"}
    assert amounts(result["A"]) == [(ORIGINAL, "A", D("50.00"))]
    assert amounts(result["B"]) == [(ORIGINAL, "B", D("-49.50"))]
    assert result["A"].original_budget == D("50.00")
    assert result["B"].original_budget == D("-49.50")
    assert not result["A"].is_new_line
    assert not result["B"].is_new_line
    assert result["A"].revised_estimate == D("1300.00")
    assert_all_decimal(list(result.values()))


def test_a_re_send_carries_a_line_added_since_as_a_new_line_even_at_zero() -> None:
    exported = first_send_of(A, synced=True)
    added = line("C", "0.00", code="09-900", kind="O")
    result = by_line(pending_export([A, added], [], exported))
    assert set(result) == {"C"}
    assert result["C"].is_new_line
    assert amounts(result["C"]) == [(ORIGINAL, "C", D("0.00"))]


def test_a_re_send_carries_only_modifications_not_yet_sent() -> None:
    m1 = mod("m1", 1, "100.00", src="A", dst="B")
    m2 = mod("m2", 2, "25.00", src="B", dst="A")
    exported = [
        *first_send_of(A, B, synced=True),
        sent("A", MOD, "m1", "-100.00", synced=True),
        sent("B", MOD, "m1", "100.00", synced=True),
    ]
    result = by_line(pending_export([A, B], [m1, m2], exported))
    assert amounts(result["A"]) == [(MOD, "m2", D("25.00"))]
    assert amounts(result["B"]) == [(MOD, "m2", D("-25.00"))]
    assert result["A"].budget_changes == D("25.00")
    assert result["A"].original_budget == 0
    assert not result["A"].is_new_line
    # The revised estimate is the whole line, not only what this send carries.
    assert result["A"].revised_estimate == D("1175.00")
    assert result["B"].revised_estimate == D("875.00")


def test_an_exported_modification_is_not_sent_again_while_awaiting_posting() -> None:
    m1 = mod("m1", 1, "100.00", dst="A")
    exported = [*first_send_of(A, synced=True), sent("A", MOD, "m1", "100.00", synced=False)]
    assert pending_export([A], [m1], exported) == []


# ---------------------------------------------------------------- withdrawn requests


def test_entries_of_a_retrieved_or_rejected_request_count_as_unexported() -> None:
    m1 = mod("m1", 1, "100.00", src="A", dst="B")
    withdrawn = [
        sent("A", ORIGINAL, "A", "1250.00", withdrawn=True),
        sent("B", ORIGINAL, "B", "800.00", withdrawn=True),
        sent("A", MOD, "m1", "-100.00", withdrawn=True),
        sent("B", MOD, "m1", "100.00", withdrawn=True),
    ]
    assert pending_export([A, B], [m1], withdrawn) == pending_export([A, B], [m1], [])
    assert all(x.is_new_line for x in pending_export([A, B], [m1], withdrawn))


def test_a_withdrawn_delta_is_sent_again_on_top_of_the_live_export() -> None:
    exported = [
        sent("A", ORIGINAL, "A", "1250.00", synced=True),
        sent("A", ORIGINAL, "A", "50.00", withdrawn=True),  # a rejected re-send of the raise
    ]
    [result] = pending_export([line("A", "1300.00")], [], exported)
    assert amounts(result) == [(ORIGINAL, "A", D("50.00"))]
    assert not result.is_new_line


def test_a_withdrawn_modification_is_sent_again() -> None:
    m1 = mod("m1", 1, "40.00", src="A")
    exported = [*first_send_of(A, synced=True), sent("A", MOD, "m1", "-40.00", withdrawn=True)]
    [result] = pending_export([A], [m1], exported)
    assert amounts(result) == [(MOD, "m1", D("-40.00"))]


# ---------------------------------------------------------------- modifications


def test_a_modification_moving_money_from_a_to_b_is_minus_on_a_and_plus_on_b() -> None:
    m1 = mod("m1", 1, "300.00", src="A", dst="B")
    result = by_line(pending_export([A, B], [m1], first_send_of(A, B, synced=True)))
    assert amounts(result["A"]) == [(MOD, "m1", D("-300.00"))]
    assert amounts(result["B"]) == [(MOD, "m1", D("300.00"))]
    assert result["A"].budget_changes + result["B"].budget_changes == 0


def test_a_modification_without_from_adds_to_one_line_only() -> None:
    m1 = mod("m1", 1, "75.25", dst="B")
    result = by_line(pending_export([A, B], [m1], first_send_of(A, B, synced=True)))
    assert set(result) == {"B"}
    assert amounts(result["B"]) == [(MOD, "m1", D("75.25"))]


def test_a_modification_without_to_removes_from_one_line_only() -> None:
    m1 = mod("m1", 1, "75.25", src="A")
    result = by_line(pending_export([A, B], [m1], first_send_of(A, B, synced=True)))
    assert set(result) == {"A"}
    assert amounts(result["A"]) == [(MOD, "m1", D("-75.25"))]


def test_modification_entries_go_out_in_modification_number_order() -> None:
    mods = [mod("m3", 3, "3.00", dst="A"), mod("m1", 1, "1.00", dst="A"), mod("m2", 2, "2.00", src="A")]
    [result] = pending_export([A], mods, first_send_of(A, synced=True))
    assert [e.source_id for e in result.entries] == ["m1", "m2", "m3"]
    assert result.budget_changes == D("2.00")


def test_revised_estimate_is_original_plus_every_modification_in_minus_out() -> None:
    mods = [
        mod("m1", 1, "0.10", dst="A"),
        mod("m2", 2, "0.20", dst="A"),
        mod("m3", 3, "0.05", src="A", dst="B"),
        mod("m4", 4, "999.00", src="B", dst="C"),  # does not touch A
    ]
    a = line("A", "0.00")
    [result] = pending_export([a], mods, [])
    assert result.revised_estimate == D("0.25")
    assert modifications_amount("A", mods) == D("0.25")
    assert modifications_amount("B", mods) == D("-998.95")
    assert modifications_amount("C", mods) == D("999.00")
    assert modifications_amount("unrelated", mods) == 0


def test_live_exports_plus_the_pending_send_add_up_to_the_revised_estimate() -> None:
    m1 = mod("m1", 1, "100.00", src="A", dst="B")
    m2 = mod("m2", 2, "12.34", dst="A")
    exported = [
        sent("A", ORIGINAL, "A", "1000.00", synced=True),
        sent("A", MOD, "m1", "-100.00", synced=True),
        sent("B", ORIGINAL, "B", "500.00", synced=True),
        sent("B", MOD, "m1", "100.00", synced=True),
        sent("A", MOD, "m2", "12.34", withdrawn=True),
    ]
    lines = [A, B]
    for export_line in pending_export(lines, [m1, m2], exported):
        line_id = export_line.line.id
        live = sum((e.amount for e in exported if e.line_item_id == line_id and not e.withdrawn), D(0))
        carried = sum((e.amount for e in export_line.entries), D(0))
        assert live + carried == export_line.revised_estimate


# ---------------------------------------------------------------- synced flags


def test_a_line_is_synced_once_everything_on_it_was_exported_and_posted() -> None:
    m1 = mod("m1", 1, "100.00", dst="A")
    exported = [sent("A", ORIGINAL, "A", "1250.00", synced=True), sent("A", MOD, "m1", "100.00", synced=True)]
    assert line_synced(A, [m1], exported)


def test_a_line_never_sent_is_not_synced() -> None:
    assert not line_synced(A, [], [])
    assert not line_synced(ZERO_LINE, [], [])


def test_a_line_awaiting_posting_is_not_synced() -> None:
    assert not line_synced(A, [], first_send_of(A, synced=False))


def test_a_line_changed_since_its_export_is_not_synced() -> None:
    assert not line_synced(line("A", "1300.00"), [], first_send_of(A, synced=True))
    assert not line_synced(A, [mod("m1", 1, "5.00", dst="A")], first_send_of(A, synced=True))


def test_a_line_whose_only_export_was_withdrawn_is_not_synced() -> None:
    assert not line_synced(A, [], [sent("A", ORIGINAL, "A", "1250.00", withdrawn=True)])


def test_a_withdrawn_unsynced_request_does_not_unsync_a_posted_line() -> None:
    exported = [
        sent("A", ORIGINAL, "A", "1250.00", synced=True),
        sent("A", ORIGINAL, "A", "0.00", withdrawn=True, synced=False),
    ]
    assert line_synced(A, [], exported)


def test_a_modification_is_synced_when_every_live_entry_of_it_was_posted() -> None:
    exported = [sent("A", MOD, "m1", "-10.00", synced=True), sent("B", MOD, "m1", "10.00", synced=True)]
    assert modification_synced("m1", exported)


def test_a_modification_is_not_synced_while_any_entry_awaits_posting() -> None:
    exported = [sent("A", MOD, "m1", "-10.00", synced=True), sent("B", MOD, "m1", "10.00", synced=False)]
    assert not modification_synced("m1", exported)


def test_a_modification_never_sent_or_only_withdrawn_is_not_synced() -> None:
    assert not modification_synced("m1", [])
    assert not modification_synced("m1", [sent("A", MOD, "m1", "10.00", withdrawn=True)])
    assert not modification_synced("m1", [sent("A", MOD, "m2", "10.00", synced=True)])


# ---------------------------------------------------------------- request kind


def test_the_first_send_creates_the_budget_in_the_erp() -> None:
    assert request_kind([]) == "CREATE_BUDGET"


def test_a_send_after_only_withdrawn_requests_still_creates_the_budget() -> None:
    exported = [sent("A", ORIGINAL, "A", "1250.00", withdrawn=True)]
    assert request_kind(exported) == "CREATE_BUDGET"


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "live_not_yet_synced"])
def test_a_send_after_a_live_request_updates_the_budget(synced: bool) -> None:
    exported = [
        sent("A", ORIGINAL, "A", "1250.00", withdrawn=True),
        sent("B", ORIGINAL, "B", "800.00", synced=synced),
    ]
    assert request_kind(exported) == "UPDATE_BUDGET"


# ---------------------------------------------------------------- small pieces


def test_a_line_label_is_cost_code_cost_type_and_sub_job() -> None:
    assert A.label == "03-300/L"
    assert line("S", "1.00", code="03-300", kind="L", sub_job="PH2").label == "03-300/L/PH2"


def test_a_modification_effect_is_signed_by_direction() -> None:
    m1 = mod("m1", 1, "10.00", src="A", dst="B")
    assert m1.effect_on("A") == D("-10.00")
    assert m1.effect_on("B") == D("10.00")
    assert m1.effect_on("C") == 0
    assert type(m1.effect_on("C")) is Decimal


def test_entries_are_plain_values() -> None:
    assert Entry("A", ORIGINAL, "A", D("1.00")) == Entry("A", ORIGINAL, "A", D("1.00"))
