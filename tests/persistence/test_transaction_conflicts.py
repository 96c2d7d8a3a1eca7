"""Deadlocks and serialisation failures on PostgreSQL: the SQL unit of work turns them into
TransactionConflictError and `run_unit` runs the whole unit again in a fresh unit of work, after-commit
callbacks once; and mixed concurrent writers of one company (mutations and the export worker, all taking the
company's event counter) complete without "Unexpected error.".

PostgreSQL only: SQLite has one writer at a time (the database's write lock), so neither can happen there.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from app.export_worker import ExportWorker
from domain.events import BudgetLocked
from domain.status import ExportStatus
from persistence.database import Database
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers.context import Services
from resolvers.service import run_unit
from tests.support import Tenant, fresh_database, in_ci, make_services, make_tenant

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BOUND = 60  # seconds: a hang fails the test instead of waiting for the suite's timeout


@pytest.fixture
async def services(postgres_persistence_url: str | OSError) -> AsyncIterator[Services]:
    if isinstance(postgres_persistence_url, OSError):
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {postgres_persistence_url}")
        pytest.skip(f"PostgreSQL not reachable ({postgres_persistence_url}); CI runs these")
    db: Database = await fresh_database(postgres_persistence_url)
    built = make_services(db)
    try:
        yield built
    finally:
        await built.connectors.aclose()
        await db.dispose()


async def second_budget(tenant: Tenant) -> tuple[str, str]:
    data = await tenant.ok(
        "admin",
        "mutation($i: CreateProjectInput!) { createProject(input: $i) "
        "{ project { id budget { id } } userErrors { code } } }",
        i={"name": "Second", "number": f"S-{tenant.company_id[-6:]}"},
    )
    project = data["createProject"]["project"]
    return project["id"], project["budget"]["id"]


def locked_event(project_id: str, budget_id: str) -> BudgetLocked:
    return BudgetLocked(project_id=project_id, budget_id=budget_id, status=ExportStatus.NOT_SENT)


async def company_sequences(services: Services, company_id: str) -> list[int]:
    async with services.db.read() as conn:
        rows = await conn.execute(
            text("SELECT sequence FROM events WHERE company_id = :c ORDER BY sequence"), {"c": company_id}
        )
        return [int(r[0]) for r in rows]


async def test_a_deadlock_is_broken_by_the_database_and_the_victim_runs_again(services: Services) -> None:
    """Two units lock two budgets in opposite orders and wait for each other: PostgreSQL aborts one
    (deadlock_detected), which runs again whole, in a fresh unit of work; both commit, callbacks run once."""
    tenant = await make_tenant(services)
    other_project, other_budget = await second_budget(tenant)
    budgets = {"x": (tenant.project_id, tenant.budget_id), "y": (other_project, other_budget)}
    holds = {"x": asyncio.Event(), "y": asyncio.Event()}
    attempts: Counter[str] = Counter()
    committed: list[str] = []

    def unit(mine: str, theirs: str) -> Any:
        async def body(uow: AbstractUnitOfWork) -> str:
            attempts[mine] += 1
            assert await uow.budgets.get_for_update(tenant.company_id, budgets[mine][1]) is not None
            if attempts[mine] == 1:  # the first attempts meet in the middle: each holds what the other wants
                holds[mine].set()
                await holds[theirs].wait()
            assert await uow.budgets.get_for_update(tenant.company_id, budgets[theirs][1]) is not None
            await uow.events.append(tenant.company_id, locked_event(*budgets[mine]), T0)
            uow.after_commit(lambda: committed.append(mine))
            return mine

        return body

    done = await asyncio.wait_for(
        asyncio.gather(run_unit(services, unit("x", "y")), run_unit(services, unit("y", "x"))), BOUND
    )
    assert list(done) == ["x", "y"]
    assert sorted(attempts.values()) == [1, 2]  # the victim ran once more; the survivor once
    assert sorted(committed) == ["x", "y"]  # each unit's after-commit callback ran once
    assert await company_sequences(services, tenant.company_id) == [1, 2]  # nothing of the aborted attempt


async def test_a_serialisation_failure_runs_the_unit_again(services: Services) -> None:
    """Two SERIALIZABLE units read the company's counter and then both take it: the second is refused
    (serialization_failure) once the first commits, and succeeds when run again."""
    tenant = await make_tenant(services)
    other_project, other_budget = await second_budget(tenant)
    budgets = {"x": (tenant.project_id, tenant.budget_id), "y": (other_project, other_budget)}
    read = {"x": asyncio.Event(), "y": asyncio.Event()}
    attempts: Counter[str] = Counter()

    def unit(mine: str, theirs: str) -> Any:
        async def body(uow: AbstractUnitOfWork) -> int:
            attempts[mine] += 1
            await uow.connection.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))  # type: ignore[attr-defined]
            assert await uow.budgets.get_for_update(tenant.company_id, budgets[mine][1]) is not None
            assert await uow.companies.get(tenant.company_id) is not None  # the snapshot now includes the row
            if attempts[mine] == 1:
                read[mine].set()
                await read[theirs].wait()
            return await uow.events.append(tenant.company_id, locked_event(*budgets[mine]), T0)

        return body

    sequences = await asyncio.wait_for(
        asyncio.gather(run_unit(services, unit("x", "y")), run_unit(services, unit("y", "x"))), BOUND
    )
    assert sorted(sequences) == [1, 2]
    assert sorted(attempts.values()) == [1, 2]
    assert await company_sequences(services, tenant.company_id) == [1, 2]


# --- mixed concurrency on one company ---------------------------------------------------------------------

ERRORS = "userErrors { code message field }"


def mutation(name: str, signature: str, arguments: str, extra: str = "") -> str:
    return f"mutation({signature}) {{ {name}({arguments}) {{ {extra} {ERRORS} }} }}"


LOCK = mutation("lockBudget", "$i: BudgetActionInput!", "input: $i")
UNLOCK = mutation("unlockBudget", "$i: BudgetActionInput!", "input: $i")
SEND = mutation("sendToERP", "$i: BudgetActionInput!", "input: $i", "erpRequest { id }")
DECIDE = mutation("decideExport", "$i: DecideExportInput!", "input: $i")
CONFIRM = mutation("confirmJobCostPosting", "$i: ErpRequestActionInput!", "input: $i")
UPDATE = mutation("updateBudgetLineItem", "$i: UpdateBudgetLineItemInput!", "input: $i")
CREATE_LINE = mutation("createBudgetLineItem", "$i: CreateBudgetLineItemInput!", "input: $i", "lineItem { id }")
MODIFY = mutation("createBudgetModification", "$i: CreateBudgetModificationInput!", "input: $i")
SYNC = mutation("syncProjectToERP", "$p: ID!", "projectId: $p")
STATUS = "query($id: ID!) { erpRequest(id: $id) { status } }"


class Workflow:
    """One company's budgets, each driven through lock -> modification -> send -> accept -> (worker exports)
    -> confirm posting -> unlock -> line edits by its own task, while the worker runs beside them."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.worker_passed = asyncio.Condition()
        self.answers: list[dict[str, Any]] = []

    async def run(self, role: str, query: str, **variables: Any) -> dict[str, Any]:
        result = await self.tenant.execute(role, query, **variables)
        assert result.errors is None, result.errors  # "Unexpected error." would be a top-level error
        assert result.data is not None
        (payload,) = result.data.values()
        self.answers.append(payload)
        assert payload["userErrors"] == [], (query, payload["userErrors"])
        data: dict[str, Any] = payload
        return data

    async def line(self, budget_id: str, code: str, kind: str, amount: str) -> str:
        item = {"costCodeId": self.tenant.cost_codes[code], "costTypeId": self.tenant.cost_types[kind],
                "originalAmount": amount}
        created = await self.run("admin", CREATE_LINE, i={"budgetId": budget_id, "item": item})
        line_id: str = created["lineItem"]["id"]
        return line_id

    async def exported(self, request_id: str) -> None:
        """Wait, on the worker's passes, until the request's entries are written (AWAITING_POSTING)."""
        async with self.worker_passed:
            while True:
                result = await self.tenant.execute("admin", STATUS, id=request_id)
                assert result.errors is None and result.data is not None
                status = result.data["erpRequest"]["status"]
                assert status in ("PENDING_ACCEPTANCE", "EXPORTING", "AWAITING_POSTING"), status
                if status == "AWAITING_POSTING":
                    return
                await self.worker_passed.wait()

    async def budget(self, project_id: str, budget_id: str, rounds: int) -> None:
        first = await self.line(budget_id, "03-300", "L", "100.00")
        second = await self.line(budget_id, "05-120", "M", "200.00")
        for n in range(rounds):
            await self.run("admin", SYNC, p=project_id)
            await self.run("admin", LOCK, i={"budgetId": budget_id})
            await self.run("admin", MODIFY, i={"budgetId": budget_id, "fromLineItemId": first,
                                               "toLineItemId": second, "amount": "1.00"})
            sent = await self.run("admin", SEND, i={"budgetId": budget_id})
            request_id = sent["erpRequest"]["id"]
            await self.run("approver", DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})
            await self.exported(request_id)
            await self.run("integrator", CONFIRM, i={"erpRequestId": request_id})
            await self.run("admin", UNLOCK, i={"budgetId": budget_id})
            await self.run("admin", UPDATE, i={"id": first, "originalAmount": f"{100 + n}.00"})
            if n == 0:
                await self.line(budget_id, "09-900", "S", "0.00")

    async def worker(self, services: Services, stop: asyncio.Event) -> int:
        worker = ExportWorker(services, poll_seconds=0.01, timeout_seconds=10)
        exported = 0
        while not stop.is_set():
            exported += await worker.run_once()
            async with self.worker_passed:
                self.worker_passed.notify_all()
            await asyncio.sleep(0)  # let the mutations run between passes
        return exported


