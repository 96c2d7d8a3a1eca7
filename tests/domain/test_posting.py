"""Posting control totals: given totals must equal the request's exported entries; a connection may require them."""

from __future__ import annotations

from decimal import Decimal

from domain.errors import DomainError, ErrorCode, PostingTotalsMismatchError, ValidationError
from domain.posting import ControlTotals, control_totals, posting_totals_refusals

EXPORTED = control_totals([Decimal("1000.00"), Decimal("-250.00"), Decimal("0.00"), Decimal("125.75")])


def summary(errors: list[DomainError]) -> list[tuple[ErrorCode, tuple[str, ...] | None]]:
    return [(e.code, e.field) for e in errors]


def test_the_totals_count_every_entry_and_sum_them_signed() -> None:
    assert (EXPORTED.entry_count, EXPORTED.total_amount) == (4, Decimal("875.75"))
    assert control_totals([]) == ControlTotals(0, Decimal("0.00"))


def test_matching_totals_pass_whether_required_or_not() -> None:
    for required in (True, False):
        assert posting_totals_refusals(EXPORTED, 4, Decimal("875.75"), required=required) == []
        assert posting_totals_refusals(EXPORTED, 4, Decimal("875.750"), required=required) == []


def test_no_totals_pass_unless_required() -> None:
    assert posting_totals_refusals(EXPORTED, None, None, required=False) == []
    errors = posting_totals_refusals(EXPORTED, None, None, required=True)
    assert summary(errors) == [
        (ErrorCode.VALIDATION_FAILED, ("input", "entryCount")),
        (ErrorCode.VALIDATION_FAILED, ("input", "totalAmount")),
    ]
    assert all(isinstance(e, ValidationError) for e in errors)
    assert "requires the posting journal's entry count" in errors[0].message


def test_a_doubled_import_is_refused_on_both_totals() -> None:
    errors = posting_totals_refusals(EXPORTED, 8, Decimal("1751.50"), required=False)
    assert summary(errors) == [
        (ErrorCode.POSTING_TOTALS_MISMATCH, ("input", "entryCount")),
        (ErrorCode.POSTING_TOTALS_MISMATCH, ("input", "totalAmount")),
    ]
    assert all(isinstance(e, PostingTotalsMismatchError) for e in errors)
    assert errors[0].message == "the posting shows 8 entries, but the request exported 4 entries"
    assert errors[1].message == "the posting totals 1751.50, but the request's exported entries total 875.75"


def test_a_skipped_entry_is_refused_on_the_total_alone() -> None:
    errors = posting_totals_refusals(EXPORTED, 4, Decimal("750.00"), required=True)
    assert summary(errors) == [(ErrorCode.POSTING_TOTALS_MISMATCH, ("input", "totalAmount"))]


def test_one_total_given_is_checked_and_the_other_required_when_the_connection_says_so() -> None:
    assert posting_totals_refusals(EXPORTED, 4, None, required=False) == []
    assert summary(posting_totals_refusals(EXPORTED, 3, None, required=True)) == [
        (ErrorCode.POSTING_TOTALS_MISMATCH, ("input", "entryCount")),
        (ErrorCode.VALIDATION_FAILED, ("input", "totalAmount")),
    ]


def test_the_sign_matters() -> None:
    exported = control_totals([Decimal("-250.00")])
    assert summary(posting_totals_refusals(exported, 1, Decimal("250.00"), required=False)) == [
        (ErrorCode.POSTING_TOTALS_MISMATCH, ("input", "totalAmount")),
    ]
    assert posting_totals_refusals(exported, 1, Decimal("-250.00"), required=False) == []


def test_the_callers_path_and_names_are_used_for_the_fields() -> None:
    errors = posting_totals_refusals(EXPORTED, None, Decimal("1.00"), required=True, path=())
    assert summary(errors) == [
        (ErrorCode.VALIDATION_FAILED, ("entryCount",)),
        (ErrorCode.POSTING_TOTALS_MISMATCH, ("totalAmount",)),
    ]
