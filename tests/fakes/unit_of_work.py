"""An in-memory unit of work that behaves like the SQL one, so the service layer is tested without a database.

`FakeStore` is the committed state: one dict of records per table. A `FakeUnitOfWork` works on a copy of it
taken at `_begin` and swaps the copy in at `_commit`, so an exception (or no commit) changes nothing, exactly
like a rollback. Units of work of one store run one at a time, like SQLite's writers (`Database._write_lock`);
opening a second one inside the first in the same task raises instead of hanging, as it would on SQLite.

The database's rules are kept where the service layer could notice them:
- lookups that take a company id find nothing of another company;
- `budgets.save` is a compare-and-set on `before.version`;
- unique keys, primary keys, foreign keys (a row cannot name a missing row, a referenced row cannot be
  deleted) and the modification amount check: a violation raises `ConcurrentChangeError`, as the SQL unit of
  work turns every IntegrityError into one;
- money is kept to 2 places and quantities to 4, timestamps in UTC, JSON values as JSON round-trips them;
- text longer than its column raises ValueTooLongError, as PostgreSQL does (SQLite would keep it);
- text with NUL or a lone surrogate, and an amount past NUMERIC(15,2), raise UnstorableValueError, as the SQL
  unit of work's net below the input checks does on both engines;
- a budget locked after the company's event counter raises LockOrderError (the abstract unit of work's check);
- lines carry their cost code / type, export entries their request's status; orders as the SQL queries.
tests/persistence/test_repository_contract.py runs the same behaviour tests on this and on both engines.

`FakeStore.before(operation, hook)` runs a hook once, inside the next call of a repository method (say
"budgets.save"), to play a concurrent writer that commits between a read and a write.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import String

from domain.budget import BudgetState, BudgetTotals, LineKey
from domain.errors import ConcurrentChangeError, VersionConflictError
from domain.events import BudgetEvent
from domain.money import ZERO
from domain.permissions import NO_ACCESS, Grant, PermissionLevel, ProjectAccess
from domain.status import ExportStatus
from domain.text import storable
from persistence.ids import new_id
from persistence.notification_records import ChatWebhookRecord, NotificationRecord, RecipientRecord
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    EventRecord,
    ExportEntryRecord,
    ExportJobRecord,
    LineItemRecord,
    ModificationRecord,
    ProjectAccessRecord,
    ProjectRecord,
    RequestLineRecord,
    StoredResultRecord,
    UserRecord,
)
from persistence.tables import metadata
from persistence.types import UnstorableValueError
from persistence.unit_of_work import (
    AWAITING_CALLBACK,
    DONE,
    LINE_UPDATABLE,
    QUEUED,
    RUNNING,
    AbstractUnitOfWork,
    AccessRepository,
    BudgetRepository,
    ClaimedJob,
    CompanyRepository,
    CostCodeRepository,
    CostTypeRepository,
    ErpRequestRepository,
    EventLog,
    ExportEntryRepository,
    IdempotencyStore,
    JobQueue,
    LineItemRepository,
    ModificationRepository,
    NewExportEntry,
    NewLineItem,
    NewNotification,
    NotificationContext,
    NotificationOutbox,
    OutboxStatus,
    ProjectRepository,
    UnitOfWorkFactory,
    UserRepository,
)

T = TypeVar("T")

# --- rows the records do not model one to one --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineRow:
    """A row of `budget_line_items` (a LineItemRecord is this joined with its cost code and type)."""

    id: str
    company_id: str
    budget_id: str
    cost_code_id: str
    cost_type_id: str
    sub_job: str
    description: str | None
    original_amount: Decimal
    modifications_amount: Decimal
    quantity: Decimal | None
    unit_of_measure: str | None
    unit_cost: Decimal | None
    position: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PreferenceRow:
    user_id: str
    kind: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    user_id: str
    operation: str
    key: str
    input_hash: str
    result: dict[str, Any]
    created_at: datetime


# --- the schema's rules ---------------------------------------------------------------------------------

TABLES = (
    "companies",
    "users",
    "access",
    "projects",
    "cost_codes",
    "cost_types",
    "budgets",
    "line_items",
    "modifications",
    "requests",
    "request_lines",
    "entries",
    "events",
    "idempotency",
    "jobs",
    "notifications",
    "notification_preferences",
    "chat_webhooks",
)

UNIQUE: dict[str, tuple[tuple[str, ...], ...]] = {
    "users": (("company_id", "email"),),
    "projects": (("company_id", "number"),),
    "cost_codes": (("company_id", "code"),),
    "cost_types": (("company_id", "code"),),
    "budgets": (("project_id",),),
    "line_items": (("budget_id", "cost_code_id", "cost_type_id", "sub_job"),),
    "modifications": (("budget_id", "number"),),
    "requests": (("export_id",), ("budget_id", "sequence")),
    "events": (("company_id", "sequence"),),
    "notifications": (("dedupe_key",),),
}

FOREIGN: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (("company_id", "companies"),),
    "access": (("user_id", "users"), ("project_id", "projects")),
    "projects": (("company_id", "companies"),),
    "cost_codes": (("company_id", "companies"),),
    "cost_types": (("company_id", "companies"),),
    "budgets": (("company_id", "companies"), ("project_id", "projects"), ("locked_by_id", "users")),
    "line_items": (
        ("company_id", "companies"),
        ("budget_id", "budgets"),
        ("cost_code_id", "cost_codes"),
        ("cost_type_id", "cost_types"),
    ),
    "modifications": (
        ("company_id", "companies"),
        ("budget_id", "budgets"),
        ("from_line_item_id", "line_items"),
        ("to_line_item_id", "line_items"),
        ("created_by_id", "users"),
    ),
    "requests": (
        ("company_id", "companies"),
        ("budget_id", "budgets"),
        ("project_id", "projects"),
        ("sent_by_id", "users"),
        ("decided_by_id", "users"),
        ("retrieved_by_id", "users"),
    ),
    "request_lines": (("request_id", "requests"), ("line_item_id", "line_items")),
    "entries": (("request_id", "requests"), ("budget_id", "budgets"), ("line_item_id", "line_items")),
    "events": (
        ("company_id", "companies"),
        ("actor_id", "users"),
        ("project_id", "projects"),
        ("budget_id", "budgets"),
        ("erp_request_id", "requests"),
    ),
    "idempotency": (("user_id", "users"),),
    "jobs": (("company_id", "companies"), ("request_id", "requests")),
    "notifications": (("company_id", "companies"), ("recipient_id", "users"), ("erp_request_id", "requests")),
    "notification_preferences": (("user_id", "users"),),
    "chat_webhooks": (("company_id", "companies"),),
}

MONEY_COLUMNS = frozenset(
    {"original_amount", "modifications_amount", "amount", "original_budget", "budget_changes", "revised_estimate"}
)
QUANTITY_COLUMNS = frozenset({"quantity", "unit_cost"})
CENT, TEN_THOUSANDTH = Decimal("0.01"), Decimal("0.0001")


# The tables of persistence.tables behind the fake's, for the lengths of their text columns.
SQL_TABLES = {
    "companies": "companies",
    "users": "users",
    "access": "project_permissions",
    "projects": "projects",
    "cost_codes": "cost_codes",
    "cost_types": "cost_types",
    "budgets": "budgets",
    "line_items": "budget_line_items",
    "modifications": "budget_modifications",
    "requests": "erp_requests",
    "request_lines": "erp_request_lines",
    "entries": "export_entries",
    "events": "events",
    "idempotency": "idempotency_keys",
    "jobs": "export_jobs",
    "notifications": "notification_outbox",
    "notification_preferences": "notification_preferences",
    "chat_webhooks": "chat_webhooks",
}
MAX_LENGTHS: dict[str, dict[str, int]] = {
    name: {
        column.name: column.type.length
        for column in metadata.tables[sql_name].columns
        if isinstance(column.type, String) and column.type.length is not None
    }
    for name, sql_name in SQL_TABLES.items()
}


class ValueTooLongError(ValueError):
    """What PostgreSQL raises (a DataError, not an IntegrityError: no ConcurrentChangeError) for text longer
    than its VARCHAR column. SQLite would store it; the fake keeps to the stricter engine."""


def _violation(what: str) -> ConcurrentChangeError:
    error = ConcurrentChangeError()
    error.add_note(f"fake database: {what}")
    return error


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one")
    return value.astimezone(UTC)


def _json(value: T) -> T:
    """What a JSON column gives back: a fresh copy, and a TypeError for what JSON cannot hold."""
    result: T = json.loads(json.dumps(value))
    return result


R = TypeVar("R")


def _stored(record: R) -> R:
    """The record as the database would store and give it back: amounts quantized, timestamps in UTC."""
    changes: dict[str, Any] = {}
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            changes[f.name] = _utc(value)
        elif isinstance(value, Decimal | int) and not isinstance(value, bool) and f.name in MONEY_COLUMNS:
            changes[f.name] = Decimal(value).quantize(CENT)
        elif isinstance(value, Decimal | int) and not isinstance(value, bool) and f.name in QUANTITY_COLUMNS:
            changes[f.name] = Decimal(value).quantize(TEN_THOUSANDTH)
    return replace(record, **changes) if changes else record  # type: ignore[type-var]


@dataclass
class FakeState:
    """Every table as a dict keyed like its primary key. Records are frozen, so a shallow copy is a snapshot."""

    companies: dict[str, CompanyRecord] = field(default_factory=dict)
    users: dict[str, UserRecord] = field(default_factory=dict)
    access: dict[tuple[str, str], ProjectAccessRecord] = field(default_factory=dict)
    projects: dict[str, ProjectRecord] = field(default_factory=dict)
    cost_codes: dict[str, CostCodeRecord] = field(default_factory=dict)
    cost_types: dict[str, CostTypeRecord] = field(default_factory=dict)
    budgets: dict[str, BudgetRecord] = field(default_factory=dict)
    line_items: dict[str, LineRow] = field(default_factory=dict)
    modifications: dict[str, ModificationRecord] = field(default_factory=dict)
    requests: dict[str, ErpRequestRecord] = field(default_factory=dict)
    request_lines: dict[tuple[str, int], RequestLineRecord] = field(default_factory=dict)
    entries: dict[str, NewExportEntry] = field(default_factory=dict)
    events: dict[int, EventRecord] = field(default_factory=dict)
    idempotency: dict[tuple[str, str, str], IdempotencyRow] = field(default_factory=dict)
    jobs: dict[str, ExportJobRecord] = field(default_factory=dict)
    notifications: dict[str, NotificationRecord] = field(default_factory=dict)
    notification_preferences: dict[tuple[str, str], PreferenceRow] = field(default_factory=dict)
    chat_webhooks: dict[str, ChatWebhookRecord] = field(default_factory=dict)
    last_event_id: int = 0  # the events table's autoincrement

    def copy(self) -> FakeState:
        tables: dict[str, Any] = {name: dict(getattr(self, name)) for name in TABLES}
        return FakeState(**tables, last_event_id=self.last_event_id)

    def table(self, name: str) -> dict[Any, Any]:
        table: dict[Any, Any] = getattr(self, name)
        return table

    # --- writes that keep the schema's rules -----------------------------------------------------------

    def insert(self, name: str, rows: Iterable[tuple[Any, Any]]) -> None:
        """Insert (key, record) pairs as one statement: all or none."""
        table = self.table(name)
        uniques = UNIQUE.get(name, ())
        taken = [{_values(r, cols) for r in table.values()} for cols in uniques]
        batch: dict[Any, Any] = {}
        for key, record in rows:
            if key in table or key in batch:
                raise _violation(f"duplicate primary key {key!r} in {name}")
            for cols, seen in zip(uniques, taken, strict=True):
                values = _values(record, cols)
                if values is not None and values in seen:
                    raise _violation(f"duplicate {cols} {values!r} in {name}")
                seen.add(values)
            self._check_references(name, record)
            _check_constraints(name, record)
            batch[key] = record
        table.update(batch)

    def update(self, name: str, key: Any, record: Any) -> None:
        table = self.table(name)
        old = table[key]
        changed = {f.name for f in fields(record) if getattr(old, f.name) != getattr(record, f.name)}
        for cols in UNIQUE.get(name, ()):
            values = _values(record, cols)
            if (
                changed & set(cols)
                and values is not None
                and any(k != key and _values(other, cols) == values for k, other in table.items())
            ):
                raise _violation(f"duplicate {cols} {values!r} in {name}")
        self._check_references(name, record, changed)
        _check_constraints(name, record)
        table[key] = record

    def delete(self, name: str, key: Any) -> None:
        for referencing, foreign in FOREIGN.items():
            for column, target in foreign:
                if target == name and any(getattr(r, column) == key for r in self.table(referencing).values()):
                    raise _violation(f"{referencing}.{column} still references {name} {key!r}")
        del self.table(name)[key]

    def _check_references(self, name: str, record: Any, only: set[str] | None = None) -> None:
        for column, target in FOREIGN.get(name, ()):
            value = getattr(record, column)
            if (only is None or column in only) and value is not None and value not in self.table(target):
                raise _violation(f"{name}.{column} names a missing {target} row {value!r}")


def _values(record: Any, columns: tuple[str, ...]) -> tuple[Any, ...] | None:
    values = tuple(getattr(record, c) for c in columns)
    return None if any(v is None for v in values) else values  # NULLs never collide in a unique key


def _check_constraints(name: str, record: Any) -> None:
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, str) and not storable(value):
            raise UnstorableValueError(f"{name}.{f.name}: text with NUL or an unpaired surrogate")
        if f.name in MONEY_COLUMNS and isinstance(value, Decimal) and abs(value).adjusted() >= 13:
            raise UnstorableValueError(f"{name}.{f.name}: {value} does not fit NUMERIC(15,2)")
    for column, length in MAX_LENGTHS[name].items():
        value = getattr(record, column, None)
        if isinstance(value, str) and len(value) > length:
            raise ValueTooLongError(f"value too long for {SQL_TABLES[name]}.{column} (varchar({length}))")
    if name == "modifications" and not record.amount > 0:
        raise _violation("check constraint amount_positive")


# --- the repositories -------------------------------------------------------------------------------


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _state(self, operation: str) -> FakeState:
        return self._uow.state_for(operation)


class FakeCompanies(_Repo, CompanyRepository):
    async def get(self, company_id: str) -> CompanyRecord | None:
        found = self._state("companies.get").companies.get(company_id)
        return replace(found, erp_settings=_json(found.erp_settings)) if found else None

    async def add(self, company: CompanyRecord) -> None:
        stored = replace(_stored(company), erp_settings=_json(company.erp_settings))
        self._state("companies.add").insert("companies", [(company.id, stored)])

    async def set_erp(self, company_id: str, connector: str | None, options: Mapping[str, Any]) -> None:
        s = self._state("companies.set_erp")
        if company_id in s.companies:
            changed = replace(s.companies[company_id], erp_connector=connector, erp_settings=_json(dict(options)))
            s.update("companies", company_id, changed)

    async def touch(self, company_id: str) -> None:
        self._state("companies.touch")  # the fake keeps no revision: nothing reads it without a database


class FakeUsers(_Repo, UserRepository):
    async def get(self, user_id: str) -> UserRecord | None:
        return self._state("users.get").users.get(user_id)

    async def email_taken(self, company_id: str, email: str) -> bool:
        s = self._state("users.email_taken")
        return any(u.company_id == company_id and u.email == email for u in s.users.values())

    async def add(self, user: UserRecord) -> None:
        self._state("users.add").insert("users", [(user.id, _stored(user))])


def _access(state: FakeState, user_id: str, project_id: str) -> ProjectAccess:
    found = state.access.get((user_id, project_id))
    if found is None:
        return NO_ACCESS
    return ProjectAccess(PermissionLevel[found.budget_permission], frozenset(Grant(g) for g in found.grants))


class FakeAccess(_Repo, AccessRepository):
    async def of(self, user_id: str, project_id: str) -> ProjectAccess:
        return _access(self._state("access.of"), user_id, project_id)

    async def grant(self, user_id: str, project_id: str, access: ProjectAccess) -> None:
        record = ProjectAccessRecord(
            user_id=user_id,
            project_id=project_id,
            budget_permission=access.budget_permission.name,
            grants=sorted(g.value for g in access.grants),
        )
        self._state("access.grant").insert("access", [((user_id, project_id), record)])

    async def revoke(self, user_id: str, project_id: str) -> None:
        s = self._state("access.revoke")
        if (user_id, project_id) in s.access:
            s.delete("access", (user_id, project_id))


class FakeProjects(_Repo, ProjectRepository):
    async def get(self, company_id: str, project_id: str) -> ProjectRecord | None:
        found = self._state("projects.get").projects.get(project_id)
        return found if found is not None and found.company_id == company_id else None

    async def number_taken(self, company_id: str, number: str) -> bool:
        s = self._state("projects.number_taken")
        return any(p.company_id == company_id and p.number == number for p in s.projects.values())

    async def add(self, project: ProjectRecord) -> None:
        self._state("projects.add").insert("projects", [(project.id, _stored(project))])

    async def set_erp_job(self, project_id: str, erp_job_id: str) -> None:
        s = self._state("projects.set_erp_job")
        if project_id in s.projects:
            s.update("projects", project_id, replace(s.projects[project_id], erp_job_id=erp_job_id))


class _FakeCostList(_Repo):
    table: str

    def _get_many(self, company_id: str, ids: Sequence[str]) -> list[Any]:
        rows = self._state(f"{self.table}.get_many").table(self.table)
        found = (rows.get(i) for i in dict.fromkeys(ids))
        return [r for r in found if r is not None and r.company_id == company_id]

    async def code_taken(self, company_id: str, code: str) -> bool:
        rows = self._state(f"{self.table}.code_taken").table(self.table)
        return any(r.company_id == company_id and r.code == code for r in rows.values())

    def _add(self, record: Any) -> None:
        self._state(f"{self.table}.add").insert(self.table, [(record.id, record)])

    async def mark_synced(self, ids: Sequence[str]) -> None:
        s = self._state(f"{self.table}.mark_synced")
        rows = s.table(self.table)
        for i in dict.fromkeys(ids):
            if i in rows:
                s.update(self.table, i, replace(rows[i], erp_synced=True))


class FakeCostCodes(_FakeCostList, CostCodeRepository):
    table = "cost_codes"

    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostCodeRecord]:
        return self._get_many(company_id, ids)

    async def add(self, cost_code: CostCodeRecord) -> None:
        self._add(cost_code)


class FakeCostTypes(_FakeCostList, CostTypeRepository):
    table = "cost_types"

    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostTypeRecord]:
        return self._get_many(company_id, ids)

    async def add(self, cost_type: CostTypeRecord) -> None:
        self._add(cost_type)


class FakeBudgets(_Repo, BudgetRepository):
    async def _get_for_update(self, company_id: str | None, budget_id: str) -> BudgetRecord | None:
        found = self._state("budgets.get_for_update").budgets.get(budget_id)
        if found is None or (company_id is not None and found.company_id != company_id):
            return None
        return found

    async def _get_for_change(
        self, company_id: str, user_id: str, *, budget_id: str | None = None, line_id: str | None = None
    ) -> tuple[BudgetRecord, ProjectAccess] | None:
        s = self._state("budgets.get_for_update")
        if line_id is not None:
            line = s.line_items.get(line_id)
            budget_id = line.budget_id if line is not None and line.company_id == company_id else None
        found = s.budgets.get(budget_id) if budget_id is not None else None
        if found is None or found.company_id != company_id:
            return None
        return found, _access(s, user_id, found.project_id)

    async def of_project(self, company_id: str, project_id: str) -> BudgetRecord | None:
        s = self._state("budgets.of_project")
        return next((b for b in s.budgets.values() if b.company_id == company_id and b.project_id == project_id), None)

    async def add(self, budget: BudgetRecord) -> None:
        self._state("budgets.add").insert("budgets", [(budget.id, _stored(budget))])

    async def save(self, before: BudgetRecord, after: BudgetState) -> BudgetRecord:
        s = self._state("budgets.save")
        stored = s.budgets.get(before.id)
        if stored is None or stored.version != before.version:
            raise VersionConflictError(actual=None)
        saved = _stored(
            replace(
                stored,
                locked=after.locked,
                locked_at=after.locked_at,
                locked_by_id=after.locked_by_id,
                version=before.version + 1,
                export_status=after.export_status.value,
                last_request_id=after.last_request_id,
                request_count=after.request_count,
            )
        )
        s.update("budgets", before.id, saved)
        # As the SQL repository: the caller's record with the written values.
        return replace(
            before,
            **{name: getattr(saved, name) for name in ("locked", "locked_at", "locked_by_id", "version")},
            **{name: getattr(saved, name) for name in ("export_status", "last_request_id", "request_count")},
        )


def line_record(state: FakeState, row: LineRow) -> LineItemRecord | None:
    """The line joined with its cost code and type (an inner join: None when either is missing)."""
    code, kind = state.cost_codes.get(row.cost_code_id), state.cost_types.get(row.cost_type_id)
    if code is None or kind is None:
        return None
    return LineItemRecord(
        **{f.name: getattr(row, f.name) for f in fields(row)},
        cost_code=code.code,
        cost_code_description=code.description,
        cost_code_synced=code.erp_synced,
        cost_type=kind.code,
        cost_type_name=kind.name,
        cost_type_synced=kind.erp_synced,
    )


class FakeLineItems(_Repo, LineItemRepository):
    async def get(self, company_id: str, line_id: str) -> LineItemRecord | None:
        s = self._state("line_items.get")
        row = s.line_items.get(line_id)
        return line_record(s, row) if row is not None and row.company_id == company_id else None

    async def get_with_totals(self, company_id: str, line_id: str) -> tuple[LineItemRecord, BudgetTotals] | None:
        line = await self.get(company_id, line_id)
        return (line, await self.totals(line.budget_id)) if line is not None else None

    async def of_budget(self, budget_id: str) -> list[LineItemRecord]:
        s = self._state("line_items.of_budget")
        rows = sorted((r for r in s.line_items.values() if r.budget_id == budget_id), key=lambda r: r.position)
        return [rec for rec in (line_record(s, r) for r in rows) if rec is not None]

    async def keys_of_budget(self, budget_id: str) -> dict[LineKey, str]:
        s = self._state("line_items.keys_of_budget")
        return {
            (r.cost_code_id, r.cost_type_id, r.sub_job): r.id for r in s.line_items.values() if r.budget_id == budget_id
        }

    async def next_position(self, budget_id: str) -> int:
        s = self._state("line_items.next_position")
        return max((r.position for r in s.line_items.values() if r.budget_id == budget_id), default=0) + 1

    async def add_many(self, lines: Sequence[NewLineItem]) -> None:
        rows = [(line.id, _stored(LineRow(**asdict(line), modifications_amount=Decimal("0.00")))) for line in lines]
        self._state("line_items.add_many").insert("line_items", rows)

    async def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        s = self._state("line_items.update_many")
        for values in changes.values():
            unknown = set(values) - set(LINE_UPDATABLE)
            if unknown:
                raise ValueError(f"not updatable: {sorted(unknown)}")
        for line_id, values in changes.items():
            if values and line_id in s.line_items:
                s.update("line_items", line_id, _stored(replace(s.line_items[line_id], **values)))

    async def update(self, line: LineItemRecord, values: Mapping[str, Any]) -> LineItemRecord:
        await self.update_many({line.id: values})
        s = self._state("line_items.update")
        found = line_record(s, s.line_items[line.id])
        assert found is not None  # its cost code and type were there when it was read, and stay
        return replace(line, **{name: getattr(found, name) for name in values})

    async def delete(self, line_id: str) -> None:
        s = self._state("line_items.delete")
        if line_id in s.line_items:
            s.delete("line_items", line_id)

    async def add_to_modifications(self, line_id: str, delta: Decimal) -> None:
        s = self._state("line_items.add_to_modifications")
        row = s.line_items.get(line_id)
        if row is not None:
            s.update(
                "line_items", line_id, _stored(replace(row, modifications_amount=row.modifications_amount + delta))
            )

    async def totals(self, budget_id: str) -> BudgetTotals:
        rows = [r for r in self._state("line_items.totals").line_items.values() if r.budget_id == budget_id]
        return BudgetTotals(
            sum((r.original_amount for r in rows), ZERO), sum((r.modifications_amount for r in rows), ZERO)
        )


class FakeModifications(_Repo, ModificationRepository):
    async def of_budget(self, budget_id: str) -> list[ModificationRecord]:
        s = self._state("modifications.of_budget")
        return sorted((m for m in s.modifications.values() if m.budget_id == budget_id), key=lambda m: m.number)

    async def touching(self, line_ids: Sequence[str]) -> list[ModificationRecord]:
        s, wanted = self._state("modifications.touching"), set(line_ids)
        return [m for m in s.modifications.values() if {m.from_line_item_id, m.to_line_item_id} & wanted]

    async def next_number(self, budget_id: str) -> int:
        s = self._state("modifications.next_number")
        return max((m.number for m in s.modifications.values() if m.budget_id == budget_id), default=0) + 1

    async def add(self, modification: ModificationRecord) -> None:
        self._state("modifications.add").insert("modifications", [(modification.id, _stored(modification))])


class FakeErpRequests(_Repo, ErpRequestRepository):
    async def get(self, company_id: str | None, request_id: str) -> ErpRequestRecord | None:
        found = self._state("requests.get").requests.get(request_id)
        if found is None or (company_id is not None and found.company_id != company_id):
            return None
        return found

    async def by_export_id(self, export_id: str) -> ErpRequestRecord | None:
        s = self._state("requests.by_export_id")
        return next((r for r in s.requests.values() if r.export_id == export_id), None)

    async def add(self, request: ErpRequestRecord, lines: Sequence[RequestLineRecord]) -> None:
        s = self._state("requests.add")
        s.insert("requests", [(request.id, _stored(request))])
        s.insert("request_lines", [((line.request_id, line.position), _stored(line)) for line in lines])

    async def update(self, request_id: str, **values: Any) -> None:
        s = self._state("requests.update")
        found = s.requests.get(request_id)
        names = {f.name for f in fields(ErpRequestRecord)}
        if set(values) - names:
            raise ValueError(f"erp_requests has no columns {sorted(set(values) - names)}")
        if found is not None:
            s.update("requests", request_id, _stored(replace(found, **values)))


def entry_record(state: FakeState, entry: NewExportEntry) -> ExportEntryRecord | None:
    request = state.requests.get(entry.request_id)
    if request is None:
        return None
    return ExportEntryRecord(**asdict(entry), request_status=request.status)


class FakeExportEntries(_Repo, ExportEntryRepository):
    def _records(self, state: FakeState, keep: Callable[[NewExportEntry], bool]) -> list[ExportEntryRecord]:
        found = (entry_record(state, e) for e in state.entries.values() if keep(e))
        return [r for r in found if r is not None]

    async def of_budget(self, budget_id: str) -> list[ExportEntryRecord]:
        return self._records(self._state("entries.of_budget"), lambda e: e.budget_id == budget_id)

    async def of_lines(self, line_ids: Sequence[str]) -> list[ExportEntryRecord]:
        wanted = set(line_ids)
        return self._records(self._state("entries.of_lines"), lambda e: e.line_item_id in wanted)

    async def add_many(self, entries: Sequence[NewExportEntry]) -> None:
        self._state("entries.add_many").insert("entries", [(e.id, _stored(e)) for e in entries])


class FakeJobQueue(_Repo, JobQueue):
    async def enqueue(self, company_id: str, request_id: str, at: datetime) -> None:
        job = ExportJobRecord(
            id=new_id("ExportJob"),
            company_id=company_id,
            request_id=request_id,
            status=QUEUED,
            attempts=0,
            next_attempt_at=at,
            lease_until=None,
            last_error=None,
            created_at=at,
            updated_at=at,
        )
        self._state("jobs.enqueue").insert("jobs", [(job.id, _stored(job))])

    async def claim(
        self, now: datetime, lease: timedelta, max_attempts: int, company_id: str | None = None
    ) -> ClaimedJob | None:
        s = self._state("jobs.claim")
        now = _utc(now)

        def due(job: ExportJobRecord) -> bool:
            if company_id is not None and job.company_id != company_id:
                return False
            if job.status == QUEUED:
                return job.next_attempt_at <= now
            return job.status == RUNNING and job.lease_until is not None and job.lease_until < now

        job = min((j for j in s.jobs.values() if due(j)), key=lambda j: j.next_attempt_at, default=None)
        if job is None:
            return None
        exhausted = job.attempts >= max_attempts
        attempts = job.attempts if exhausted else job.attempts + 1
        s.update(
            "jobs", job.id, replace(job, status=RUNNING, attempts=attempts, lease_until=now + lease, updated_at=now)
        )
        return ClaimedJob(id=job.id, request_id=job.request_id, attempts=attempts, exhausted=exhausted)

    async def get(self, job_id: str) -> ExportJobRecord | None:
        return self._state("jobs.get").jobs.get(job_id)

    async def finish(self, job_id: str, status: str, at: datetime, error: str | None = None) -> None:
        s = self._state("jobs.finish")
        if job_id in s.jobs:
            job = replace(s.jobs[job_id], status=status, lease_until=None, updated_at=at, last_error=error)
            s.update("jobs", job_id, _stored(job))

    async def requeue(self, job_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None:
        s = self._state("jobs.requeue")
        if job_id in s.jobs:
            job = replace(
                s.jobs[job_id],
                status=QUEUED,
                lease_until=None,
                updated_at=at,
                next_attempt_at=next_attempt_at,
                last_error=error,
            )
            s.update("jobs", job_id, _stored(job))

    async def overdue_callbacks(self, now: datetime, wait: timedelta, company_id: str | None) -> list[ClaimedJob]:
        s, cutoff = self._state("jobs.overdue_callbacks"), _utc(now) - wait
        return [
            ClaimedJob(id=j.id, request_id=j.request_id, attempts=j.attempts)
            for j in s.jobs.values()
            if j.status == AWAITING_CALLBACK
            and j.updated_at < cutoff
            and (company_id is None or j.company_id == company_id)
        ]

    async def close_awaiting_callback(self, request_id: str, at: datetime) -> None:
        s = self._state("jobs.close_awaiting_callback")
        for job in list(s.jobs.values()):
            if job.request_id == request_id and job.status == AWAITING_CALLBACK:
                s.update("jobs", job.id, _stored(replace(job, status=DONE, updated_at=at)))


class FakeEventLog(EventLog):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    async def _append(self, company_id: str, event: BudgetEvent, at: datetime) -> int:
        s = self._uow.state_for("events.append")
        company = s.companies.get(company_id)
        if company is None:  # the SQL `UPDATE companies ... RETURNING` finds no row (NoResultFound)
            raise LookupError(f"no company {company_id!r}")
        sequence = company.event_sequence + 1
        s.update("companies", company_id, replace(company, event_sequence=sequence))
        record = EventRecord(
            id=s.last_event_id + 1,
            company_id=company_id,
            sequence=sequence,
            occurred_at=_utc(at),
            type=event.type,
            actor_id=event.actor_id,
            project_id=event.project_id,
            budget_id=event.budget_id,
            erp_request_id=event.erp_request_id,
            previous_status=event.previous_status.value if event.previous_status else None,
            status=event.status.value,
            reason=event.reason,
            data=_json(event.data),
        )
        s.insert("events", [(record.id, record)])
        s.last_event_id = record.id
        return sequence


class FakeIdempotency(_Repo, IdempotencyStore):
    async def get(self, user_id: str, operation: str, key: str) -> StoredResultRecord | None:
        found = self._state("idempotency.get").idempotency.get((user_id, operation, key))
        return StoredResultRecord(input_hash=found.input_hash, result=_json(found.result)) if found else None

    async def put(
        self, user_id: str, operation: str, key: str, input_hash: str, result: Mapping[str, Any], at: datetime
    ) -> None:
        row = IdempotencyRow(user_id, operation, key, input_hash, _json(dict(result)), _utc(at))
        self._state("idempotency.put").insert("idempotency", [((user_id, operation, key), row)])


class FakeNotificationOutbox(_Repo, NotificationOutbox):
    async def add_many(self, rows: Sequence[NewNotification]) -> None:
        records = [
            (
                row.id,
                _stored(
                    NotificationRecord(
                        **{**asdict(row), "payload": _json(dict(row.payload))},
                        status=OutboxStatus.PENDING.value,
                        attempts=0,
                        next_attempt_at=row.created_at,
                        lease_until=None,
                        handed_over_at=None,
                        message_id=None,
                        sent_at=None,
                        last_error=None,
                        updated_at=row.created_at,
                    )
                ),
            )
            for row in rows
        ]
        self._state("notifications.add_many").insert("notifications", records)

    async def taken_keys(self, keys: Sequence[str]) -> set[str]:
        s, wanted = self._state("notifications.taken_keys"), set(keys)
        return {n.dedupe_key for n in s.notifications.values() if n.dedupe_key in wanted}

    async def claim(
        self, now: datetime, lease: timedelta, company_id: str | None = None
    ) -> NotificationRecord | None:
        s, now = self._state("notifications.claim"), _utc(now)
        due = [
            n
            for n in s.notifications.values()
            if (company_id is None or n.company_id == company_id)
            and (
                (n.status == OutboxStatus.PENDING.value and n.next_attempt_at <= now)
                or (n.status == OutboxStatus.SENDING.value and n.lease_until is not None and n.lease_until < now)
            )
        ]
        if not due:
            return None
        found = min(due, key=lambda n: (n.next_attempt_at, n.id))
        claimed = replace(
            found,
            status=OutboxStatus.SENDING.value,
            attempts=found.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        s.update("notifications", found.id, claimed)
        return replace(claimed, payload=_json(claimed.payload))

    async def get(self, notification_id: str) -> NotificationRecord | None:
        found = self._state("notifications.get").notifications.get(notification_id)
        return replace(found, payload=_json(found.payload)) if found is not None else None

    def _change(self, operation: str, notification_id: str, **values: Any) -> None:
        s = self._state(operation)
        found = s.notifications.get(notification_id)
        if found is not None:
            s.update("notifications", notification_id, _stored(replace(found, **values)))

    async def hand_over(self, notification_id: str, at: datetime, message_id: str | None) -> None:
        found = self._state("notifications.hand_over").notifications.get(notification_id)
        kept = found.message_id if found is not None and found.message_id else message_id
        self._change("notifications.hand_over", notification_id, handed_over_at=at, updated_at=at, message_id=kept)

    async def finish(self, notification_id: str, status: OutboxStatus, at: datetime, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status.value, "lease_until": None, "updated_at": at}
        if status is OutboxStatus.SENT:
            values["sent_at"] = at
        if error is not None:
            values["last_error"] = error
        self._change("notifications.finish", notification_id, **values)

    async def retry(self, notification_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None:
        self._change(
            "notifications.retry",
            notification_id,
            status=OutboxStatus.PENDING.value,
            lease_until=None,
            handed_over_at=None,
            next_attempt_at=next_attempt_at,
            last_error=error,
            updated_at=at,
        )

    async def close_due(
        self, now: datetime, channel: str, status: OutboxStatus, reason: str, company_id: str | None = None
    ) -> int:
        s, now = self._state("notifications.close_due"), _utc(now)
        due = [
            n
            for n in s.notifications.values()
            if n.status == OutboxStatus.PENDING.value
            and n.channel == channel
            and n.next_attempt_at <= now
            and (company_id is None or n.company_id == company_id)
        ]
        for n in due:
            s.update("notifications", n.id, replace(n, status=status.value, last_error=reason, updated_at=now))
        return len(due)

    async def of_company(self, company_id: str) -> list[NotificationRecord]:
        s = self._state("notifications.of_company")
        found = [n for n in s.notifications.values() if n.company_id == company_id]
        return [replace(n, payload=_json(n.payload)) for n in sorted(found, key=lambda n: (n.created_at, n.id))]


class FakeNotificationContext(_Repo, NotificationContext):
    def _off(self, state: FakeState, user_id: str) -> frozenset[str]:
        return frozenset(
            p.kind for p in state.notification_preferences.values() if p.user_id == user_id and not p.enabled
        )

    async def people(self, company_id: str) -> list[RecipientRecord]:
        s = self._state("notification_context.people")
        found = sorted(
            (u for u in s.users.values() if u.company_id == company_id and u.disabled_at is None),
            key=lambda u: (u.created_at, u.id),
        )
        return [
            RecipientRecord(
                id=u.id,
                company_id=u.company_id,
                email=u.email,
                name=u.name,
                is_accounting_approver=u.is_accounting_approver,
                erp_permission=u.erp_permission,
                opted_out=self._off(s, u.id),
            )
            for u in found
        ]

    async def opted_out(self, user_id: str) -> frozenset[str]:
        return self._off(self._state("notification_context.opted_out"), user_id)

    async def set_preferences(self, user_id: str, changes: Mapping[str, bool]) -> None:
        s = self._state("notification_context.set_preferences")
        for kind in changes:
            s.notification_preferences.pop((user_id, kind), None)
        s.insert(
            "notification_preferences",
            [((user_id, kind), PreferenceRow(user_id, kind, bool(on))) for kind, on in changes.items()],
        )

    async def chat_webhook(self, company_id: str) -> ChatWebhookRecord | None:
        return self._state("notification_context.chat_webhook").chat_webhooks.get(company_id)

    async def set_chat_webhook(
        self, company_id: str, url: str | None, allow_private_network: bool, at: datetime
    ) -> None:
        s = self._state("notification_context.set_chat_webhook")
        s.chat_webhooks.pop(company_id, None)
        if url is not None:
            record = ChatWebhookRecord(company_id, url, allow_private_network, _utc(at))
            s.insert("chat_webhooks", [(company_id, record)])

    async def request_lines(self, request_id: str) -> list[RequestLineRecord]:
        s = self._state("notification_context.request_lines")
        return sorted((r for r in s.request_lines.values() if r.request_id == request_id), key=lambda r: r.position)

    async def requests_in(
        self, statuses: Sequence[str], company_id: str | None = None, exported_before: datetime | None = None
    ) -> list[ErpRequestRecord]:
        s, wanted = self._state("notification_context.requests_in"), set(statuses)
        before = _utc(exported_before) if exported_before is not None else None
        found = [
            r
            for r in s.requests.values()
            if r.status in wanted
            and (company_id is None or r.company_id == company_id)
            and (before is None or (r.exported_at is not None and r.exported_at < before))
        ]
        return sorted(found, key=lambda r: (r.sent_at, r.id))


# --- the unit of work -------------------------------------------------------------------------------


class FakeUnitOfWork(AbstractUnitOfWork):
    def __init__(self, store: FakeStore, on_events: Callable[[str], None] = lambda company_id: None) -> None:
        super().__init__(on_events)
        self.store = store
        self._working: FakeState | None = None
        self._holds_lock = False
        self.companies = FakeCompanies(self)
        self.users = FakeUsers(self)
        self.access = FakeAccess(self)
        self.projects = FakeProjects(self)
        self.cost_codes = FakeCostCodes(self)
        self.cost_types = FakeCostTypes(self)
        self.budgets = FakeBudgets(self)
        self.line_items = FakeLineItems(self)
        self.modifications = FakeModifications(self)
        self.requests = FakeErpRequests(self)
        self.entries = FakeExportEntries(self)
        self.jobs = FakeJobQueue(self)
        self.events = FakeEventLog(self)
        self.idempotency = FakeIdempotency(self)
        self.notifications = FakeNotificationOutbox(self)
        self.notification_context = FakeNotificationContext(self)

    @property
    def state(self) -> FakeState:
        """This transaction's view: the committed state plus its own uncommitted writes."""
        assert self._working is not None, "the unit of work has not begun (or has ended)"
        return self._working

    def state_for(self, operation: str) -> FakeState:
        self.store.run_hooks(operation, self)
        return self.state

    async def _begin(self) -> None:
        await self.store.acquire()
        self._holds_lock = True
        self._working = self.store.state.copy()
        self.store.begun += 1

    async def _commit(self) -> None:
        self.store.state = self.state
        self.store.commits += 1
        self._working = self.store.state.copy()  # what follows is a new transaction, rolled back unless committed

    async def _end(self) -> None:
        self._working = None
        if self._holds_lock:
            self._holds_lock = False
            self.store.release()


