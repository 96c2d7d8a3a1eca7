"""Checks on what a client typed, before any decision: text that can be stored, text lengths, exact
amounts, line fields. Each check names the input field at fault, so a UI can point at it.

Every string a mutation takes passes `text` (free text, with the length of its column) or `identifier`
(ids): NUL and lone surrogates are refused here with VALIDATION_FAILED on the field, identically on both
engines, instead of failing in the driver (PostgreSQL refuses NUL; no UTF-8 encoder takes a lone surrogate).
The read side's string arguments (ids, cursors) go through `argument`, which raises a GraphQL error with the
same code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from graphql import GraphQLError

from domain.errors import DomainError, DomainErrors, ErrorCode, invalid, not_found
from domain.money import AMOUNT_PLACES, QUANTITY_PLACES, has_at_most_places, to_amount
from domain.text import unstorable

T = TypeVar("T")

# Lengths of the free-text inputs stored in TEXT columns (the others have their VARCHAR's length).
MAX_NOTES = 2000
MAX_REASON = 2000


def storable(value: str, field: Sequence[str]) -> str:
    """`value`, refused (VALIDATION_FAILED on `field`) if it holds NUL or a lone surrogate."""
    reason = unstorable(value)
    if reason is not None:
        raise invalid(reason, field)
    return value


def identifier(value: str, field: Sequence[str]) -> str:
    """An id a client sent. Only its text is checked here: an id that names nothing the viewer may see is
    NOT_FOUND where it is looked up."""
    return storable(value, field)


class ArgumentError(GraphQLError):
    """A read-side argument (an id, a cursor) that no stored value can match: a request error, shown as is,
    with the code a mutation's userError would carry."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(
            f"{name}: {message}", extensions={"code": ErrorCode.VALIDATION_FAILED.value, "field": [name]}
        )


def argument(value: str | None, name: str) -> str | None:
    """A query's or subscription's string argument, refused with ArgumentError if it cannot be stored."""
    if value is not None:
        reason = unstorable(value)
        if reason is not None:
            raise ArgumentError(name, reason)
    return value


def text(value: str | None, field: Sequence[str], *, max_len: int, required: bool = False) -> str | None:
    """Trimmed text, or None for blank; refused when it cannot be stored, when required and blank, or when
    longer than `max_len` (the length of its column)."""
    if value is not None:
        storable(value, field)
    cleaned = value.strip() if value is not None else None
    if required and not cleaned:
        raise invalid("must not be empty", field)
    if cleaned is not None and len(cleaned) > max_len:
        raise invalid(f"must be at most {max_len} characters", field)
    return cleaned or None


def required_text(value: str | None, field: Sequence[str], *, max_len: int) -> str:
    cleaned = text(value, field, max_len=max_len, required=True)
    assert cleaned is not None  # text() refuses blank required input
    return cleaned


def amount(value: Decimal | None, field: Sequence[str], *, positive: bool = False) -> Decimal:
    if value is None:
        raise invalid("an amount is required", field)
    if not has_at_most_places(value, AMOUNT_PLACES):
        raise invalid(f"amounts have at most {AMOUNT_PLACES} fraction digits", field)
    if positive and value <= 0:
        raise invalid("must be greater than 0", field)
    return to_amount(value)


def optional_amount(value: Decimal | None, field: Sequence[str]) -> Decimal | None:
    return None if value is None else amount(value, field)


def count(value: int | None, field: Sequence[str]) -> int | None:
    if value is not None and value < 0:
        raise invalid("must be 0 or more", field)
    return value


def quantity(value: Decimal | None, field: Sequence[str]) -> Decimal | None:
    if value is not None and not has_at_most_places(value, QUANTITY_PLACES):
        raise invalid(f"at most {QUANTITY_PLACES} fraction digits", field)
    return value


@dataclass(frozen=True)
class LineFields:
    """A line item as the client sent it."""

    cost_code_id: str
    cost_type_id: str
    sub_job: str | None
    description: str | None
    original_amount: Decimal
    quantity: Decimal | None = None
    unit_of_measure: str | None = None
    unit_cost: Decimal | None = None


@dataclass(frozen=True)
class ValidLine:
    """A line item that passed every input check (sub job '' for none)."""

    cost_code_id: str
    cost_type_id: str
    sub_job: str
    description: str | None
    original_amount: Decimal
    quantity: Decimal | None
    unit_of_measure: str | None
    unit_cost: Decimal | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.cost_code_id, self.cost_type_id, self.sub_job)


def valid_line(
    item: LineFields, path: Sequence[str], known_cost_codes: frozenset[str], known_cost_types: frozenset[str]
) -> ValidLine:
    """The checked line, or every reason it is invalid at once (DomainErrors)."""
    errors: list[DomainError] = []

    def check(fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except DomainError as exc:
            errors.append(exc)
            return None

    code_id = check(lambda: identifier(item.cost_code_id, [*path, "costCodeId"]))
    type_id = check(lambda: identifier(item.cost_type_id, [*path, "costTypeId"]))
    checked_amount = check(lambda: amount(item.original_amount, [*path, "originalAmount"]))
    checked_quantity = check(lambda: quantity(item.quantity, [*path, "quantity"]))
    unit_cost = check(lambda: quantity(item.unit_cost, [*path, "unitCost"]))
    sub_job = check(lambda: text(item.sub_job, [*path, "subJob"], max_len=60)) or ""
    description = check(lambda: text(item.description, [*path, "description"], max_len=500))
    uom = check(lambda: text(item.unit_of_measure, [*path, "unitOfMeasure"], max_len=20))
    if code_id is not None and code_id not in known_cost_codes:
        errors.append(not_found("cost code", [*path, "costCodeId"]))
    if type_id is not None and type_id not in known_cost_types:
        errors.append(not_found("cost type", [*path, "costTypeId"]))
    if errors or checked_amount is None:
        raise DomainErrors(errors)
    return ValidLine(
        cost_code_id=item.cost_code_id,
        cost_type_id=item.cost_type_id,
        sub_job=sub_job,
        description=description,
        original_amount=checked_amount,
        quantity=checked_quantity,
        unit_of_measure=uom,
        unit_cost=unit_cost,
    )