async def test_mixed_concurrent_writers_of_one_company_never_reach_a_masked_failure(services: Services) -> None:
    tenant = await make_tenant(services)
    budgets = [(tenant.project_id, tenant.budget_id)]
    for n in range(3):
        data = await tenant.ok(
            "admin",
            "mutation($i: CreateProjectInput!) { createProject(input: $i) "
            "{ project { id budget { id } } userErrors { code } } }",
            i={"name": f"Tower {n}", "number": f"T-{n}"},
        )
        project = data["createProject"]["project"]
        budgets.append((project["id"], project["budget"]["id"]))
    flow = Workflow(tenant)
    stop = asyncio.Event()
    rounds = 3

    async def all_budgets() -> None:
        try:
            await asyncio.gather(*(flow.budget(project, budget, rounds) for project, budget in budgets))
        finally:
            stop.set()

    _, exported = await asyncio.wait_for(asyncio.gather(all_budgets(), flow.worker(services, stop)), BOUND * 2)
    assert exported == len(budgets) * rounds
    # 4 budgets x (2 lines + 1 extra, and per round: sync, lock, modification, send, accept, export written,
    # posted, unlock, line update), each event numbered once, in one gapless sequence for the company.
    sequences = await company_sequences(services, tenant.company_id)
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == len(budgets) * (3 + rounds * 9)
