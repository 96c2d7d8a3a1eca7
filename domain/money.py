"""Exact decimal amounts: parsing rules shared by the API and the CLI.

Money is never a float. Input is a string of digits (optionally signed, optionally with a fraction) or an
int; exponents, NaN/Infinity and floats are refused because each of them has let rounding errors into
ledgers elsewhere.
"""

from __future__ import annotations

import re
from decimal import Decimal

MAX_INTEGER_DIGITS = 13
AMOUNT_PLACES = 2
QUANTITY_PLACES = 4
ZERO = Decimal("0.00")
# The largest amount a NUMERIC(15,2) column holds (13 integer digits): every stored amount and every total a
# budget or a request shows stays within +-MAX_AMOUNT.
MAX_AMOUNT = Decimal("9999999999999.99")

_PLAIN_DECIMAL = re.compile(r"^[+-]?([0-9]+)(?:\.([0-9]+))?$")


class DecimalFormatError(ValueError):
    """The text is not an exact decimal we accept; the message says why, in words a user can act on."""


def parse_decimal(value: object, *, max_places: int = QUANTITY_PLACES) -> Decimal:
    if isinstance(value, (bool, float)):
        raise DecimalFormatError('must be a string such as "1250.00" or an integer, not a float')
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise DecimalFormatError('must be a string such as "1250.00" or an integer')
    match = _PLAIN_DECIMAL.match(text)
    if match is None:
        raise DecimalFormatError(
            f"{value!r} is not a plain decimal: use digits with an optional sign and decimal point, "
            "no exponent, NaN or Infinity"
        )
    integer_digits, fraction = match.group(1), match.group(2) or ""
    if len(integer_digits.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise DecimalFormatError(f"{value!r} has more than {MAX_INTEGER_DIGITS} integer digits")
    if len(fraction.rstrip("0")) > max_places:
        raise DecimalFormatError(f"{value!r} has more than {max_places} fraction digits")
    value = Decimal(text)
    return value.copy_abs() if value.is_zero() else value  # "-0" is zero, never "-0.00" on the wire


def parse_amount(value: object) -> Decimal:
    return to_amount(parse_decimal(value, max_places=AMOUNT_PLACES))


def to_amount(value: Decimal) -> Decimal:
    """Normalise to exactly two places (a value that already has at most two)."""
    return value.quantize(Decimal(1).scaleb(-AMOUNT_PLACES))


def has_at_most_places(value: Decimal, places: int) -> bool:
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and -exponent <= places


def amount_in_range(value: Decimal) -> bool:
    """Whether `value` fits 13 integer digits (and so every amount column and every total)."""
    return -MAX_AMOUNT <= value <= MAX_AMOUNT


def format_decimal(value: Decimal) -> str:
    """The wire form: plain digits, never an exponent."""
    return f"{value:f}"


# How an amount reads in a message (emails, chat): the currency's usual sign before the number, or the ISO code
# after it where there is no sign every reader knows. Display only: never parsed back.
_SIGNS = {"USD": "$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "GBP": "£", "EUR": "€"}


def format_money(amount: Decimal, currency: str) -> str:
    """`$1,238,950.00`, `-£12.50`, `1,238,950.00 CHF`: grouped thousands, always two places, exact."""
    code = currency.strip().upper()
    number = f"{to_amount(amount).copy_abs():,.2f}"
    sign = "-" if amount < 0 and not to_amount(amount).is_zero() else ""
    symbol = _SIGNS.get(code)
    if symbol is not None:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code}" if code else f"{sign}{number}"
