"""Money is an exact decimal: plain digits in, two fraction digits out, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.money import (
    MAX_INTEGER_DIGITS,
    ZERO,
    DecimalFormatError,
    format_decimal,
    has_at_most_places,
    parse_amount,
    parse_decimal,
    to_amount,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1250.00", "1250.00"),
        ("0", "0.00"),
        ("-5.5", "-5.50"),
        (12, "12.00"),
        ("0012.10", "12.10"),
        ("+7.25", "7.25"),
        ("  99.9 ", "99.90"),
        ("12.340", "12.34"),
        (-3, "-3.00"),
        ("9" * MAX_INTEGER_DIGITS + ".99", "9" * MAX_INTEGER_DIGITS + ".99"),
    ],
    ids=repr,
)
def test_an_amount_accepts_plain_digits_and_comes_out_with_two_places(text: object, expected: str) -> None:
    value = parse_amount(text)
    assert type(value) is Decimal
    assert str(value) == expected
    assert value == D(expected)


REFUSED_EVERYWHERE: list[object] = [
    "1e3",
    "1E3",
    "1.5e-2",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "",
    "   ",
    "1,000.00",
    "1 000",
    "$12.00",
    "12.",
    ".5",
    "--5",
    "0x10",
    "twelve",
    1.5,
    0.0,
    True,
    False,
    None,
    D("1.5"),
    [1],
    "1" * (MAX_INTEGER_DIGITS + 1),
    "1" * (MAX_INTEGER_DIGITS + 1) + ".00",
    int("1" * (MAX_INTEGER_DIGITS + 1)),
    "-" + "9" * (MAX_INTEGER_DIGITS + 1),
]


@pytest.mark.parametrize("value", REFUSED_EVERYWHERE, ids=repr)
def test_an_amount_refuses_anything_but_a_plain_decimal(value: object) -> None:
    with pytest.raises(DecimalFormatError) as refused:
        parse_amount(value)
    assert str(refused.value)


@pytest.mark.parametrize("value", REFUSED_EVERYWHERE, ids=repr)
def test_a_quantity_refuses_anything_but_a_plain_decimal(value: object) -> None:
    with pytest.raises(DecimalFormatError):
        parse_decimal(value)


@pytest.mark.parametrize("text", ["12.345", "0.001", "-5.555", "1.2345"])
def test_an_amount_refuses_more_than_two_fraction_digits(text: str) -> None:
    with pytest.raises(DecimalFormatError, match="fraction digits"):
        parse_amount(text)


def test_fourteen_integer_digits_are_refused_with_a_message_saying_so() -> None:
    with pytest.raises(DecimalFormatError, match="integer digits"):
        parse_amount("12345678901234")


def test_leading_zeros_do_not_count_as_integer_digits() -> None:
    assert parse_amount("0" * 10 + "1" * MAX_INTEGER_DIGITS) == D("1" * MAX_INTEGER_DIGITS)


def test_a_float_is_refused_even_when_it_looks_exact() -> None:
    with pytest.raises(DecimalFormatError, match="float"):
        parse_amount(1.5)


def test_a_boolean_is_not_taken_for_an_integer() -> None:
    with pytest.raises(DecimalFormatError):
        parse_amount(True)


def test_a_decimal_format_error_is_a_value_error() -> None:
    assert issubclass(DecimalFormatError, ValueError)


@pytest.mark.parametrize(("text", "expected"), [("1.2345", "1.2345"), ("0.5", "0.5"), ("10", "10"), (3, "3")])
def test_a_quantity_keeps_up_to_four_fraction_digits(text: object, expected: str) -> None:
    value = parse_decimal(text)
    assert type(value) is Decimal
    assert value == D(expected)


def test_a_quantity_refuses_a_fifth_fraction_digit() -> None:
    with pytest.raises(DecimalFormatError, match="fraction digits"):
        parse_decimal("1.23456")


def test_max_places_can_be_narrowed() -> None:
    assert parse_decimal("1.5", max_places=1) == D("1.5")
    with pytest.raises(DecimalFormatError):
        parse_decimal("1.55", max_places=1)


def test_exact_decimals_add_up_exactly() -> None:
    assert parse_amount("0.10") + parse_amount("0.20") == parse_amount("0.30")


def test_to_amount_normalises_to_two_places() -> None:
    assert str(to_amount(D("5"))) == "5.00"
    assert str(to_amount(D("5.1"))) == "5.10"
    assert str(ZERO) == "0.00"


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [(D("1.25"), 2, True), (D("1.250"), 2, True), (D("1.255"), 2, False), (D("100"), 0, True), (D("1E+2"), 0, True)],
)
def test_has_at_most_places(value: Decimal, places: int, expected: bool) -> None:
    assert has_at_most_places(value, places) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(D("1E+3"), "1000"), (D("1250.00"), "1250.00"), (D("-0.05"), "-0.05"), (D("1E-7"), "0.0000001")],
)
def test_the_wire_form_never_has_an_exponent(value: Decimal, expected: str) -> None:
    assert format_decimal(value) == expected
