"""Amounts and totals within NUMERIC(15,2): the domain decides which change would pass 13 integer digits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.budget import BudgetTotals, LineAmounts, amount_refusals, require_amounts_in_range
from domain.errors import DomainErrors, ErrorCode
from domain.money import MAX_AMOUNT, amount_in_range
from domain.text import storable, unstorable

D = Decimal
MAX = MAX_AMOUNT


@pytest.mark.parametrize(
    ("value", "fits"),
    [(MAX, True), (-MAX, True), (D("0"), True), (MAX + D("0.01"), False), (-MAX - D("0.01"), False),
     (D("1e13"), False)],
)
def test_an_amount_fits_13_integer_digits(value: Decimal, fits: bool) -> None:
    assert amount_in_range(value) is fits


def test_totals_follow_a_line_replaced_added_or_removed() -> None:
    totals = BudgetTotals(D("100.00"), D("5.00"))
    before = LineAmounts(D("40.00"), D("5.00"))
    after = LineAmounts(D("60.00"), D("-1.00"))
    assert totals.replacing(before, after) == BudgetTotals(D("120.00"), D("-1.00"))
    assert totals.replacing(None, after) == BudgetTotals(D("160.00"), D("4.00"))
    assert totals.replacing(before, None) == BudgetTotals(D("60.00"), D("0.00"))
    assert totals.revised == D("105.00")


def test_a_change_within_range_is_not_refused() -> None:
    line = LineAmounts(MAX, D("0.00"))
    assert amount_refusals([line], BudgetTotals(MAX, D("0"))) == []
    require_amounts_in_range([LineAmounts(-MAX, MAX)], BudgetTotals(D("0"), MAX))


def test_each_amount_past_13_digits_is_named_on_its_field() -> None:
    field = ("input", "amount")
    line = LineAmounts(MAX, MAX, "line 03-300/L", field)  # its revised amount: 2 * MAX
    errors = amount_refusals([line], BudgetTotals(D("0"), D("0")))
    assert [(e.code, e.field) for e in errors] == [(ErrorCode.AMOUNT_OUT_OF_RANGE, field)]
    assert "revised amount of line 03-300/L" in errors[0].message and "19999999999999.98" in errors[0].message


def test_budget_totals_past_13_digits_are_refused_on_the_field_given() -> None:
    totals = BudgetTotals(MAX, MAX)  # each fits; the revised total does not
    errors = amount_refusals([], totals, ["input", "items"])
    assert [(e.code, e.field) for e in errors] == [(ErrorCode.AMOUNT_OUT_OF_RANGE, ("input", "items"))]
    assert "revised budget total" in errors[0].message
    with pytest.raises(DomainErrors):
        require_amounts_in_range([], BudgetTotals(MAX + 1, D("0")))


@pytest.mark.parametrize(
    ("text", "reason"),
    [("plain", None), ("é 😀 \u2028", None), ("a\x00", "NUL"), ("\ud800", "surrogate"), ("x\udfffy", "surrogate")],
)
def test_text_that_cannot_be_stored_is_named(text: str, reason: str | None) -> None:
    found = unstorable(text)
    assert storable(text) is (reason is None)
    assert (found is None) if reason is None else (found is not None and reason in found)
