"""Budgets in every state of the workflow, built through the schema, for the SPA-facing read tests
(viewerCan, the queue's filter and order, keyset paging). Every company exports through a scripted
connector, and the clock is the test's: each send and decision happens at the time the test sets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry.types import ExecutionResult

from app import admin
from app.export_worker import ExportWorker
from domain.permissions import PermissionLevel
from erp.base import ConnectorError
from resolvers.context import Context, Services
from resolvers.export_pipeline import RetryPolicy
from schema.build import schema
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry
from tests.support import ROLES, Tenant, make_tenant

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)


ALL_ROLES = list(ROLES)

PROJECT = """mutation($n: String!) { createProject(input: {name: "Case", number: $n}) {
  project { id budget { id } } userErrors { code } } }"""
ADD_LINE = """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) {
  lineItem { id } userErrors { code } } }"""
SYNC = "mutation($p: ID!) { syncProjectToERP(projectId: $p) { userErrors { code } } }"
LOCK = "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { userErrors { code } } }"
UNLOCK = "mutation($b: ID!) { unlockBudget(input: {budgetId: $b}) { userErrors { code } } }"
SEND = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id } userErrors { code } } }"
RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { erpRequest { id } userErrors { code } } }"
UPDATE = """mutation($l: ID!) { updateBudgetLineItem(input: {id: $l, description: "changed"}) {
  userErrors { code } } }"""
MODIFY = """mutation($b: ID!, $f: ID!, $t: ID!) { createBudgetModification(input: {budgetId: $b, fromLineItemId: $f,
  toLineItemId: $t, amount: "1.00"}) { userErrors { code } } }"""
DECIDE = """mutation($r: ID!, $d: ErpDecision!, $why: String) {
  decideExport(input: {erpRequestId: $r, decision: $d, reason: $why}) { erpRequest { id } userErrors { code } } }"""
RETRY = "mutation($r: ID!) { retryExport(input: {erpRequestId: $r}) { erpRequest { id } userErrors { code } } }"
CONFIRM = """mutation($r: ID!) { confirmJobCostPosting(input: {erpRequestId: $r}) {
  erpRequest { id } userErrors { code } } }"""


@dataclass
class Case:
    """One budget brought into a state, with the lines and the latest request the actions act on."""

    budget_id: str
    project_id: str
    lines: list[str]
    request_id: str | None = None


@dataclass
class World:
    services: Services
    tenant: Tenant
    connector: ScriptedConnector
    clock: Clock
    projects: int = 0

    def worker(self) -> ExportWorker:
        policy = RetryPolicy(max_attempts=1, base_seconds=0.0, lease_seconds=60)
        return ExportWorker(self.services, timeout_seconds=2, policy=policy, company_id=self.tenant.company_id)


async def new_world(services: Services) -> World:
    """A company of its own, exporting through a scripted connector, on the test's clock."""
    connector, clock = ScriptedConnector(), Clock()
    registry = SingleConnectorRegistry(connector)
    scripted = Services(db=services.db, connectors=registry, clock=clock)  # type: ignore[arg-type]
    return World(scripted, await make_tenant(scripted), connector, clock)


async def fresh_case(world: World, amounts: tuple[str, str] = ("100.00", "250.00")) -> Case:
    """A new project whose budget has two lines, every role holding its usual rights on it."""
    tenant = world.tenant
    world.projects += 1
    data = await tenant.ok("admin", PROJECT, n=f"C-{world.projects}")
    project_id = data["createProject"]["project"]["id"]
    budget_id = data["createProject"]["project"]["budget"]["id"]
    async with world.services.db.unit_of_work() as uow:
        for role, spec in ROLES.items():
            if role != "admin":
                await admin.grant(
                    uow,
                    tenant.users[role],
                    project_id,
                    spec.get("budget", PermissionLevel.NONE),
                    spec.get("grants", []),
                )
        await uow.commit()
    lines = []
    for code, ctype, amount in zip(("03-300", "05-120"), ("L", "M"), amounts, strict=True):
        item = {"costCodeId": tenant.cost_codes[code], "costTypeId": tenant.cost_types[ctype], "originalAmount": amount}
        added = await tenant.ok("admin", ADD_LINE, i={"budgetId": budget_id, "item": item})
        lines.append(added["createBudgetLineItem"]["lineItem"]["id"])
    return Case(budget_id, project_id, lines)