Hook = Callable[[FakeUnitOfWork], None]


class FakeStore:
    """The committed state of the fake database, the factory of its units of work, and a seeding API."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.commits = 0  # successful commits
        self.begun = 0  # units of work opened
        self.woken: list[str] = []  # every on_events call, in order
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._hooks: dict[str, list[Hook]] = {}

    # --- units of work -------------------------------------------------------------------------------

    def unit_of_work(self, on_events: Callable[[str], None] | None = None) -> FakeUnitOfWork:
        def wake(company_id: str) -> None:
            self.woken.append(company_id)
            if on_events is not None:
                on_events(company_id)

        return FakeUnitOfWork(self, wake)

    def factory(self, on_events: Callable[[str], None] | None = None) -> UnitOfWorkFactory:
        """For `Services(unit_of_work_factory=store.factory(...))`."""
        return lambda: self.unit_of_work(on_events)

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise RuntimeError("a unit of work was opened inside another one in the same task (SQLite would hang)")
        await self._lock.acquire()
        self._owner = task

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    # --- fault injection -----------------------------------------------------------------------------

    def before(self, operation: str, hook: Hook) -> None:
        """Run `hook(uow)` once, at the start of the next `operation` ("budgets.save", "idempotency.put",
        ...) in any unit of work; it may change `uow.state` and `store.state` (a writer that committed
        meanwhile) or raise."""
        self._hooks.setdefault(operation, []).append(hook)

    def run_hooks(self, operation: str, uow: FakeUnitOfWork) -> None:
        hooks = self._hooks.pop(operation, [])
        for hook in hooks:
            hook(uow)

    def pending_hooks(self) -> list[str]:
        return [name for name, hooks in self._hooks.items() if hooks]

    # --- looking at the state ------------------------------------------------------------------------

    def snapshot(self) -> FakeState:
        """A deep copy to compare with later (`store.snapshot() == before` proves nothing changed)."""
        return copy.deepcopy(self.state)

    def events_of(self, company_id: str) -> list[EventRecord]:
        return sorted((e for e in self.state.events.values() if e.company_id == company_id), key=lambda e: e.sequence)

    def line(self, line_id: str) -> LineItemRecord:
        record = line_record(self.state, self.state.line_items[line_id])
        assert record is not None
        return record

    def lines_of(self, budget_id: str) -> list[LineItemRecord]:
        rows = sorted((r for r in self.state.line_items.values() if r.budget_id == budget_id), key=lambda r: r.position)
        return [rec for rec in (line_record(self.state, r) for r in rows) if rec is not None]

    def entries_of(self, budget_id: str) -> list[ExportEntryRecord]:
        found = (entry_record(self.state, e) for e in self.state.entries.values() if e.budget_id == budget_id)
        return [r for r in found if r is not None]

    # --- seeding (straight into the committed state, with the schema's rules) --------------------------

    def seed_company(
        self,
        name: str = "Test Builders",
        *,
        currency: str = "USD",
        erp_connector: str | None = "embedded",
        erp_settings: dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> CompanyRecord:
        company = CompanyRecord(
            id=new_id("Company"),
            name=name,
            currency=currency,
            erp_connector=erp_connector,
            erp_settings=_json(erp_settings or {}),
            event_sequence=0,
            created_at=_utc(created_at or datetime.now(UTC)),
        )
        self.state.insert("companies", [(company.id, company)])
        return company

    def seed_user(
        self,
        company_id: str,
        email: str | None = None,
        *,
        name: str = "User",
        is_company_admin: bool = False,
        is_accounting_approver: bool = False,
        erp_permission: PermissionLevel = PermissionLevel.NONE,
    ) -> UserRecord:
        user_id = new_id("User")
        user = UserRecord(
            id=user_id,
            company_id=company_id,
            email=email or f"{user_id}@example.com",
            name=name,
            is_company_admin=is_company_admin,
            is_accounting_approver=is_accounting_approver,
            erp_permission=erp_permission.name,
            created_at=datetime.now(UTC),
        )
        self.state.insert("users", [(user.id, user)])
        return user

    def seed_project(
        self,
        company_id: str,
        number: str | None = None,
        *,
        name: str = "Riverside MOB",
        erp_job_id: str | None = None,
    ) -> ProjectRecord:
        project_id = new_id("Project")
        project = ProjectRecord(
            id=project_id,
            company_id=company_id,
            name=name,
            number=number or f"P-{project_id[-8:]}",
            erp_job_id=erp_job_id,
            created_at=datetime.now(UTC),
        )
        self.state.insert("projects", [(project.id, project)])
        return project

    def seed_budget(self, company_id: str, project_id: str, **values: Any) -> BudgetRecord:
        budget = BudgetRecord(
            **{
                "id": new_id("Budget"),
                "company_id": company_id,
                "project_id": project_id,
                "locked": False,
                "locked_at": None,
                "locked_by_id": None,
                "version": 1,
                "export_status": ExportStatus.NOT_SENT.value,
                "last_request_id": None,
                "request_count": 0,
                **values,
            }
        )
        self.state.insert("budgets", [(budget.id, _stored(budget))])
        return budget

    def seed_cost_code(
        self, company_id: str, code: str, description: str | None = None, *, erp_synced: bool = False
    ) -> CostCodeRecord:
        record = CostCodeRecord(new_id("CostCode"), company_id, code, description or f"Cost code {code}", erp_synced)
        self.state.insert("cost_codes", [(record.id, record)])
        return record

    def seed_cost_type(
        self, company_id: str, code: str, name: str | None = None, *, erp_synced: bool = False
    ) -> CostTypeRecord:
        record = CostTypeRecord(new_id("CostType"), company_id, code, name or f"Type {code}", erp_synced)
        self.state.insert("cost_types", [(record.id, record)])
        return record

    def seed_grant(
        self, user_id: str, project_id: str, level: PermissionLevel, grants: Iterable[Grant] = ()
    ) -> ProjectAccessRecord:
        record = ProjectAccessRecord(user_id, project_id, level.name, sorted(g.value for g in grants))
        self.state.insert("access", [((user_id, project_id), record)])
        return record

    def seed_line(
        self,
        budget: BudgetRecord,
        cost_code_id: str,
        cost_type_id: str,
        original_amount: Decimal | str | int,
        *,
        sub_job: str = "",
        description: str | None = None,
        modifications_amount: Decimal | str | int = 0,
        quantity: Decimal | None = None,
        unit_of_measure: str | None = None,
        unit_cost: Decimal | None = None,
        position: int | None = None,
    ) -> LineItemRecord:
        existing = [r.position for r in self.state.line_items.values() if r.budget_id == budget.id]
        row = LineRow(
            id=new_id("BudgetLineItem"),
            company_id=budget.company_id,
            budget_id=budget.id,
            cost_code_id=cost_code_id,
            cost_type_id=cost_type_id,
            sub_job=sub_job,
            description=description,
            original_amount=Decimal(original_amount),
            modifications_amount=Decimal(modifications_amount),
            quantity=quantity,
            unit_of_measure=unit_of_measure,
            unit_cost=unit_cost,
            position=position if position is not None else max(existing, default=0) + 1,
            created_at=datetime.now(UTC),
        )
        self.state.insert("line_items", [(row.id, _stored(row))])
        return self.line(row.id)

    def set_budget(self, budget_id: str, **values: Any) -> BudgetRecord:
        """Change a stored budget behind every unit of work's back (a test's shortcut to a state)."""
        budget = _stored(replace(self.state.budgets[budget_id], **values))
        self.state.update("budgets", budget_id, budget)
        return budget
