"""The scalars of the schema: exact decimals as strings on the wire (see domain.money for the rules), and
date-times described the way this API writes them."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

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

# strawberry's own DateTime (ISO 8601 out, parsed with dateutil in), with what this API adds: every stored time
# is UTC (persistence.types.UtcDateTime), and the inputs refuse a time without an offset (schema.queue).
DateTimeScalar = dataclasses.replace(
    DateTimeDefinition,
    description=(
        'ISO 8601 date-time with its UTC offset, e.g. "2026-03-01T12:30:45.123456+00:00". The API answers in UTC '
        "(fractional seconds left out when zero); an input must carry an offset (Z or +hh:mm)."
    ),
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {Decimal: DecimalScalar, datetime: DateTimeScalar}
