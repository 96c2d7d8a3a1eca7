"""The Decimal scalar: exact decimals as strings on the wire (see domain.money for the rules)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from domain.money import DecimalFormatError, format_decimal, parse_decimal


def _parse(value: object) -> Decimal:
    try:
        return parse_decimal(value)
    except DecimalFormatError as exc:
        raise DecimalInputError(str(exc)) from None


class DecimalInputError(ValueError):
    """Shown to the client as is: it names the bad input and how to fix it."""


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description=(
        'Exact decimal as a string, e.g. "1250.00". Input: string or Int. Floats, exponents, NaN/Infinity, '
        "more than 2 fraction digits (amounts) or more than 13 integer digits are rejected."
    ),
    serialize=lambda value: format_decimal(value),
    parse_value=_parse,
)

SCALAR_OVERRIDES = {Decimal: DecimalScalar}
