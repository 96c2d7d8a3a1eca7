"""Frozen read models: what every repository and read query returns instead of database rows.

One record per table (plus the joined shapes the reads need). They are plain, immutable values, so the
layers above never touch SQLAlchemy, a fake unit of work can hand out the very same types, and a GraphQL
type built from one cannot change under a resolver. Field names are the column names, so a record is built
from a row with `Record.of(row)` (`slots=True` keeps them small and quick to build: a page of 1,000 lines
is 1,000 records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, Self

Take = Callable[[Any], tuple[Any, ...]]


def _getter(keys: list[Any]) -> Take:
    if len(keys) == 1:  # itemgetter of one key answers the value, not a 1-tuple
        return lambda source: (source[keys[0]],)
    return itemgetter(*keys)


@cache
def _by_name(cls: type[Any]) -> Take:
    """The record's fields taken from a mapping, in field order, in one C call."""
    return _getter([f.name for f in fields(cls)])


@lru_cache(maxsize=1024)
def _by_position(cls: type[Any], keys: tuple[str, ...]) -> Take | None:
    """The same from a row of these column names, by position: a row's values by index cost far less than
    by name (a page is 1,000 rows). None when a name is missing or repeated: the mapping decides then."""
    names = [f.name for f in fields(cls)]
    if any(keys.count(name) != 1 for name in names):
        return None
    return _getter([keys.index(name) for name in names])


class Record:
    """`Record.of(row)` takes the columns the record names from a row (or any mapping) and ignores others."""

    __slots__ = ()

    @classmethod
    def of(cls, row: Any) -> Self:
        keys = getattr(row, "_fields", None)  # a SQLAlchemy Row: a tuple with its column names
        take = None if keys is None else _by_position(cls, keys)  # type: ignore[arg-type]  # classes hash
        if take is not None:
            return cls(*take(row))
        mapping: Mapping[str, Any] = row._mapping if hasattr(row, "_mapping") else row
        return cls(*_by_name(cls)(mapping))  # type: ignore[arg-type]  # classes are hashable


@dataclass(frozen=True, slots=True)
class CompanyRecord(Record):
    id: str
    name: str
    currency: str
    erp_connector: str | None
    erp_settings: dict[str, Any]
    event_sequence: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserRecord(Record):
    id: str
    company_id: str
    email: str
    name: str
    is_company_admin: bool
    is_accounting_approver: bool
    erp_permission: str
    created_at: datetime
    disabled_at: datetime | None = None
    tokens_valid_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProjectAccessRecord(Record):
    """A user's Budget tool permission on one project (`project_permissions`)."""

    user_id: str
    project_id: str
    budget_permission: str
    grants: list[str]


@dataclass(frozen=True, slots=True)
class UserGrantRecord(Record):
    """A user's Budget tool permission on one project, with the project's number and name (`user show`)."""

    project_id: str
    project_number: str
    project_name: str
    budget_permission: str
    grants: list[str]


@dataclass(frozen=True, slots=True)
class ProjectRecord(Record):
    id: str
    company_id: str
    name: str
    number: str
    erp_job_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CostCodeRecord(Record):
    id: str
    company_id: str
    code: str
    description: str
    erp_synced: bool


@dataclass(frozen=True, slots=True)
class CostTypeRecord(Record):
    id: str
    company_id: str
    code: str
    name: str
    erp_synced: bool


@dataclass(frozen=True, slots=True)
class BudgetRecord(Record):
    id: str
    company_id: str
    project_id: str
    locked: bool
    locked_at: datetime | None
    locked_by_id: str | None
    version: int
    export_status: str
    last_request_id: str | None
    request_count: int


@dataclass(frozen=True, slots=True)
class LineItemRecord(Record):
    """A line with its cost code and cost type, which every read of a line carries (one statement)."""

    id: str
    company_id: str
    budget_id: str
    cost_code_id: str
    cost_type_id: str
    sub_job: str  # '' for none (a unique key must treat "no sub job" as one value)
    description: str | None
    original_amount: Decimal
    modifications_amount: Decimal
    quantity: Decimal | None
    unit_of_measure: str | None
    unit_cost: Decimal | None
    position: int
    created_at: datetime
    cost_code: str
    cost_code_description: str
    cost_code_synced: bool
    cost_type: str
    cost_type_name: str
    cost_type_synced: bool


@dataclass(frozen=True, slots=True)
class ModificationRecord(Record):
    id: str
    company_id: str
    budget_id: str
    number: int
    from_line_item_id: str | None
    to_line_item_id: str | None
    amount: Decimal
    notes: str | None
    created_at: datetime
    created_by_id: str


@dataclass(frozen=True, slots=True)
class ErpRequestRecord(Record):
    id: str
    company_id: str
    budget_id: str
    project_id: str
    sequence: int
    kind: str
    status: str
    sent_at: datetime
    sent_by_id: str
    decided_at: datetime | None
    decided_by_id: str | None
    rejection_reason: str | None
    retrieved_at: datetime | None
    retrieved_by_id: str | None
    exported_at: datetime | None
    posted_at: datetime | None
    erp_reference: str | None
    failure_message: str | None
    export_attempts: int
    export_id: str
    # The sum of its lines' original budget, written with it (what the queue orders by).
    total_original_budget: Decimal


@dataclass(frozen=True, slots=True)
class RequestLineRecord(Record):
    """One line of what a request exports, frozen at send time."""

    request_id: str
    position: int
    line_item_id: str
    cost_code: str
    cost_type: str
    sub_job: str | None
    description: str | None
    original_budget: Decimal
    budget_changes: Decimal
    revised_estimate: Decimal
    is_new_line: bool


@dataclass(frozen=True, slots=True)
class ExportEntryRecord(Record):
    """An export entry with the status of the request that carries it."""

    id: str
    request_id: str
    budget_id: str
    line_item_id: str
    kind: str
    source_id: str
    amount: Decimal
    request_status: str


@dataclass(frozen=True, slots=True)
class RequestEntryRecord(Record):
    """An export entry of a request with its line's cost code, cost type, sub job and quantity (as exported:
    a budget stays locked, its lines read-only, from the send until the export is posted)."""

    id: str
    request_id: str
    line_item_id: str
    kind: str
    source_id: str
    amount: Decimal
    cost_code: str
    cost_type: str
    sub_job: str  # '' for none
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class EventRecord(Record):
    id: int
    company_id: str
    sequence: int
    occurred_at: datetime
    type: str
    actor_id: str | None
    project_id: str
    budget_id: str
    erp_request_id: str | None
    previous_status: str | None
    status: str
    reason: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportJobRecord(Record):
    id: str
    company_id: str
    request_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetTotalsRecord(Record):
    budget_id: str
    line_count: int
    original_total: Decimal
    modifications_total: Decimal


@dataclass(frozen=True, slots=True)
class StoredResultRecord(Record):
    """The first result of an idempotent mutation, replayed for a retry with the same key."""

    input_hash: str
    result: dict[str, Any]
