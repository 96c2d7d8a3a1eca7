"""One set of behaviour tests for every repository method, run on three implementations: the in-memory fake
(tests/fakes), SQL on SQLite and SQL on PostgreSQL. What passes here on all three is what the service layer's
unit tests may rely on when they run on the fake.

Every test works inside units of work only (seeding companies and users, which no repository writes, is the
exception). A violated database rule is asserted outside the `async with`: that is where the SQL unit of
work turns the driver's IntegrityError into ConcurrentChangeError.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pytest
from sqlalchemy import delete, insert

from domain.budget import BudgetState, BudgetTotals
from domain.errors import ConcurrentChangeError, ErrorCode, VersionConflictError
from domain.events import BudgetLocked, ExportAccepted, LineItemCreated
from domain.permissions import NO_ACCESS, Grant, PermissionLevel, ProjectAccess
from domain.status import ExportStatus
from persistence import queries
from persistence.database import Database
from persistence.ids import new_id
from persistence.migrate import is_current
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    EventRecord,
    ModificationRecord,
    ProjectRecord,
    RequestLineRecord,
    UserRecord,
)
from persistence.tables import companies, metadata, users
from persistence.types import UnstorableValueError
from persistence.unit_of_work import (
    AWAITING_CALLBACK,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    AbstractUnitOfWork,
    LockOrderError,
    NewExportEntry,
    NewLineItem,
    NewNotification,
    OutboxStatus,
)
from tests.fakes.unit_of_work import FakeStore
from tests.support import fresh_database, in_ci

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 5


# --- the three implementations --------------------------------------------------------------------------


class Backend(Protocol):
    name: str

    def uow(self, on_events: Callable[[str], None] | None = None) -> AbstractUnitOfWork: ...

    async def put(self, record: CompanyRecord | UserRecord) -> None: ...

    async def events(self, company_id: str) -> list[EventRecord]: ...


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.store = FakeStore()

    def uow(self, on_events: Callable[[str], None] | None = None) -> AbstractUnitOfWork:
        return self.store.unit_of_work(on_events)

    async def put(self, record: CompanyRecord | UserRecord) -> None:
        table = "companies" if isinstance(record, CompanyRecord) else "users"
        self.store.state.insert(table, [(record.id, record)])

    async def events(self, company_id: str) -> list[EventRecord]:
        return self.store.events_of(company_id)


class SqlBackend:
    def __init__(self, name: str, db: Database) -> None:
        self.name = name
        self.db = db

    def uow(self, on_events: Callable[[str], None] | None = None) -> AbstractUnitOfWork:
        return self.db.unit_of_work(on_events or (lambda company_id: None))

    async def put(self, record: CompanyRecord | UserRecord) -> None:
        table = companies if isinstance(record, CompanyRecord) else users
        async with self.db.engine.begin() as conn:
            await conn.execute(insert(table).values(**asdict(record)))

    async def events(self, company_id: str) -> list[EventRecord]:
        async with self.db.read() as conn:
            return await queries.company_events_after(conn, company_id, 0)


_SQLITE_URL = f"sqlite+aiosqlite:///{os.path.join(tempfile.mkdtemp(prefix='bb-contract-'), 'c.db')}"


async def emptied_database(url: str) -> Database:
    """A migrated database without rows. Migrating is most of a test's time, so a database that is already at
    the newest revision (from an earlier test) is only emptied; one that is not is dropped and migrated."""
    db = Database(url)
    if not await is_current(db):
        await db.dispose()
        return await fresh_database(url)
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))
    return db


@pytest.fixture(params=["fake", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, postgres_persistence_url: str | OSError) -> AsyncIterator[Backend]:
    """The fake, or a migrated empty database on either engine: PostgreSQL in the database of
    tests/persistence/conftest.py (its engine_db fixture cannot take a third, database-less parameter)."""
    if request.param == "fake":
        yield FakeBackend()
        return
    if request.param == "sqlite":
        url = _SQLITE_URL
    elif isinstance(postgres_persistence_url, OSError):
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {postgres_persistence_url}")
        pytest.skip(f"PostgreSQL not reachable ({postgres_persistence_url}); CI runs these")
    else:
        url = postgres_persistence_url
    db = await emptied_database(url)
    try:
        yield SqlBackend(request.param, db)
    finally:
        await db.dispose()


# --- a small world: two companies, each with a user, a project and its budget, cost codes and types -----


@dataclass
class World:
    company: CompanyRecord
    user: UserRecord
    project: ProjectRecord
    budget: BudgetRecord
    codes: list[CostCodeRecord]
    types: list[CostTypeRecord]


async def make_world(backend: Backend, tag: str = "A") -> World:
    company = CompanyRecord(new_id("Company"), f"Company {tag}", "USD", "embedded", {"k": tag}, 0, T0)
    await backend.put(company)
    user = UserRecord(new_id("User"), company.id, f"{tag}@example.com", f"User {tag}", False, False, "NONE", T0)
    await backend.put(user)
    project = ProjectRecord(new_id("Project"), company.id, f"Project {tag}", "P-1", None, T0)
    budget = BudgetRecord(new_id("Budget"), company.id, project.id, False, None, None, 1, "NOT_SENT", None, 0)
    codes = [CostCodeRecord(new_id("CostCode"), company.id, c, f"Code {c}", False) for c in ("03-300", "05-120")]
    types = [CostTypeRecord(new_id("CostType"), company.id, c, f"Type {c}", False) for c in ("L", "M")]
    async with backend.uow() as uow:
        await uow.projects.add(project)
        await uow.budgets.add(budget)
        for code in codes:
            await uow.cost_codes.add(code)
        for kind in types:
            await uow.cost_types.add(kind)
        await uow.commit()
    return World(company, user, project, budget, codes, types)


def new_line(
    w: World, code: int = 0, kind: int = 0, amount: str = "100.00", *, position: int = 1, sub_job: str = ""
) -> NewLineItem:
    return NewLineItem(
        id=new_id("BudgetLineItem"),
        company_id=w.company.id,
        budget_id=w.budget.id,
        cost_code_id=w.codes[code].id,
        cost_type_id=w.types[kind].id,
        sub_job=sub_job,
        description=f"line {position}",
        original_amount=Decimal(amount),
        quantity=Decimal("2.5"),
        unit_of_measure="EA",
        unit_cost=Decimal("40"),
        position=position,
        created_at=T0,
    )


async def add_lines(backend: Backend, *lines: NewLineItem) -> None:
    async with backend.uow() as uow:
        await uow.line_items.add_many(lines)
        await uow.commit()


def new_request(w: World, sequence: int = 1, *, status: str = "PENDING_ACCEPTANCE") -> ErpRequestRecord:
    request_id = new_id("ErpRequest")
    return ErpRequestRecord(
        id=request_id,
        company_id=w.company.id,
        budget_id=w.budget.id,
        project_id=w.project.id,
        sequence=sequence,
        kind="ORIGINAL",
        status=status,
        sent_at=T0,
        sent_by_id=w.user.id,
        decided_at=None,
        decided_by_id=None,
        rejection_reason=None,
        retrieved_at=None,
        retrieved_by_id=None,
        exported_at=None,
        posted_at=None,
        erp_reference=None,
        failure_message=None,
        export_attempts=0,
        export_id=f"bb-{request_id.removeprefix('req_')}",
        total_original_budget=Decimal("0.00"),
    )


def request_line(request: ErpRequestRecord, line: NewLineItem, position: int = 1) -> RequestLineRecord:
    return RequestLineRecord(
        request_id=request.id,
        position=position,
        line_item_id=line.id,
        cost_code="03-300",
        cost_type="L",
        sub_job=None,
        description=line.description,
        original_budget=line.original_amount,
        budget_changes=Decimal("0"),
        revised_estimate=line.original_amount,
        is_new_line=True,
    )


def entry(request: ErpRequestRecord, line: NewLineItem, amount: str = "100") -> NewExportEntry:
    return NewExportEntry(
        id=new_id("ExportEntry"),
        request_id=request.id,
        budget_id=request.budget_id,
        line_item_id=line.id,
        kind="ORIGINAL_BUDGET",
        source_id=line.id,
        amount=Decimal(amount),
    )


def modification(w: World, number: int, from_id: str | None, to_id: str | None, amount: str) -> ModificationRecord:
    return ModificationRecord(
        id=new_id("BudgetModification"),
        company_id=w.company.id,
        budget_id=w.budget.id,
        number=number,
        from_line_item_id=from_id,
        to_line_item_id=to_id,
        amount=Decimal(amount),
        notes=None,
        created_at=T0,
        created_by_id=w.user.id,
    )


def state(budget: BudgetRecord, **changes: Any) -> BudgetState:
    base = BudgetState(
        id=budget.id,
        project_id=budget.project_id,
        locked=budget.locked,
        version=budget.version,
        export_status=ExportStatus(budget.export_status),
        last_request_id=budget.last_request_id,
        request_count=budget.request_count,
        locked_at=budget.locked_at,
        locked_by_id=budget.locked_by_id,
    )
    return replace(base, version=budget.version + 1, **changes)


async def budget_now(backend: Backend, w: World) -> BudgetRecord:
    async with backend.uow() as uow:
        found = await uow.budgets.get_for_update(w.company.id, w.budget.id)
    assert found is not None
    return found


# --- the unit of work ---------------------------------------------------------------------------------


async def test_without_commit_nothing_is_kept(backend: Backend) -> None:
    w = await make_world(backend)
    async with backend.uow() as uow:
        await uow.cost_codes.add(CostCodeRecord(new_id("CostCode"), w.company.id, "99-999", "New", False))
        assert await uow.cost_codes.code_taken(w.company.id, "99-999")  # its own writes are visible to it
    async with backend.uow() as uow:
        assert not await uow.cost_codes.code_taken(w.company.id, "99-999")


async def test_an_exception_rolls_back_and_propagates(backend: Backend) -> None:
    w = await make_world(backend)
    with pytest.raises(RuntimeError, match="boom"):
        async with backend.uow() as uow:
            await uow.projects.set_erp_job(w.project.id, "JOB-1")
            raise RuntimeError("boom")
    async with backend.uow() as uow:
        found = await uow.projects.get(w.company.id, w.project.id)
    assert found is not None and found.erp_job_id is None


async def test_writes_after_a_commit_need_their_own_commit(backend: Backend) -> None:
    w = await make_world(backend)
    async with backend.uow() as uow:
        await uow.projects.set_erp_job(w.project.id, "JOB-1")
        await uow.commit()
        await uow.cost_codes.add(CostCodeRecord(new_id("CostCode"), w.company.id, "99-999", "New", False))
    async with backend.uow() as uow:
        found = await uow.projects.get(w.company.id, w.project.id)
        assert found is not None and found.erp_job_id == "JOB-1"
        assert not await uow.cost_codes.code_taken(w.company.id, "99-999")


async def test_after_commit_callbacks_and_wake_ups_run_only_after_a_commit(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    woken: list[str] = []
    ran: list[str] = []

    async def later() -> None:
        ran.append("async")

    event_a = BudgetLocked(project_id=a.project.id, budget_id=a.budget.id, status=ExportStatus.NOT_SENT)
    event_b = BudgetLocked(project_id=b.project.id, budget_id=b.budget.id, status=ExportStatus.NOT_SENT)
    async with backend.uow(woken.append) as uow:  # rolled back: nothing runs
        await uow.events.append(a.company.id, event_a, T0)
        uow.after_commit(lambda: ran.append("sync"))
    assert (woken, ran) == ([], [])

    async with backend.uow(woken.append) as uow:
        await uow.events.append(b.company.id, event_b, T0)
        await uow.events.append(a.company.id, event_a, T0)
        await uow.events.append(a.company.id, event_a, T0)
        uow.after_commit(lambda: ran.append("sync"))
        uow.after_commit(later)
        assert (woken, ran) == ([], [])
        await uow.commit()
        assert sorted(woken) == sorted([a.company.id, b.company.id])  # once per company written
        assert ran == ["sync", "async"]

    async with backend.uow(woken.append) as uow:  # a commit without events wakes no one
        await uow.projects.set_erp_job(a.project.id, "JOB-1")
        await uow.commit()
    assert len(woken) == 2


# --- companies and access -------------------------------------------------------------------------------


async def test_companies_get(backend: Backend) -> None:
    w = await make_world(backend)
    async with backend.uow() as uow:
        assert await uow.companies.get(w.company.id) == w.company
        assert await uow.companies.get(new_id("Company")) is None


async def test_access_of_and_grant(backend: Backend) -> None:
    w = await make_world(backend)
    access = ProjectAccess(PermissionLevel.STANDARD, frozenset({Grant.LOCK_BUDGET, Grant.SEND_AND_RETRIEVE}))
    async with backend.uow() as uow:
        assert await uow.access.of(w.user.id, w.project.id) == NO_ACCESS
        await uow.access.grant(w.user.id, w.project.id, access)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.access.of(w.user.id, w.project.id) == access
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:  # one grant per user and project
            await uow.access.grant(w.user.id, w.project.id, NO_ACCESS)
            await uow.commit()



async def test_companies_add_and_set_erp(backend: Backend) -> None:
    company = CompanyRecord(new_id("Company"), "Added Builders", "CAD", None, {}, 0, T0)
    async with backend.uow() as uow:
        await uow.companies.add(company)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.companies.get(company.id) == company
        await uow.companies.set_erp(company.id, "webhook", {"url": "https://erp.example", "timeout_seconds": "5"})
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.companies.get(company.id)
        assert stored == replace(
            company, erp_connector="webhook", erp_settings={"url": "https://erp.example", "timeout_seconds": "5"}
        )
        await uow.companies.set_erp(company.id, None, {})  # disconnected: the options go too
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.companies.get(company.id) == company
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:  # the id is taken
            await uow.companies.add(replace(company, name="Again"))
            await uow.commit()


async def test_users_get_add_and_one_email_per_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    user = UserRecord(new_id("User"), a.company.id, "new@example.com", "New", True, True, "STANDARD", T0)
    async with backend.uow() as uow:
        assert not await uow.users.email_taken(a.company.id, "new@example.com")
        await uow.users.add(user)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.users.get(user.id) == user
        assert await uow.users.get(b.user.id) == b.user  # the admin's lookup spans companies
        assert await uow.users.get(new_id("User")) is None
        assert await uow.users.email_taken(a.company.id, "new@example.com")
        assert not await uow.users.email_taken(b.company.id, "new@example.com")
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.users.add(replace(user, id=new_id("User")))
            await uow.commit()


async def test_access_revoke_removes_the_grant(backend: Backend) -> None:
    w = await make_world(backend)
    async with backend.uow() as uow:
        await uow.access.revoke(w.user.id, w.project.id)  # nothing to revoke: no error
        await uow.access.grant(w.user.id, w.project.id, ProjectAccess(PermissionLevel.ADMIN))
        await uow.commit()
    async with backend.uow() as uow:
        await uow.access.revoke(w.user.id, w.project.id)
        await uow.access.grant(w.user.id, w.project.id, ProjectAccess(PermissionLevel.READ_ONLY))
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.access.of(w.user.id, w.project.id) == ProjectAccess(PermissionLevel.READ_ONLY)
        await uow.access.revoke(w.user.id, w.project.id)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.access.of(w.user.id, w.project.id) == NO_ACCESS

# --- projects and the cost lists ------------------------------------------------------------------------


async def test_projects_are_scoped_to_their_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    async with backend.uow() as uow:
        assert await uow.projects.get(a.company.id, a.project.id) == a.project
        assert await uow.projects.get(b.company.id, a.project.id) is None
        assert await uow.projects.get(a.company.id, new_id("Project")) is None
        assert await uow.projects.number_taken(a.company.id, "P-1")
        assert not await uow.projects.number_taken(a.company.id, "P-2")
        await uow.projects.add(ProjectRecord(new_id("Project"), a.company.id, "Second", "P-2", None, T0))
        assert await uow.projects.number_taken(a.company.id, "P-2")
        assert not await uow.projects.number_taken(b.company.id, "P-2")


async def test_a_project_number_is_unique_per_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.projects.add(ProjectRecord(new_id("Project"), a.company.id, "Again", "P-1", None, T0))
            await uow.commit()
    async with backend.uow() as uow:  # b's P-1 and a's P-1 live side by side (both made by make_world)
        assert await uow.projects.get(b.company.id, b.project.id) is not None


async def test_projects_set_erp_job(backend: Backend) -> None:
    w = await make_world(backend)
    async with backend.uow() as uow:
        await uow.projects.set_erp_job(w.project.id, "JOB-7")
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.projects.get(w.company.id, w.project.id) == replace(w.project, erp_job_id="JOB-7")


@pytest.mark.parametrize("kind", ["cost_codes", "cost_types"])
async def test_cost_lists(backend: Backend, kind: str) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    mine, theirs = (a.codes, b.codes) if kind == "cost_codes" else (a.types, b.types)
    async with backend.uow() as uow:
        repo: Any = uow.cost_codes if kind == "cost_codes" else uow.cost_types
        ids = [mine[1].id, theirs[0].id, mine[0].id, mine[1].id, "cc_missing"]
        found = await repo.get_many(a.company.id, ids)
        assert sorted(found, key=lambda r: r.id) == sorted(mine, key=lambda r: r.id)
        assert await repo.get_many(a.company.id, []) == []
        assert await repo.code_taken(a.company.id, mine[0].code)
        assert not await repo.code_taken(a.company.id, "nope")
        await repo.mark_synced([mine[0].id])
        await repo.mark_synced([])
        await uow.commit()
    async with backend.uow() as uow:
        repo = uow.cost_codes if kind == "cost_codes" else uow.cost_types
        found = await repo.get_many(a.company.id, [m.id for m in mine])
        synced = {r.id: r.erp_synced for r in found}
        assert synced == {mine[0].id: True, mine[1].id: False}
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:  # a code is unique per company
            duplicate = replace(mine[0], id=new_id("CostCode"))
            repo = uow.cost_codes if kind == "cost_codes" else uow.cost_types
            await repo.add(duplicate)
            await uow.commit()


# --- budgets --------------------------------------------------------------------------------------------


async def test_budgets_are_scoped_to_their_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    async with backend.uow() as uow:
        assert await uow.budgets.get_for_update(a.company.id, a.budget.id) == a.budget
        assert await uow.budgets.get_for_update(b.company.id, a.budget.id) is None
        assert await uow.budgets.get_for_update(None, a.budget.id) == a.budget  # the system acts across companies
        assert await uow.budgets.get_for_update(None, new_id("Budget")) is None
        assert await uow.budgets.of_project(a.company.id, a.project.id) == a.budget
        assert await uow.budgets.of_project(b.company.id, a.project.id) is None


async def test_one_budget_per_project(backend: Backend) -> None:
    w = await make_world(backend)
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.budgets.add(replace(w.budget, id=new_id("Budget")))
            await uow.commit()


async def test_budget_save_writes_the_state_and_moves_the_version(backend: Backend) -> None:
    w = await make_world(backend)
    request = new_request(w)
    async with backend.uow() as uow:
        await uow.requests.add(request, [])
        before = await uow.budgets.get_for_update(w.company.id, w.budget.id)
        assert before is not None
        after = state(
            before,
            locked=True,
            locked_at=T0,
            locked_by_id=w.user.id,
            export_status=ExportStatus.PENDING_ACCEPTANCE,
            last_request_id=request.id,
            request_count=1,
        )
        saved = await uow.budgets.save(before, after)
        await uow.commit()
    expected = replace(
        w.budget,
        locked=True,
        locked_at=T0,
        locked_by_id=w.user.id,
        version=2,
        export_status="PENDING_ACCEPTANCE",
        last_request_id=request.id,
        request_count=1,
    )
    assert saved == expected
    assert await budget_now(backend, w) == expected


async def test_budget_save_is_a_compare_and_set_on_the_version(backend: Backend) -> None:
    w = await make_world(backend)
    with pytest.raises(VersionConflictError) as refused:
        async with backend.uow() as uow:
            before = await uow.budgets.get_for_update(w.company.id, w.budget.id)
            assert before is not None
            first = await uow.budgets.save(before, state(before, locked=True))
            assert first.version == 2
            await uow.budgets.save(before, state(before, locked=False))  # the same old version again
    assert refused.value.code is ErrorCode.VERSION_CONFLICT
    assert refused.value.actual is None and refused.value.field is None
    assert await budget_now(backend, w) == w.budget  # and the unit of work was rolled back

    async with backend.uow() as uow:  # a stale record from another unit of work
        with pytest.raises(VersionConflictError):
            await uow.budgets.save(replace(w.budget, version=7), state(w.budget, locked=True))


async def test_a_change_locks_its_budget_by_id_or_through_a_line_with_the_users_access(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    line, theirs = new_line(a), new_line(b)
    await add_lines(backend, line, theirs)
    access = ProjectAccess(PermissionLevel.STANDARD, frozenset({Grant.LOCK_BUDGET}))
    async with backend.uow() as uow:
        await uow.access.grant(a.user.id, a.project.id, access)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.budgets.get_for_change(a.company.id, a.user.id, a.budget.id) == (a.budget, access)
        assert await uow.budgets.get_for_change(a.company.id, b.user.id, a.budget.id) == (a.budget, NO_ACCESS)
        assert await uow.budgets.get_for_change_of_line(a.company.id, a.user.id, line.id) == (a.budget, access)
        nowhere = [(b.company.id, a.budget.id, line.id), (a.company.id, b.budget.id, theirs.id),
                   (a.company.id, "bgt_\x00", "\ud800")]
        for company, budget_id, line_id in nowhere:
            assert await uow.budgets.get_for_change(company, a.user.id, budget_id) is None
            assert await uow.budgets.get_for_change_of_line(company, a.user.id, line_id) is None
        assert await uow.budgets.get_for_change_of_line(a.company.id, a.user.id, a.budget.id) is None  # not a line


async def test_a_budget_is_locked_through_a_line_only_before_the_event_counter(backend: Backend) -> None:
    w = await make_world(backend)
    line = new_line(w)
    await add_lines(backend, line)
    event = BudgetLocked(project_id=w.project.id, budget_id=w.budget.id, status=ExportStatus.NOT_SENT,
                         previous_status=ExportStatus.NOT_SENT, actor_id=w.user.id)
    async with backend.uow() as uow:
        await uow.events.append(w.company.id, event, T0)
        with pytest.raises(LockOrderError):  # which budget it would lock is known only once it has
            await uow.budgets.get_for_change_of_line(w.company.id, w.user.id, line.id)


async def test_save_with_event_saves_the_budget_and_appends_its_event_or_neither(backend: Backend) -> None:
    w = await make_world(backend)
    event = BudgetLocked(project_id=w.project.id, budget_id=w.budget.id, status=ExportStatus.NOT_SENT,
                         previous_status=ExportStatus.NOT_SENT, actor_id=w.user.id)
    woken: list[str] = []
    async with backend.uow(woken.append) as uow:
        before = await uow.budgets.get_for_update(w.company.id, w.budget.id)
        assert before is not None
        saved = await uow.save_with_event(before, state(before, locked=True, locked_at=T0), w.company.id, event, T0)
        with pytest.raises(LockOrderError):  # the event took the company's counter
            await uow.budgets.get_for_update(w.company.id, new_id("Budget"))
        assert [(e.sequence, e.event) for e in uow.events.take_appended()] == [(1, event)]
        await uow.commit()
    assert saved == replace(w.budget, locked=True, locked_at=T0, version=2) == await budget_now(backend, w)
    assert woken == [w.company.id] and [e.sequence for e in await backend.events(w.company.id)] == [1]
    with pytest.raises(VersionConflictError):
        async with backend.uow() as uow:  # a stale record: nothing saved, no event
            await uow.save_with_event(w.budget, state(w.budget, locked=False), w.company.id, event, T0)
    assert await budget_now(backend, w) == saved and len(await backend.events(w.company.id)) == 1


# --- line items -----------------------------------------------------------------------------------------


async def test_lines_carry_their_cost_code_and_type_and_keep_their_amounts_exact(backend: Backend) -> None:
    w = await make_world(backend)
    line = new_line(w, 1, 1, "1234.5")
    await add_lines(backend, line)
    async with backend.uow() as uow:
        found = await uow.line_items.get(w.company.id, line.id)
    assert found is not None
    assert asdict(found) == {
        **asdict(line),
        "original_amount": Decimal("1234.50"),
        "modifications_amount": Decimal("0.00"),
        "quantity": Decimal("2.5000"),
        "unit_cost": Decimal("40.0000"),
        "cost_code": "05-120",
        "cost_code_description": "Code 05-120",
        "cost_code_synced": False,
        "cost_type": "M",
        "cost_type_name": "Type M",
        "cost_type_synced": False,
    }
    assert str(found.original_amount) == "1234.50" and str(found.modifications_amount) == "0.00"


async def test_a_line_update_returns_the_line_as_stored_and_the_line_comes_with_its_budgets_totals(
    backend: Backend,
) -> None:
    w = await make_world(backend)
    line, other = new_line(w, 1, 1, "100"), new_line(w, 0, 0, "-0.50", position=2)
    await add_lines(backend, line, other)
    async with backend.uow() as uow:
        before = await uow.line_items.get(w.company.id, line.id)
        assert before is not None
        found = await uow.line_items.get_with_totals(w.company.id, line.id)
        assert found == (before, BudgetTotals(Decimal("99.50"), Decimal("0.00")))
        changes = {"original_amount": Decimal("7"), "quantity": Decimal("1.5"), "description": "framing"}
        updated = await uow.line_items.update(before, changes)
        assert await uow.line_items.update(updated, {}) == updated
        assert await uow.line_items.get_with_totals(w.company.id, line.id) == (
            updated, BudgetTotals(Decimal("6.50"), Decimal("0.00"))
        )
        await uow.commit()
    assert str(updated.original_amount) == "7.00" and str(updated.quantity) == "1.5000"
    async with backend.uow() as uow:
        assert await uow.line_items.get(w.company.id, line.id) == updated
        assert await uow.line_items.get_with_totals(w.company.id + "x", line.id) is None
        assert await uow.line_items.get_with_totals(w.company.id, "\ud800") is None


async def test_lines_are_scoped_to_their_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    line = new_line(a)
    await add_lines(backend, line)
    async with backend.uow() as uow:
        assert await uow.line_items.get(a.company.id, line.id) is not None
        assert await uow.line_items.get(b.company.id, line.id) is None
        assert await uow.line_items.get(a.company.id, new_id("BudgetLineItem")) is None


async def test_lines_of_a_budget_come_in_position_order(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    third, first, second = new_line(a, 0, 0, position=3), new_line(a, 0, 1, position=1), new_line(a, 1, 0, position=2)
    other = new_line(b)
    async with backend.uow() as uow:
        assert await uow.line_items.of_budget(a.budget.id) == []
        assert await uow.line_items.keys_of_budget(a.budget.id) == {}
        assert await uow.line_items.next_position(a.budget.id) == 1
        await uow.line_items.add_many([third, first])
        await uow.line_items.add_many([second, other])
        await uow.line_items.add_many([])
        await uow.commit()
    async with backend.uow() as uow:
        assert [r.id for r in await uow.line_items.of_budget(a.budget.id)] == [first.id, second.id, third.id]
        assert await uow.line_items.next_position(a.budget.id) == 4
        assert await uow.line_items.next_position(b.budget.id) == 2
        assert await uow.line_items.keys_of_budget(a.budget.id) == {
            (line.cost_code_id, line.cost_type_id, ""): line.id for line in (first, second, third)
        }


async def test_the_line_key_is_unique_and_a_sub_job_makes_another_key(backend: Backend) -> None:
    w = await make_world(backend)
    await add_lines(backend, new_line(w, position=1), new_line(w, position=2, sub_job="A"))
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.line_items.add_many([new_line(w, position=3)])
            await uow.commit()
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:  # within one batch too
            await uow.line_items.add_many([new_line(w, 1, 1, position=3), new_line(w, 1, 1, position=4)])
            await uow.commit()
    async with backend.uow() as uow:
        assert len(await uow.line_items.of_budget(w.budget.id)) == 2


async def test_a_line_must_name_existing_cost_codes(backend: Backend) -> None:
    w = await make_world(backend)
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.line_items.add_many([replace(new_line(w), cost_code_id=new_id("CostCode"))])
            await uow.commit()


async def test_update_many_changes_only_the_named_columns(backend: Backend) -> None:
    w = await make_world(backend)
    one, two, three = new_line(w, 0, 0, position=1), new_line(w, 0, 1, position=2), new_line(w, 1, 0, position=3)
    await add_lines(backend, one, two, three)
    async with backend.uow() as uow:
        await uow.line_items.update_many(
            {
                one.id: {"original_amount": Decimal("7.5"), "description": None},
                two.id: {"unit_of_measure": "M2", "quantity": Decimal("1.25"), "unit_cost": None},
                three.id: {},
            }
        )
        await uow.line_items.update_many({})
        await uow.commit()
    async with backend.uow() as uow:
        lines = {r.id: r for r in await uow.line_items.of_budget(w.budget.id)}
    assert (lines[one.id].original_amount, lines[one.id].description, lines[one.id].unit_of_measure) == (
        Decimal("7.50"),
        None,
        "EA",
    )
    assert str(lines[one.id].original_amount) == "7.50"
    assert (lines[two.id].unit_of_measure, lines[two.id].quantity, lines[two.id].unit_cost) == (
        "M2",
        Decimal("1.25"),
        None,
    )
    assert lines[two.id].original_amount == Decimal("100") and lines[two.id].description == "line 2"
    assert asdict(lines[three.id])["description"] == "line 3"
    with pytest.raises(ValueError, match="not updatable"):
        async with backend.uow() as uow:
            await uow.line_items.update_many({one.id: {"budget_id": w.budget.id}})


async def test_delete_a_line_and_no_line_that_something_names(backend: Backend) -> None:
    w = await make_world(backend)
    free, named = new_line(w, 0, 0, position=1), new_line(w, 0, 1, position=2)
    await add_lines(backend, free, named)
    async with backend.uow() as uow:
        await uow.modifications.add(modification(w, 1, None, named.id, "5"))
        await uow.line_items.delete(free.id)
        await uow.commit()
    async with backend.uow() as uow:
        assert [r.id for r in await uow.line_items.of_budget(w.budget.id)] == [named.id]
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.line_items.delete(named.id)
            await uow.commit()


async def test_add_to_modifications_moves_the_net_amount(backend: Backend) -> None:
    w = await make_world(backend)
    line = new_line(w)
    await add_lines(backend, line)
    async with backend.uow() as uow:
        await uow.line_items.add_to_modifications(line.id, Decimal("12.5"))
        await uow.line_items.add_to_modifications(line.id, Decimal("-20"))
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.line_items.get(w.company.id, line.id)
    assert found is not None and str(found.modifications_amount) == "-7.50"


async def test_totals_sum_the_lines_of_one_budget_inside_the_unit_of_work(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    x, y = new_line(a, 0, 0, "9999999999999.99", position=1), new_line(a, 0, 1, "-0.99", position=2)
    await add_lines(backend, x, y, new_line(b, amount="5.00"))
    async with backend.uow() as uow:
        assert await uow.line_items.totals(a.budget.id) == BudgetTotals(Decimal("9999999999999.00"), Decimal("0"))
        await uow.line_items.add_to_modifications(y.id, Decimal("-2.50"))
        await uow.line_items.add_many([new_line(a, 1, 0, "1.00", position=3)])
        # Its own uncommitted writes count: the totals a change is checked against.
        assert await uow.line_items.totals(a.budget.id) == BudgetTotals(
            Decimal("9999999999999.99") - Decimal("0.99") + Decimal("1.00"), Decimal("-2.50")
        )
        assert await uow.line_items.totals(b.budget.id) == BudgetTotals(Decimal("5.00"), Decimal("0"))
        assert await uow.line_items.totals(new_id("Budget")) == BudgetTotals(Decimal("0"), Decimal("0"))


@pytest.mark.parametrize("bad", ["bgt_\x00", "\ud800", "x" * 300])
async def test_an_id_no_row_can_hold_finds_nothing(backend: Backend, bad: str) -> None:
    """Ids a client sent (NUL, a lone surrogate, too long) are not found, never a driver error."""
    w = await make_world(backend)
    async with backend.uow() as uow:
        assert await uow.budgets.get_for_update(w.company.id, bad) is None
        assert await uow.budgets.get_for_update(None, w.budget.id + bad) is None
        assert await uow.projects.get(w.company.id, bad) is None
        assert await uow.line_items.get(w.company.id, bad) is None
        assert await uow.requests.get(None, bad) is None
        assert await uow.requests.by_export_id(bad) is None
        assert await uow.cost_codes.get_many(w.company.id, [bad, w.codes[0].id]) == [w.codes[0]]
        assert await uow.cost_types.get_many(w.company.id, [bad]) == []


@pytest.mark.parametrize(
    "change",
    ["description NUL", "description surrogate", "sub job NUL", "amount past 13 digits", "modifications past"],
)
async def test_what_neither_engine_can_store_is_refused_alike(backend: Backend, change: str) -> None:
    """The net below the input checks: the same UnstorableValueError on every backend, nothing written."""
    w = await make_world(backend)
    line = new_line(w, amount="9999999999999.99")
    await add_lines(backend, line)
    with pytest.raises(UnstorableValueError):
        async with backend.uow() as uow:
            if change == "description NUL":
                await uow.line_items.update_many({line.id: {"description": "a\x00b"}})
            elif change == "description surrogate":
                await uow.line_items.update_many({line.id: {"description": "a\udc80b"}})
            elif change == "sub job NUL":
                await uow.line_items.add_many([new_line(w, 1, 1, sub_job="\x00", position=2)])
            elif change == "amount past 13 digits":
                await uow.line_items.update_many({line.id: {"original_amount": Decimal("10000000000000.00")}})
            else:
                await uow.line_items.add_to_modifications(line.id, Decimal("9999999999999.99"))
                await uow.line_items.add_to_modifications(line.id, Decimal("9999999999999.99"))
            await uow.commit()
    async with backend.uow() as uow:
        assert await uow.line_items.of_budget(w.budget.id) == [await uow.line_items.get(w.company.id, line.id)]
        assert await uow.line_items.totals(w.budget.id) == BudgetTotals(Decimal("9999999999999.99"), Decimal("0"))


async def test_a_budget_is_locked_before_the_event_counter(backend: Backend) -> None:
    """persistence.unit_of_work.LockOrder: budgets first, the company's event counter last, in every unit."""
    a = await make_world(backend, "A")
    other = BudgetRecord(new_id("Budget"), a.company.id, new_id("Project"), False, None, None, 1, "NOT_SENT", None, 0)
    event = BudgetLocked(
        project_id=a.project.id,
        budget_id=a.budget.id,
        status=ExportStatus.NOT_SENT,
        previous_status=ExportStatus.NOT_SENT,
        actor_id=a.user.id,
    )
    async with backend.uow() as uow:
        assert await uow.budgets.get_for_update(a.company.id, a.budget.id) is not None
        await uow.events.append(a.company.id, event, T0)
        # The budget it holds may be read again; another budget after the counter is refused.
        assert await uow.budgets.get_for_update(a.company.id, a.budget.id) is not None
        with pytest.raises(LockOrderError):
            await uow.budgets.get_for_update(a.company.id, other.id)
        await uow.commit()
    async with backend.uow() as uow:  # a commit releases every lock: a new order starts
        assert await uow.budgets.get_for_update(a.company.id, a.budget.id) is not None


