"""What a client typed, checked before any decision: each refusal names the input field at fault."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import DomainError, DomainErrors, ErrorCode
from resolvers import input_validation as check
from resolvers.input_validation import LineFields

FIELD = ["input", "x"]


def test_text_is_trimmed_and_blank_text_is_none() -> None:
    assert check.text("  Footings  ", FIELD, max_len=20) == "Footings"
    assert check.text("   ", FIELD, max_len=20) is None
    assert check.text(None, FIELD, max_len=20) is None


@pytest.mark.parametrize(("value", "required", "max_len"), [("", True, 5), (None, True, 5), ("abcdef", False, 5)])
def test_text_refusals_name_the_field(value: str | None, required: bool, max_len: int) -> None:
    with pytest.raises(DomainError) as caught:
        check.text(value, FIELD, max_len=max_len, required=required)
    assert (caught.value.code, caught.value.field) == (ErrorCode.VALIDATION_FAILED, ("input", "x"))


def test_amounts_are_exact_with_at_most_two_places() -> None:
    assert str(check.amount(Decimal("1250.5"), FIELD)) == "1250.50"
    for bad in (Decimal("1.005"), None):
        with pytest.raises(DomainError):
            check.amount(bad, FIELD)
    with pytest.raises(DomainError) as caught:
        check.amount(Decimal("0"), FIELD, positive=True)
    assert caught.value.message == "must be greater than 0"


def test_quantities_keep_up_to_four_places() -> None:
    assert check.quantity(Decimal("12.5000"), FIELD) == Decimal("12.5000")
    assert check.quantity(None, FIELD) is None
    with pytest.raises(DomainError):
        check.quantity(Decimal("0.00001"), FIELD)


def line(**changes: object) -> LineFields:
    fields: dict[str, object] = {
        "cost_code_id": "cc1",
        "cost_type_id": "ct1",
        "sub_job": None,
        "description": " Footings ",
        "original_amount": Decimal("100"),
    }
    fields.update(changes)
    return LineFields(**fields)  # type: ignore[arg-type]


def test_a_valid_line_has_its_key_with_an_empty_sub_job_for_none() -> None:
    valid = check.valid_line(line(), ["item"], frozenset({"cc1"}), frozenset({"ct1"}))
    assert valid.key == ("cc1", "ct1", "")
    assert (valid.description, str(valid.original_amount)) == ("Footings", "100.00")


def test_an_invalid_line_reports_every_field_at_once() -> None:
    bad = line(cost_code_id="other", original_amount=Decimal("1.001"), unit_of_measure="x" * 21)
    with pytest.raises(DomainErrors) as caught:
        check.valid_line(bad, ["input", "items", "2"], frozenset({"cc1"}), frozenset({"ct1"}))
    assert sorted((e.code, e.field) for e in caught.value.errors) == [
        (ErrorCode.NOT_FOUND, ("input", "items", "2", "costCodeId")),
        (ErrorCode.VALIDATION_FAILED, ("input", "items", "2", "originalAmount")),
        (ErrorCode.VALIDATION_FAILED, ("input", "items", "2", "unitOfMeasure")),
    ]