async def _locked(world: World, case: Case) -> None:
    await world.tenant.ok("admin", SYNC, p=case.project_id)
    await world.tenant.ok("admin", LOCK, b=case.budget_id)


async def _sent(world: World, case: Case) -> None:
    await _locked(world, case)
    case.request_id = (await world.tenant.ok("admin", SEND, b=case.budget_id))["sendToERP"]["erpRequest"]["id"]


async def _accepted(world: World, case: Case) -> None:
    await _sent(world, case)
    await world.tenant.ok("approver", DECIDE, r=case.request_id, d="ACCEPT")


async def _exported(world: World, case: Case, *, fail: bool = False) -> None:
    await _accepted(world, case)
    world.connector.outcomes = [ConnectorError("cost code closed", retryable=False)] if fail else []
    assert await world.worker().run_once() == 1


async def _failed(world: World, case: Case) -> None:
    await _exported(world, case, fail=True)


async def _synced(world: World, case: Case) -> None:
    await _exported(world, case)
    await world.tenant.ok("integrator", CONFIRM, r=case.request_id)


async def _rejected(world: World, case: Case) -> None:
    await _sent(world, case)
    await world.tenant.ok("approver", DECIDE, r=case.request_id, d="REJECT", why="wrong job")


async def _retrieved(world: World, case: Case) -> None:
    await _sent(world, case)
    await world.tenant.ok("admin", RETRIEVE, b=case.budget_id)


async def _draft(world: World, case: Case) -> None:
    return None


STATES: dict[str, tuple[Callable[[World, Case], Awaitable[None]], str]] = {
    # state: (how to get there, the request / budget status it leaves)
    "draft": (_draft, "NOT_SENT"),
    "locked": (_locked, "NOT_SENT"),
    "pending": (_sent, "PENDING_ACCEPTANCE"),
    "exporting": (_accepted, "EXPORTING"),
    "failed": (_failed, "EXPORT_FAILED"),
    "awaiting_posting": (_exported, "AWAITING_POSTING"),
    "synced": (_synced, "SYNCED"),
    "rejected": (_rejected, "REJECTED"),
    "retrieved": (_retrieved, "RETRIEVED"),
}


async def case_in(world: World, state: str) -> Case:
    case = await fresh_case(world)
    build, status = STATES[state]
    await build(world, case)
    data = await world.tenant.ok("admin", "query($b: ID!) { budget(id: $b) { exportStatus } }", b=case.budget_id)
    assert data["budget"]["exportStatus"] == status
    return case


@dataclass
class Session:
    """Runs operations as each role through the schema, the viewer read once per role (fresh loaders each
    time, as every HTTP request gets)."""

    tenant: Tenant
    contexts: dict[str, Context] = field(default_factory=dict)

    async def result(self, role: str, query: str, **variables: Any) -> ExecutionResult:
        ctx = self.contexts.get(role)
        if ctx is None:
            ctx = self.contexts[role] = await self.tenant.context(role)
        ctx.reset_loaders()
        return await schema.execute(query, variable_values=variables, context_value=ctx)

    async def execute(self, role: str, query: str, **variables: Any) -> dict[str, Any]:
        result = await self.result(role, query, **variables)
        assert result.errors is None, result.errors
        return result.data or {}

    async def run(self, role: str, query: str, **variables: Any) -> dict[str, Any]:
        """The one payload of a mutation."""
        (payload,) = (await self.execute(role, query, **variables)).values()
        return dict(payload)


