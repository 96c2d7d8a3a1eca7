"""The SQLAlchemy repositories: each holds the unit of work's connection and speaks records, not rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CursorResult,
    Executable,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningUpdate

from domain.budget import BudgetState, BudgetTotals, LineKey
from domain.errors import ConcurrentChangeError, VersionConflictError
from domain.events import BudgetEvent
from domain.money import MAX_AMOUNT, ZERO
from domain.permissions import NO_ACCESS, ProjectAccess
from domain.text import storable
from persistence import decision_writes, queries, revisions
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    ExportEntryRecord,
    LineItemRecord,
    ModificationRecord,
    ProjectRecord,
    RequestLineRecord,
    StoredResultRecord,
    UserRecord,
)
from persistence.tables import (
    budgets,
    companies,
    cost_codes,
    cost_types,
    erp_requests,
    export_entries,
    idempotency_keys,
    line_items,
    modifications,
    project_permissions,
    projects,
    request_lines,
    users,
)
from persistence.types import UnstorableValueError
from persistence.unit_of_work import (
    LINE_UPDATABLE,
    REQUEST_UPDATABLE,
    AccessRepository,
    BudgetRepository,
    CompanyRepository,
    CostCodeRepository,
    CostTypeRepository,
    ErpRequestRepository,
    EventLog,
    ExportEntryRepository,
    IdempotencyStore,
    LineItemRepository,
    ModificationRepository,
    NewExportEntry,
    NewLineItem,
    ProjectRepository,
    UserRepository,
)


async def execute(conn: AsyncConnection, statement: Executable, params: Any = None) -> CursorResult[Any]:
    """Run a write; a unique or foreign key violation leaves as ConcurrentChangeError (a concurrent request
    won the key), the refusal the service layer understands. The unit of work is spoiled by then (PostgreSQL
    aborts the transaction), so a body must not go on after one."""
    try:
        return await conn.execute(statement, params)
    except IntegrityError:
        raise ConcurrentChangeError() from None


class _Sql:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _write(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        return await execute(self._conn, statement, params)

    async def _exists(self, table: Table, company_id: str, column: str, value: str) -> bool:
        stmt = select(table.c.id).where(table.c.company_id == company_id, table.c[column] == value).limit(1)
        return (await self._conn.execute(stmt)).first() is not None


class SqlCompanies(_Sql, CompanyRepository):
    async def get(self, company_id: str) -> CompanyRecord | None:
        row = (await self._conn.execute(select(companies).where(companies.c.id == company_id))).first()
        return CompanyRecord.of(row) if row is not None else None

    async def add(self, company: CompanyRecord) -> None:
        await self._write(insert(companies).values(**asdict(company)))

    async def set_erp(self, company_id: str, connector: str | None, options: Mapping[str, Any]) -> None:
        await self._write(
            update(companies)
            .where(companies.c.id == company_id)
            .values(erp_connector=connector, erp_settings=dict(options), revision=companies.c.revision + 1)
        )

    async def touch(self, company_id: str) -> None:
        await self._write(revisions.of_company(company_id))


class SqlUsers(_Sql, UserRepository):
    async def get(self, user_id: str) -> UserRecord | None:
        found = await queries.by_ids(self._conn, users, UserRecord, [user_id], None)
        return found[0] if found else None

    async def email_taken(self, company_id: str, email: str) -> bool:
        stmt = select(users.c.id).where(users.c.company_id == company_id, users.c.email == email).limit(1)
        return (await self._conn.execute(stmt)).first() is not None

    async def add(self, user: UserRecord) -> None:
        await self._write(insert(users).values(**asdict(user)))
        await self._write(revisions.of_company(user.company_id))


class SqlAccess(_Sql, AccessRepository):
    async def of(self, user_id: str, project_id: str) -> ProjectAccess:
        found = await queries.access_of(self._conn, user_id, [project_id])
        return found.get(project_id, NO_ACCESS)

    async def grant(self, user_id: str, project_id: str, access: ProjectAccess) -> None:
        await self._write(
            insert(project_permissions).values(
                user_id=user_id,
                project_id=project_id,
                budget_permission=access.budget_permission.name,
                grants=sorted(g.value for g in access.grants),
            )
        )
        await self._write(revisions.of_projects_company(project_id))

    async def revoke(self, user_id: str, project_id: str) -> None:
        await self._write(
            delete(project_permissions).where(
                project_permissions.c.user_id == user_id, project_permissions.c.project_id == project_id
            )
        )
        await self._write(revisions.of_projects_company(project_id))


class SqlProjects(_Sql, ProjectRepository):
    async def get(self, company_id: str, project_id: str) -> ProjectRecord | None:
        found = await queries.by_ids(self._conn, projects, ProjectRecord, [project_id], company_id)
        return found[0] if found else None

    async def number_taken(self, company_id: str, number: str) -> bool:
        return await self._exists(projects, company_id, "number", number)

    async def add(self, project: ProjectRecord) -> None:
        await self._write(insert(projects).values(**asdict(project)))
        await self._write(revisions.of_company(project.company_id))

    async def set_erp_job(self, project_id: str, erp_job_id: str) -> None:
        await self._write(update(projects).where(projects.c.id == project_id).values(erp_job_id=erp_job_id))


class _SqlCostList(_Sql):
    table: Table

    async def code_taken(self, company_id: str, code: str) -> bool:
        return await self._exists(self.table, company_id, "code", code)

    async def mark_synced(self, ids: Sequence[str]) -> None:
        if ids:
            await self._write(update(self.table).where(self.table.c.id.in_(list(ids))).values(erp_synced=True))


class SqlCostCodes(_SqlCostList, CostCodeRepository):
    table = cost_codes

    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostCodeRecord]:
        found = await queries.by_ids(self._conn, cost_codes, CostCodeRecord, ids, company_id)
        return sorted(found, key=lambda c: c.code)

    async def add(self, cost_code: CostCodeRecord) -> None:
        await self._write(insert(cost_codes).values(**asdict(cost_code)))
        await self._write(revisions.of_company(cost_code.company_id))


class SqlCostTypes(_SqlCostList, CostTypeRepository):
    table = cost_types

    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostTypeRecord]:
        found = await queries.by_ids(self._conn, cost_types, CostTypeRecord, ids, company_id)
        return sorted(found, key=lambda t: t.code)

    async def add(self, cost_type: CostTypeRecord) -> None:
        await self._write(insert(cost_types).values(**asdict(cost_type)))
        await self._write(revisions.of_company(cost_type.company_id))


class SqlBudgets(_Sql, BudgetRepository):
    async def _get_for_update(self, company_id: str | None, budget_id: str) -> BudgetRecord | None:
        if not storable(budget_id):
            return None  # no id holds such text; the driver would refuse it
        stmt = select(budgets).where(budgets.c.id == budget_id)
        if company_id is not None:
            stmt = stmt.where(budgets.c.company_id == company_id)
        row = (await self._conn.execute(stmt.with_for_update())).first()
        return BudgetRecord.of(row) if row is not None else None

    async def _get_for_change(
        self, company_id: str, user_id: str, *, budget_id: str | None = None, line_id: str | None = None
    ) -> tuple[BudgetRecord, ProjectAccess] | None:
        key = budget_id if budget_id is not None else line_id
        if key is None or not storable(key):
            return None
        stmt = _FOR_CHANGE_OF_LINE if line_id is not None else _FOR_CHANGE
        row = (await self._conn.execute(stmt, {"company_id": company_id, "user_id": user_id, "key": key})).first()
        if row is None:
            return None
        return BudgetRecord.of(row), queries.access_value(row.budget_permission, row.grants)

    async def of_project(self, company_id: str, project_id: str) -> BudgetRecord | None:
        stmt = select(budgets).where(budgets.c.company_id == company_id, budgets.c.project_id == project_id)
        row = (await self._conn.execute(stmt)).first()
        return BudgetRecord.of(row) if row is not None else None

    async def add(self, budget: BudgetRecord) -> None:
        await self._write(insert(budgets).values(**asdict(budget)))

    async def save(self, before: BudgetRecord, after: BudgetState) -> BudgetRecord:
        row = (await self._write(decision_writes.SAVE, decision_writes.state_params(before, after))).first()
        if row is None:
            raise VersionConflictError(actual=None)
        return BudgetRecord.of(row)  # as stored (timestamps as read back)

    async def save_with_event(
        self, before: BudgetRecord, after: BudgetState, company_id: str, event: BudgetEvent, at: datetime
    ) -> tuple[BudgetRecord, int] | None:
        """PostgreSQL: `save` and `SqlEventLog._append` in one statement; the budget as stored and the event's
        sequence, or None (nothing written) when the version moved."""
        params = {**decision_writes.state_params(before, after), **decision_writes.event_params(company_id, event, at)}
        row = (await self._write(decision_writes.SAVE_WITH_EVENT, params)).first()
        return (BudgetRecord.of(row), int(row.sequence)) if row is not None else None


def _for_change(*, of_line: bool) -> Select[Any]:
    """The budget (`key`, or the budget of the line `key`) of `company_id`, locked, with the grant of `user_id`
    on its project. Built once (see persistence.decision_writes)."""
    grant = project_permissions
    stmt = (
        select(budgets, grant.c.budget_permission, grant.c.grants)
        .outerjoin(grant, and_(grant.c.project_id == budgets.c.project_id, grant.c.user_id == bindparam("user_id")))
        .where(budgets.c.company_id == bindparam("company_id"))
    )
    if of_line:
        stmt = stmt.join(line_items, line_items.c.budget_id == budgets.c.id).where(
            line_items.c.id == bindparam("key"), line_items.c.company_id == bindparam("company_id")
        )
    else:
        stmt = stmt.where(budgets.c.id == bindparam("key"))
    return stmt.with_for_update(of=budgets)


_FOR_CHANGE = _for_change(of_line=False)
_FOR_CHANGE_OF_LINE = _for_change(of_line=True)


class SqlLineItems(_Sql, LineItemRepository):
    async def get(self, company_id: str, line_id: str) -> LineItemRecord | None:
        found = await queries.line_items_by_ids(self._conn, [line_id], company_id)
        return found[0] if found else None

    async def get_with_totals(self, company_id: str, line_id: str) -> tuple[LineItemRecord, BudgetTotals] | None:
        return await queries.line_with_budget_totals(self._conn, line_id, company_id)

    async def of_budget(self, budget_id: str) -> list[LineItemRecord]:
        return await queries.lines_of_budgets(self._conn, [budget_id])

    async def keys_of_budget(self, budget_id: str) -> dict[LineKey, str]:
        stmt = select(line_items.c.id, line_items.c.cost_code_id, line_items.c.cost_type_id, line_items.c.sub_job)
        rows = await self._conn.execute(stmt.where(line_items.c.budget_id == budget_id))
        return {(r.cost_code_id, r.cost_type_id, r.sub_job): r.id for r in rows}

    async def next_position(self, budget_id: str) -> int:
        stmt = select(func.max(line_items.c.position)).where(line_items.c.budget_id == budget_id)
        return int((await self._conn.execute(stmt)).scalar_one() or 0) + 1

    async def add_many(self, lines: Sequence[NewLineItem]) -> None:
        if lines:
            rows = [{**asdict(line), "modifications_amount": Decimal("0.00")} for line in lines]
            await self._write(insert(line_items), rows)

    async def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        # One executemany per set of changed columns (an update names only the columns it changes).
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for line_id, values in changes.items():
            unknown = set(values) - set(LINE_UPDATABLE)
            if unknown:
                raise ValueError(f"not updatable: {sorted(unknown)}")
            if values:
                by_columns.setdefault(tuple(sorted(values)), []).append({"line_id": line_id, **values})
        for columns, params in by_columns.items():
            await self._write(
                update(line_items)
                .where(line_items.c.id == bindparam("line_id"))
                .values({name: bindparam(name) for name in columns}),
                params,
            )

    async def update(self, line: LineItemRecord, values: Mapping[str, Any]) -> LineItemRecord:
        unknown = set(values) - set(LINE_UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not values:
            return line
        names = tuple(sorted(values))
        stmt = _LINE_UPDATES.get(names)
        if stmt is None:  # built once per set of columns (see persistence.decision_writes)
            stmt = _LINE_UPDATES[names] = (
                update(line_items)
                .where(line_items.c.id == bindparam("line_id"))
                .values({name: bindparam(f"new_{name}") for name in names})
                .returning(*(line_items.c[name] for name in names))
            )
        params = {"line_id": line.id, **{f"new_{name}": value for name, value in values.items()}}
        row = (await self._write(stmt, params)).one()  # the values as stored (amounts at their column's scale)
        return replace(line, **row._asdict())

    async def delete(self, line_id: str) -> None:
        await self._write(delete(line_items).where(line_items.c.id == line_id))

    async def add_to_modifications(self, line_id: str, delta: Decimal) -> None:
        # The sum is computed in the database: the bind check cannot see it, so the update itself keeps it
        # in range (PostgreSQL would fail with a numeric overflow, SQLite would store it).
        moved = line_items.c.modifications_amount + delta
        result = await self._write(
            update(line_items)
            .where(line_items.c.id == line_id, moved.between(-MAX_AMOUNT, MAX_AMOUNT))
            .values(modifications_amount=moved)
        )
        if result.rowcount == 0 and await self._has_line(line_id):
            raise UnstorableValueError(f"line {line_id}: its modifications amount would pass NUMERIC(15,2)")

    async def _has_line(self, line_id: str) -> bool:
        stmt = select(line_items.c.id).where(line_items.c.id == line_id)
        return (await self._conn.execute(stmt)).first() is not None

    async def totals(self, budget_id: str) -> BudgetTotals:
        found = await queries.budget_totals(self._conn, [budget_id])
        if not found:
            return BudgetTotals(ZERO, ZERO)
        return BudgetTotals(found[0].original_total, found[0].modifications_total)


_LINE_UPDATES: dict[tuple[str, ...], ReturningUpdate[Any]] = {}


class SqlModifications(_Sql, ModificationRepository):
    async def of_budget(self, budget_id: str) -> list[ModificationRecord]:
        return await queries.modifications_of_budgets(self._conn, [budget_id])

    async def touching(self, line_ids: Sequence[str]) -> list[ModificationRecord]:
        return await queries.modifications_touching(self._conn, line_ids)

    async def next_number(self, budget_id: str) -> int:
        stmt = select(func.max(modifications.c.number)).where(modifications.c.budget_id == budget_id)
        return int((await self._conn.execute(stmt)).scalar_one() or 0) + 1

    async def add(self, modification: ModificationRecord) -> None:
        await self._write(insert(modifications).values(**asdict(modification)))


class SqlErpRequests(_Sql, ErpRequestRepository):
    async def get(self, company_id: str | None, request_id: str) -> ErpRequestRecord | None:
        found = await queries.by_ids(self._conn, erp_requests, ErpRequestRecord, [request_id], company_id)
        return found[0] if found else None

    async def by_export_id(self, export_id: str) -> ErpRequestRecord | None:
        if not storable(export_id):
            return None  # an integrator's callback names it: no export id holds such text
        row = (await self._conn.execute(select(erp_requests).where(erp_requests.c.export_id == export_id))).first()
        return ErpRequestRecord.of(row) if row is not None else None

    async def add(self, request: ErpRequestRecord, lines: Sequence[RequestLineRecord]) -> None:
        await self._write(insert(erp_requests).values(**asdict(request)))
        if lines:
            await self._write(insert(request_lines), [asdict(line) for line in lines])

    async def update(self, request_id: str, **values: Any) -> None:
        unknown = set(values) - REQUEST_UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        await self._write(update(erp_requests).where(erp_requests.c.id == request_id).values(**values))


class SqlExportEntries(_Sql, ExportEntryRepository):
    async def of_budget(self, budget_id: str) -> list[ExportEntryRecord]:
        return await queries.entries_of_budgets(self._conn, [budget_id])

    async def of_lines(self, line_ids: Sequence[str]) -> list[ExportEntryRecord]:
        return await queries.entries_of_lines(self._conn, line_ids)

    async def add_many(self, entries: Sequence[NewExportEntry]) -> None:
        if entries:
            await self._write(insert(export_entries), [asdict(e) for e in entries])


class SqlEventLog(_Sql, EventLog):
    """Each event is written in the transaction of the change it records. Its sequence comes from the
    company row (`UPDATE ... RETURNING`), which also holds that row's lock until commit: two transactions
    of one company cannot interleave their sequences, so a reader that has seen N has seen every event
    below N. Being the one lock all writers of a company share, it is taken last, after the budget rows
    (persistence.unit_of_work.LockOrder, checked in EventLog.append and BudgetRepository.get_for_update)."""

    def __init__(self, conn: AsyncConnection) -> None:
        _Sql.__init__(self, conn)
        EventLog.__init__(self)

    async def _append(self, company_id: str, event: BudgetEvent, at: datetime) -> int:
        params = decision_writes.event_params(company_id, event, at)
        if self._conn.dialect.name == "postgresql":  # the counter's UPDATE in a WITH, the event from what it returned
            return int((await self._write(decision_writes.APPEND_EVENT, params)).scalar_one())
        sequence = (await self._write(decision_writes.NEXT_SEQUENCE, params)).scalar_one()  # SQLite: no WITH UPDATE
        await self._write(decision_writes.INSERT_EVENT, {**params, "event_sequence": sequence})
        return int(sequence)


class SqlIdempotency(_Sql, IdempotencyStore):
    async def get(self, user_id: str, operation: str, key: str) -> StoredResultRecord | None:
        stmt = select(idempotency_keys.c.input_hash, idempotency_keys.c.result).where(
            idempotency_keys.c.user_id == user_id,
            idempotency_keys.c.operation == operation,
            idempotency_keys.c.key == key,
        )
        row = (await self._conn.execute(stmt)).first()
        return StoredResultRecord.of(row) if row is not None else None

    async def put(
        self, user_id: str, operation: str, key: str, input_hash: str, result: Mapping[str, Any], at: datetime
    ) -> None:
        await self._write(
            insert(idempotency_keys).values(
                user_id=user_id, operation=operation, key=key, input_hash=input_hash, result=dict(result), created_at=at
            )
        )
