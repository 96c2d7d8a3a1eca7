"""Column types for exact decimals on both engines.

PostgreSQL has a real NUMERIC. SQLite's NUMERIC affinity turns fractions into REAL (a float), so there the
value is stored as an integer count of the smallest unit (cents for money) in the same NUMERIC column:
integers are exact in SQLite, and SUM over them stays exact too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from domain.text import storable


class UnstorableValueError(ValueError):
    """A value neither engine should store reached a statement: text with NUL or a lone surrogate, or an amount
    past its NUMERIC column. The input checks above refuse these with the field named; this is the net
    below them, so both engines fail alike (and before the driver) should one slip through."""


def _check_parameter(value: object) -> None:
    if isinstance(value, str) and not (value.isascii() and "\x00" not in value) and not storable(value):
        raise UnstorableValueError("text with NUL or an unpaired surrogate cannot be stored")


def refuse_unstorable_parameters(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """`before_cursor_execute`: refuse the statement if any parameter is text that cannot be stored."""
    for params in parameters if executemany else (parameters,):
        for value in params.values() if isinstance(params, Mapping) else params or ():
            _check_parameter(value)


class ScaledDecimal(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)  # made once: every amount of every row is quantized to it

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if abs(Decimal(value)).adjusted() >= self.precision - self.scale:
            # PostgreSQL would refuse it (numeric field overflow); SQLite would keep it: refuse it on both.
            raise UnstorableValueError(f"{value} does not fit NUMERIC({self.precision},{self.scale})")
        if dialect.name == "sqlite":
            return int(Decimal(value).scaleb(self.scale))
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)
        return (value if type(value) is Decimal else Decimal(value)).quantize(self._quantum)


def Money() -> ScaledDecimal:
    return ScaledDecimal(15, 2)


def Quantity() -> ScaledDecimal:
    return ScaledDecimal(19, 4)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware on both engines: SQLite keeps no zone, so values are written and read as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one")
        return value.astimezone(UTC) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