# --- modifications --------------------------------------------------------------------------------------


async def test_modifications_by_budget_number_and_line(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    x, y, z = new_line(a, 0, 0, position=1), new_line(a, 0, 1, position=2), new_line(a, 1, 0, position=3)
    await add_lines(backend, x, y, z)
    second, first = modification(a, 2, x.id, y.id, "10"), modification(a, 1, None, z.id, "2.5")
    async with backend.uow() as uow:
        assert await uow.modifications.next_number(a.budget.id) == 1
        await uow.modifications.add(second)
        await uow.modifications.add(first)
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.modifications.of_budget(a.budget.id)
        assert [m.id for m in stored] == [first.id, second.id]
        assert stored[0] == replace(first, amount=Decimal("2.50")) and str(stored[0].amount) == "2.50"
        assert await uow.modifications.of_budget(b.budget.id) == []
        assert await uow.modifications.next_number(a.budget.id) == 3
        assert await uow.modifications.next_number(b.budget.id) == 1
        touching = await uow.modifications.touching([x.id, y.id])
        assert [m.id for m in touching] == [second.id]  # once, though it touches both
        assert {m.id for m in await uow.modifications.touching([z.id, x.id])} == {first.id, second.id}
        assert await uow.modifications.touching([]) == []


@pytest.mark.parametrize("number,amount", [(1, "5"), (2, "0"), (2, "-1")])
async def test_a_modification_number_is_unique_and_its_amount_positive(
    backend: Backend, number: int, amount: str
) -> None:
    w = await make_world(backend)
    line = new_line(w)
    await add_lines(backend, line)
    async with backend.uow() as uow:
        await uow.modifications.add(modification(w, 1, None, line.id, "5"))
        await uow.commit()
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.modifications.add(modification(w, number, None, line.id, amount))
            await uow.commit()
    async with backend.uow() as uow:
        assert len(await uow.modifications.of_budget(w.budget.id)) == 1


# --- ERP requests and export entries --------------------------------------------------------------------


async def test_requests_are_scoped_and_found_by_export_id(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    line = new_line(a)
    await add_lines(backend, line)
    request = replace(new_request(a), total_original_budget=line.original_amount)
    async with backend.uow() as uow:
        await uow.requests.add(request, [request_line(request, line)])
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.requests.get(a.company.id, request.id) == request
        assert await uow.requests.get(b.company.id, request.id) is None
        assert await uow.requests.get(None, request.id) == request
        assert await uow.requests.get(None, new_id("ErpRequest")) is None
        assert await uow.requests.by_export_id(request.export_id) == request
        assert await uow.requests.by_export_id("bb-nope") is None


async def test_request_update_sets_columns(backend: Backend) -> None:
    w = await make_world(backend)
    request = new_request(w)
    async with backend.uow() as uow:
        await uow.requests.add(request, [])
        await uow.requests.update(request.id, status="EXPORTING", decided_at=T0, decided_by_id=w.user.id)
        await uow.requests.update(request.id, export_attempts=2, failure_message=None)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.requests.get(w.company.id, request.id) == replace(
            request, status="EXPORTING", decided_at=T0, decided_by_id=w.user.id, export_attempts=2
        )


@pytest.mark.parametrize("clash", ["export_id", "sequence"])
async def test_a_request_export_id_and_budget_sequence_are_unique(backend: Backend, clash: str) -> None:
    w = await make_world(backend)
    first = new_request(w, 1)
    async with backend.uow() as uow:
        await uow.requests.add(first, [])
        await uow.commit()
    second = new_request(w, 1 if clash == "sequence" else 2)
    if clash == "export_id":
        second = replace(second, export_id=first.export_id)
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.requests.add(second, [])
            await uow.commit()
    async with backend.uow() as uow:
        assert await uow.requests.get(w.company.id, second.id) is None


async def test_entries_carry_their_request_status(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    x, y = new_line(a, 0, 0, position=1), new_line(a, 0, 1, position=2)
    other = new_line(b)
    await add_lines(backend, x, y, other)
    request, theirs = new_request(a), new_request(b)
    ex, ey, eo = entry(request, x, "100"), entry(request, y, "-3.5"), entry(theirs, other)
    async with backend.uow() as uow:
        await uow.requests.add(request, [request_line(request, x, 1), request_line(request, y, 2)])
        await uow.requests.add(theirs, [])
        await uow.entries.add_many([ex, ey])
        await uow.entries.add_many([eo])
        await uow.entries.add_many([])
        await uow.requests.update(request.id, status="EXPORTING")
        await uow.commit()
    async with backend.uow() as uow:
        of_budget = sorted(await uow.entries.of_budget(a.budget.id), key=lambda e: e.id)
        of_lines = sorted(await uow.entries.of_lines([y.id, x.id, y.id]), key=lambda e: e.id)
        assert await uow.entries.of_lines([]) == []
    expected = sorted(
        [
            {**asdict(ex), "amount": Decimal("100.00"), "request_status": "EXPORTING"},
            {**asdict(ey), "amount": Decimal("-3.50"), "request_status": "EXPORTING"},
        ],
        key=lambda e: e["id"],
    )
    assert [asdict(e) for e in of_budget] == expected
    assert [asdict(e) for e in of_lines] == expected


# --- the job queue --------------------------------------------------------------------------------------


async def accepted(backend: Backend, w: World, sequence: int = 1, at: datetime = T0) -> str:
    """A request with a queued job; returns the request id."""
    request = new_request(w, sequence, status="EXPORTING")
    async with backend.uow() as uow:
        await uow.requests.add(request, [])
        await uow.jobs.enqueue(w.company.id, request.id, at)
        await uow.commit()
    return request.id


async def claim(backend: Backend, now: datetime, company_id: str | None = None) -> Any:
    async with backend.uow() as uow:
        job = await uow.jobs.claim(now, LEASE, MAX_ATTEMPTS, company_id)
        await uow.commit()
    return job


async def test_a_job_is_claimed_when_due_with_a_lease(backend: Backend) -> None:
    w = await make_world(backend)
    request_id = await accepted(backend, w)
    assert await claim(backend, T0 - timedelta(seconds=1)) is None  # not due yet
    job = await claim(backend, T0)
    assert (job.request_id, job.attempts) == (request_id, 1)
    async with backend.uow() as uow:
        stored = await uow.jobs.get(job.id)
        assert await uow.jobs.get(new_id("ExportJob")) is None
    assert stored is not None
    assert (stored.company_id, stored.status, stored.attempts) == (w.company.id, RUNNING, 1)
    assert (stored.lease_until, stored.updated_at, stored.created_at) == (T0 + LEASE, T0, T0)
    assert await claim(backend, T0 + LEASE) is None  # leased (the lease runs out after, not at, its end)
    again = await claim(backend, T0 + LEASE + timedelta(seconds=1))  # its worker died: claimed again
    assert (again.id, again.attempts) == (job.id, 2)


async def test_reclaims_after_crashes_never_count_attempts_past_the_maximum(backend: Backend) -> None:
    """Every claim counts an attempt, a claim after the worker died too; once the attempts are used up, a
    claim after another crash leases the job without counting one (exhausted), so attempts stay at the max."""
    w = await make_world(backend)
    await accepted(backend, w)
    now, attempts, ids = T0, [], set()
    for _ in range(3):  # the worker dies each time: the lease runs out and the job is claimed again
        async with backend.uow() as uow:
            job = await uow.jobs.claim(now, LEASE, 2)
            await uow.commit()
        assert job is not None
        attempts.append((job.attempts, job.exhausted))
        ids.add(job.id)
        now += LEASE + timedelta(seconds=1)
    assert attempts == [(1, False), (2, False), (2, True)]
    (job_id,) = ids
    async with backend.uow() as uow:
        stored = await uow.jobs.get(job_id)
    assert stored is not None and (stored.status, stored.attempts) == (RUNNING, 2)
    assert stored.lease_until == now - timedelta(seconds=1)  # leased to the claim that will fail it


async def test_a_claim_that_is_not_committed_leaves_the_job_due(backend: Backend) -> None:
    w = await make_world(backend)
    await accepted(backend, w)
    async with backend.uow() as uow:
        assert await uow.jobs.claim(T0, LEASE, MAX_ATTEMPTS) is not None
    job = await claim(backend, T0)
    assert job is not None and job.attempts == 1


async def test_claims_take_the_earliest_due_job_of_the_company_asked_for(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    late = await accepted(backend, a, 1, T0 + timedelta(seconds=5))
    early = await accepted(backend, a, 2, T0)
    theirs = await accepted(backend, b, 1, T0 - timedelta(seconds=5))
    now = T0 + timedelta(minutes=1)
    first = await claim(backend, now, a.company.id)
    second = await claim(backend, now, a.company.id)
    assert (first.request_id, second.request_id) == (early, late)
    assert await claim(backend, now, a.company.id) is None
    anyone = await claim(backend, now)
    assert anyone.request_id == theirs
    assert await claim(backend, now) is None


async def test_finish_and_requeue(backend: Backend) -> None:
    w = await make_world(backend)
    await accepted(backend, w)
    job = await claim(backend, T0)
    later = T0 + timedelta(seconds=10)
    async with backend.uow() as uow:
        await uow.jobs.requeue(job.id, later, T0 + timedelta(minutes=1), "connector timed out")
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert (stored.status, stored.lease_until, stored.updated_at) == (QUEUED, None, later)
    assert (stored.next_attempt_at, stored.last_error, stored.attempts) == (
        T0 + timedelta(minutes=1),
        "connector timed out",
        1,
    )
    assert await claim(backend, T0 + timedelta(seconds=59)) is None
    job = await claim(backend, T0 + timedelta(minutes=1))
    assert job.attempts == 2
    async with backend.uow() as uow:
        await uow.jobs.finish(job.id, FAILED, T0 + timedelta(minutes=2), "refused")
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert (stored.status, stored.lease_until, stored.last_error) == (FAILED, None, "refused")
    assert await claim(backend, T0 + timedelta(hours=1)) is None
    async with backend.uow() as uow:
        await uow.jobs.finish(job.id, DONE, T0 + timedelta(minutes=3))  # no error: the last one is cleared
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.jobs.get(job.id)
    assert stored is not None and (stored.status, stored.last_error) == (DONE, None)


async def test_overdue_callbacks_and_closing_them(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    mine, theirs = await accepted(backend, a), await accepted(backend, b)
    for company_id in (a.company.id, b.company.id):
        job = await claim(backend, T0, company_id)
        async with backend.uow() as uow:
            await uow.jobs.finish(job.id, AWAITING_CALLBACK, T0)
            await uow.commit()
    wait = timedelta(minutes=10)
    async with backend.uow() as uow:
        assert await uow.jobs.overdue_callbacks(T0 + wait, wait, None) == []  # overdue after, not at, the wait
        overdue = await uow.jobs.overdue_callbacks(T0 + wait + timedelta(seconds=1), wait, None)
        assert sorted(j.request_id for j in overdue) == sorted([mine, theirs])
        assert all(j.attempts == 1 for j in overdue)
        only_a = await uow.jobs.overdue_callbacks(T0 + 2 * wait, wait, a.company.id)
        assert [j.request_id for j in only_a] == [mine]
        await uow.jobs.close_awaiting_callback(mine, T0 + wait)
        await uow.commit()
    assert await claim(backend, T0 + wait) is None  # awaiting a callback is not due
    async with backend.uow() as uow:
        overdue = await uow.jobs.overdue_callbacks(T0 + 3 * wait, wait, None)
        closed = await uow.jobs.get(only_a[0].id)
    assert [j.request_id for j in overdue] == [theirs]
    assert closed is not None and (closed.status, closed.updated_at) == (DONE, T0 + wait)


# --- the event log --------------------------------------------------------------------------------------


async def test_events_get_a_gapless_sequence_per_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")

    def created(w: World, n: int) -> LineItemCreated:
        return LineItemCreated(
            project_id=w.project.id,
            budget_id=w.budget.id,
            status=ExportStatus.NOT_SENT,
            previous_status=ExportStatus.NOT_SENT,
            actor_id=w.user.id,
            line_item_id=f"li-{n}",
        )

    async with backend.uow() as uow:
        assert [await uow.events.append(a.company.id, created(a, n), T0) for n in (1, 2)] == [1, 2]
        assert await uow.events.append(b.company.id, created(b, 1), T0) == 1
        await uow.commit()
    async with backend.uow() as uow:  # rolled back: its number is handed out again
        assert await uow.events.append(a.company.id, created(a, 99), T0) == 3
    async with backend.uow() as uow:
        assert await uow.events.append(a.company.id, created(a, 3), T0 + timedelta(seconds=1)) == 3
        company = await uow.companies.get(a.company.id)
        await uow.commit()
    assert company is not None and company.event_sequence == 3
    logged = await backend.events(a.company.id)
    assert [(e.sequence, e.data) for e in logged] == [(n, {"lineItemId": f"li-{n}"}) for n in (1, 2, 3)]
    assert [e.sequence for e in await backend.events(b.company.id)] == [1]
    assert len({e.id for e in logged}) == 3


async def test_an_event_is_stored_with_its_type_statuses_and_data(backend: Backend) -> None:
    w = await make_world(backend)
    request = new_request(w)
    event = ExportAccepted(
        project_id=w.project.id,
        budget_id=w.budget.id,
        erp_request_id=request.id,
        previous_status=ExportStatus.PENDING_ACCEPTANCE,
        status=ExportStatus.EXPORTING,
        actor_id=w.user.id,
        reason="fine",
    )
    async with backend.uow() as uow:
        await uow.requests.add(request, [])
        await uow.events.append(w.company.id, event, T0)
        await uow.commit()
    [logged] = await backend.events(w.company.id)
    assert replace(logged, id=0) == EventRecord(
        id=0,
        company_id=w.company.id,
        sequence=1,
        occurred_at=T0,
        type="ExportAccepted",
        actor_id=w.user.id,
        project_id=w.project.id,
        budget_id=w.budget.id,
        erp_request_id=request.id,
        previous_status="PENDING_ACCEPTANCE",
        status="EXPORTING",
        reason="fine",
        data={},
    )


# --- idempotency ----------------------------------------------------------------------------------------


async def test_idempotency_results_are_kept_per_user_operation_and_key(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    async with backend.uow() as uow:
        assert await uow.idempotency.get(a.user.id, "lockBudget", "k1") is None
        await uow.idempotency.put(a.user.id, "lockBudget", "k1", "hash-1", {"budget": a.budget.id}, T0)
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.idempotency.get(a.user.id, "lockBudget", "k1")
        assert stored is not None and (stored.input_hash, stored.result) == ("hash-1", {"budget": a.budget.id})
        assert await uow.idempotency.get(b.user.id, "lockBudget", "k1") is None
        assert await uow.idempotency.get(a.user.id, "unlockBudget", "k1") is None
        assert await uow.idempotency.get(a.user.id, "lockBudget", "k2") is None
        await uow.idempotency.put(b.user.id, "lockBudget", "k1", "hash-2", {}, T0)  # another user's key
        await uow.commit()
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.idempotency.put(a.user.id, "lockBudget", "k1", "hash-3", {}, T0)
            await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.idempotency.get(a.user.id, "lockBudget", "k1")
    assert stored is not None and stored.input_hash == "hash-1"


async def test_a_violation_is_a_concurrent_change_already_inside_the_unit_of_work(backend: Backend) -> None:
    """A key violation is a ConcurrentChangeError as soon as the statement fails, in every implementation."""
    w = await make_world(backend)
    caught: list[BaseException] = []
    async with backend.uow() as uow:
        try:
            await uow.projects.add(ProjectRecord(new_id("Project"), w.company.id, "Again", "P-1", None, T0))
        except Exception as exc:
            caught.append(exc)
    assert [type(e) for e in caught] == [ConcurrentChangeError]


# --- notifications: the outbox and what deciding notifications reads (issue 11) ----------------------------


def notification(w: World, key: str, *, at: datetime = T0, request_id: str | None = None) -> NewNotification:
    return NewNotification(
        id=new_id("Notification"),
        company_id=w.company.id,
        kind="REQUEST_ARRIVED",
        channel="EMAIL",
        recipient_id=w.user.id,
        address=w.user.email,
        erp_request_id=request_id,
        dedupe_key=key,
        payload={"request": {"totalOriginal": "1238950.00"}, "reason": "Ünïcode & <tags>"},
        created_at=at,
    )


async def add_notifications(backend: Backend, *rows: NewNotification) -> None:
    async with backend.uow() as uow:
        await uow.notifications.add_many(rows)
        await uow.commit()


async def claim_notification(backend: Backend, now: datetime, company_id: str | None = None) -> Any:
    async with backend.uow() as uow:
        row = await uow.notifications.claim(now, LEASE, company_id)
        await uow.commit()
    return row


async def test_outbox_rows_are_stored_pending_and_keys_are_unique(backend: Backend) -> None:
    w = await make_world(backend)
    request = new_request(w)
    async with backend.uow() as uow:
        await uow.requests.add(request, [])
        await uow.commit()
    first = notification(w, "k1", request_id=request.id)
    await add_notifications(backend, first, notification(w, "k2", at=T0 + timedelta(seconds=1)))
    async with backend.uow() as uow:
        stored = await uow.notifications.get(first.id)
        listed = await uow.notifications.of_company(w.company.id)
        assert await uow.notifications.taken_keys(["k1", "k3", "k2", "k1"]) == {"k1", "k2"}
        assert await uow.notifications.get(new_id("Notification")) is None
    assert stored is not None
    assert (stored.status, stored.attempts, stored.next_attempt_at, stored.created_at) == ("PENDING", 0, T0, T0)
    assert (stored.kind, stored.channel, stored.recipient_id, stored.address, stored.erp_request_id) == (
        "REQUEST_ARRIVED",
        "EMAIL",
        w.user.id,
        w.user.email,
        request.id,
    )
    assert stored.payload == {"request": {"totalOriginal": "1238950.00"}, "reason": "Ünïcode & <tags>"}
    assert (stored.lease_until, stored.handed_over_at, stored.message_id, stored.sent_at) == (None,) * 4
    assert [r.dedupe_key for r in listed] == ["k1", "k2"]
    with pytest.raises(ConcurrentChangeError):
        await add_notifications(backend, notification(w, "k1"))
    missing_user = replace(notification(w, "k9"), recipient_id=new_id("User"))
    with pytest.raises(ConcurrentChangeError):
        await add_notifications(backend, missing_user)


async def test_outbox_claims_are_due_leased_ordered_and_per_company(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    late, early = notification(a, "late", at=T0 + timedelta(seconds=5)), notification(a, "early")
    theirs = notification(b, "theirs", at=T0 - timedelta(seconds=5))
    await add_notifications(backend, late, early, theirs)
    assert await claim_notification(backend, T0 - timedelta(seconds=10)) is None  # none due yet
    now = T0 + timedelta(minutes=1)
    first = await claim_notification(backend, now, a.company.id)
    assert (first.id, first.status, first.attempts, first.lease_until) == (early.id, "SENDING", 1, now + LEASE)
    assert (await claim_notification(backend, now, a.company.id)).id == late.id
    assert await claim_notification(backend, now, a.company.id) is None
    assert (await claim_notification(backend, now)).id == theirs.id
    assert await claim_notification(backend, now + LEASE) is None  # leased until after, not at, its end
    again = await claim_notification(backend, now + LEASE + timedelta(seconds=1), a.company.id)
    assert again.attempts == 2 and again.id in {early.id, late.id}  # its worker died: claimed again
    async with backend.uow() as uow:  # a claim that is not committed leaves the row as it was
        assert await uow.notifications.claim(now + LEASE * 3, LEASE, b.company.id) is not None
    assert (await claim_notification(backend, now + LEASE * 3, b.company.id)).attempts == 2


async def test_outbox_hand_over_finish_and_retry(backend: Backend) -> None:
    w = await make_world(backend)
    row = notification(w, "k1")
    await add_notifications(backend, row)
    await claim_notification(backend, T0)
    later = T0 + timedelta(seconds=3)
    async with backend.uow() as uow:
        await uow.notifications.hand_over(row.id, T0, "<ntf_1@example.com>")
        await uow.commit()
    async with backend.uow() as uow:
        await uow.notifications.hand_over(row.id, T0, "<other@example.com>")  # the first Message-ID stays
        await uow.notifications.retry(row.id, later, later + timedelta(seconds=30), "421 try again later")
        await uow.commit()
    async with backend.uow() as uow:
        retried = await uow.notifications.get(row.id)
    assert retried is not None
    assert (retried.status, retried.lease_until, retried.handed_over_at, retried.message_id) == (
        "PENDING",
        None,
        None,
        "<ntf_1@example.com>",
    )
    assert (retried.next_attempt_at, retried.last_error, retried.updated_at) == (
        later + timedelta(seconds=30),
        "421 try again later",
        later,
    )
    assert await claim_notification(backend, later + timedelta(seconds=29)) is None
    claimed = await claim_notification(backend, later + timedelta(seconds=30))
    assert claimed.attempts == 2 and claimed.handed_over_at is None
    async with backend.uow() as uow:
        await uow.notifications.finish(row.id, OutboxStatus.SENT, later + timedelta(minutes=1))
        await uow.commit()
    async with backend.uow() as uow:
        sent = await uow.notifications.get(row.id)
    assert sent is not None
    assert (sent.status, sent.sent_at, sent.lease_until) == ("SENT", later + timedelta(minutes=1), None)
    assert sent.last_error == "421 try again later"  # finishing without an error keeps the history
    async with backend.uow() as uow:
        await uow.notifications.finish(row.id, OutboxStatus.FAILED, later, "550 no such user")
        await uow.commit()
    async with backend.uow() as uow:
        failed = await uow.notifications.get(row.id)
    assert failed is not None and (failed.status, failed.last_error) == ("FAILED", "550 no such user")


async def test_people_come_with_the_kinds_they_turned_off(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    joined = T0 + timedelta(seconds=1)
    approver = UserRecord(new_id("User"), a.company.id, "ap@example.com", "Alex", False, True, "STANDARD", joined)
    await backend.put(approver)
    async with backend.uow() as uow:
        await uow.notification_context.set_preferences(approver.id, {"DAILY_DIGEST": False, "REQUEST_ARRIVED": False})
        await uow.notification_context.set_preferences(approver.id, {"REQUEST_ARRIVED": True, "EXPORT_FAILED": False})
        await uow.notification_context.set_preferences(approver.id, {})
        await uow.commit()
    async with backend.uow() as uow:
        people = await uow.notification_context.people(a.company.id)
        theirs = await uow.notification_context.people(b.company.id)
        assert await uow.notification_context.opted_out(approver.id) == {"DAILY_DIGEST", "EXPORT_FAILED"}
        assert await uow.notification_context.opted_out(a.user.id) == frozenset()
    assert [(p.id, p.email, p.name, p.is_accounting_approver, p.erp_permission) for p in people] == [
        (a.user.id, a.user.email, a.user.name, False, "NONE"),
        (approver.id, "ap@example.com", "Alex", True, "STANDARD"),
    ]
    assert [p.opted_out for p in people] == [frozenset(), {"DAILY_DIGEST", "EXPORT_FAILED"}]
    assert [p.id for p in theirs] == [b.user.id]
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.notification_context.set_preferences(new_id("User"), {"DAILY_DIGEST": False})
            await uow.commit()


async def test_a_company_chat_webhook_is_set_replaced_and_removed(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    async with backend.uow() as uow:
        await uow.notification_context.set_chat_webhook(a.company.id, "https://hooks.example.com/1", False, T0)
        await uow.notification_context.set_chat_webhook(a.company.id, "http://10.0.0.5/hook", True, T0)
        await uow.commit()
    async with backend.uow() as uow:
        hook = await uow.notification_context.chat_webhook(a.company.id)
        assert await uow.notification_context.chat_webhook(b.company.id) is None
    assert hook is not None
    assert (hook.company_id, hook.url, hook.allow_private_network, hook.updated_at) == (
        a.company.id,
        "http://10.0.0.5/hook",
        True,
        T0,
    )
    async with backend.uow() as uow:
        await uow.notification_context.set_chat_webhook(a.company.id, None, False, T0)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.notification_context.chat_webhook(a.company.id) is None
    with pytest.raises(ConcurrentChangeError):
        async with backend.uow() as uow:
            await uow.notification_context.set_chat_webhook(new_id("Company"), "https://x.test", False, T0)
            await uow.commit()


async def test_notification_reads_of_requests(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    first, second = new_request(a, 1, status="AWAITING_POSTING"), new_request(a, 2, status="PENDING_ACCEPTANCE")
    first = replace(first, exported_at=T0 + timedelta(hours=1))
    second = replace(second, sent_at=T0 + timedelta(hours=2))
    theirs = replace(new_request(b, 1, status="AWAITING_POSTING"), exported_at=T0 + timedelta(hours=3))
    line, other = new_line(a, position=1), new_line(a, 1, position=2)
    await add_lines(backend, line, other)
    async with backend.uow() as uow:
        await uow.requests.add(first, [request_line(first, other, 2), request_line(first, line, 1)])
        await uow.requests.add(second, [])
        await uow.requests.add(theirs, [])
        await uow.commit()
    async with backend.uow() as uow:
        lines = await uow.notification_context.request_lines(first.id)
        assert await uow.notification_context.request_lines(second.id) == []
        waiting = await uow.notification_context.requests_in(["AWAITING_POSTING", "PENDING_ACCEPTANCE"])
        ours = await uow.notification_context.requests_in(["AWAITING_POSTING", "PENDING_ACCEPTANCE"], a.company.id)
        overdue = await uow.notification_context.requests_in(
            ["AWAITING_POSTING"], exported_before=T0 + timedelta(hours=2)
        )
        assert await uow.notification_context.requests_in(["SYNCED"]) == []
    assert [(r.request_id, r.position, r.line_item_id) for r in lines] == [
        (first.id, 1, line.id),
        (first.id, 2, other.id),
    ]
    assert lines[0].original_budget == Decimal("100.00")
    assert [r.id for r in ours] == [first.id, second.id]  # in the order they were sent
    assert {r.id for r in waiting} == {first.id, second.id, theirs.id}
    assert [r.id for r in overdue] == [first.id]


async def test_outbox_rows_with_nowhere_to_go_are_closed_at_once(backend: Backend) -> None:
    a, b = await make_world(backend, "A"), await make_world(backend, "B")
    email, later = notification(a, "due"), notification(a, "later", at=T0 + timedelta(minutes=5))
    chat = replace(notification(a, "chat"), channel="CHAT", recipient_id=None, address=None)
    claimed, theirs = notification(a, "claimed", at=T0 - timedelta(seconds=1)), notification(b, "theirs")
    await add_notifications(backend, email, later, chat, claimed, theirs)
    async with backend.uow() as uow:
        taken = await uow.notifications.claim(T0 - timedelta(seconds=1), LEASE, a.company.id)  # being sent
        await uow.commit()
    assert taken is not None and taken.id == claimed.id
    async with backend.uow() as uow:
        closed = await uow.notifications.close_due(T0, "EMAIL", OutboxStatus.NOT_SENT_NO_SMTP, "no SMTP", a.company.id)
        await uow.commit()
    async with backend.uow() as uow:
        rows = {r.dedupe_key: r for r in await uow.notifications.of_company(a.company.id)}
        other = await uow.notifications.get(theirs.id)
    assert closed == 1
    assert (rows["due"].status, rows["due"].last_error, rows["due"].updated_at) == ("NOT_SENT_NO_SMTP", "no SMTP", T0)
    assert rows["claimed"].status == "SENDING"
    assert (rows["later"].status, rows["chat"].status) == ("PENDING", "PENDING")
    assert other is not None and other.status == "PENDING"
