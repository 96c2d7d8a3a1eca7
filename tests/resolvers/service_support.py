"""Service-layer tests on the fake unit of work: a company ("shop") seeded in a FakeStore with one user per
role of tests/support.py's ROLES, a project with its budget, cost codes and types, a stub ERP connector, a
fixed clock, and recorders for the after-commit wake-ups and export kicks. No database anywhere: `db` of the
services is a sentinel that fails loudly if anything reaches for it.

`refused(...)` is how every refusal is checked: the error codes (and fields), and proof that nothing changed
at all (the whole store, the wake-ups and the kicks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from domain.errors import ErrorCode
from domain.export import Capabilities
from domain.permissions import Actor, Grant, PermissionLevel
from domain.status import ExportStatus, RequestAction
from erp.base import ConnectorError, ExportBatch, ExportReceipt, FormatViolation, JobSpec
from erp.registry import ConnectorRegistry
from persistence.database import Database
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    EventRecord,
    ProjectRecord,
    UserRecord,
)
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers import erp_requests, locking
from resolvers.budget_lines import create_line_item
from resolvers.context import Context, Services, Viewer
from resolvers.input_validation import LineFields
from resolvers.service import Changed, Outcome, run_unit
from resolvers.transitions import apply_request_action
from tests.fakes.unit_of_work import FakeState, FakeStore
from tests.support import ROLES

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CODES = ("03-300", "05-120", "09-900")
TYPES = ("L", "M", "S")


class NoDatabase:
    """Stands in for `Services.db`: the write side must go through the unit of work only."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the service layer reached for the database ({name}) instead of its unit of work")


@dataclass
class StubConnector:
    """An ERP that records what it is asked; `sync_error` makes sync_job fail, `sync_hangs` never answer."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    job_id: str = "JOB-42"
    sync_error: Exception | None = None
    sync_hangs: bool = False
    name: str = "stub"
    display_name: str = "Stub ERP"
    detects_posting: bool = False
    requires_posting_totals: bool = False
    synced: list[JobSpec] = field(default_factory=list)
    marked_posted: list[str] = field(default_factory=list)
    # validate() reports these (a function of the batch), and records each batch it was asked about.
    violations: Callable[[ExportBatch], list[FormatViolation]] = lambda batch: []
    validated: list[ExportBatch] = field(default_factory=list)

    async def check_settings(self) -> None:
        return None

    async def sync_job(self, job: JobSpec) -> str:
        self.synced.append(job)
        if self.sync_hangs:
            await asyncio.Event().wait()
        if self.sync_error is not None:
            raise self.sync_error
        return self.job_id

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        self.validated.append(batch)
        return self.violations(batch)

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        raise AssertionError("no mutation exports: the worker does")

    async def posted(self, export_id: str) -> bool | None:
        return None

    async def mark_posted(self, export_id: str) -> None:
        self.marked_posted.append(export_id)


class StubRegistry:
    """`ConnectorRegistry.get`: no connector for a company without one, else the stub."""

    def __init__(self, connector: StubConnector) -> None:
        self.connector = connector
        self.asked: list[tuple[str | None, dict[str, Any] | None]] = []

    def get(self, name: str | None, options: dict[str, Any] | None = None) -> StubConnector | None:
        self.asked.append((name, options))
        return None if name is None else self.connector


@dataclass
class Shop:
    store: FakeStore
    company: CompanyRecord
    users: dict[str, UserRecord]  # role -> user
    project: ProjectRecord
    budget_id: str
    codes: dict[str, CostCodeRecord]  # code -> record
    types: dict[str, CostTypeRecord]
    connector: StubConnector
    services: Services
    woken: list[str] = field(default_factory=list)
    kicks: list[int] = field(default_factory=list)

    # --- contexts ---------------------------------------------------------------------------------------

    def viewer(self, role: str) -> Viewer:
        user = self.users[role]
        actor = Actor(
            user_id=user.id,
            company_id=user.company_id,
            is_company_admin=user.is_company_admin,
            is_accounting_approver=user.is_accounting_approver,
            erp_permission=PermissionLevel[user.erp_permission],
        )
        company = self.store.state.companies[user.company_id]
        return Viewer(
            actor=actor,
            name=user.name,
            email=user.email,
            currency=company.currency,
            erp_connector=company.erp_connector,
            erp_settings=company.erp_settings,
        )

    def ctx(self, role: str = "admin") -> Context:
        return Context(services=self.services, viewer_or_none=self.viewer(role))

    # --- the stored state -------------------------------------------------------------------------------

    @property
    def budget(self) -> BudgetRecord:
        return self.store.state.budgets[self.budget_id]

    def request(self, request_id: str) -> ErpRequestRecord:
        return self.store.state.requests[request_id]

    def events(self) -> list[EventRecord]:
        return self.store.events_of(self.company.id)

    def code(self, code: str = "03-300") -> str:
        return self.codes[code].id

    def type(self, code: str = "L") -> str:
        return self.types[code].id

    def item(
        self, code: str = "03-300", kind: str = "L", amount: str | Decimal | None = "100.00", **fields: Any
    ) -> LineFields:
        values: dict[str, Any] = {
            "cost_code_id": self.code(code),
            "cost_type_id": self.type(kind),
            "sub_job": None,
            "description": None,
            "original_amount": Decimal(amount) if isinstance(amount, str) else amount,
            **fields,
        }
        return LineFields(**values)

    # --- getting the shop into a state, through the real services -----------------------------------------

    async def add_line(self, code: str = "03-300", kind: str = "L", amount: str = "100.00", **fields: Any) -> str:
        outcome = await create_line_item(
            self.ctx("admin"), self.budget_id, self.item(code, kind, amount, **fields), None
        )
        changed = accepted(outcome)
        assert changed.line_item_id is not None
        return changed.line_item_id

    async def lock(self) -> None:
        accepted(await locking.lock_budget(self.ctx("admin"), self.budget_id, None, None))

    async def send(self) -> str:
        """Lock (if need be) and send; returns the request id."""
        if not self.budget.locked:
            await self.lock()
        changed = accepted(await erp_requests.send_to_erp(self.ctx("admin"), self.budget_id, None, None))
        assert changed.erp_request_id is not None
        return changed.erp_request_id

    async def accept(self, request_id: str) -> None:
        accepted(await erp_requests.decide_export(self.ctx("approver"), request_id, "ACCEPT", None, None))

    async def move(self, request_id: str, action: RequestAction, **values: Any) -> None:
        """Move a request as the worker or an integrator does (system actor), in a committed unit of work."""

        async def body(uow: AbstractUnitOfWork) -> None:
            request = await uow.requests.get(None, request_id)
            assert request is not None
            budget = await uow.budgets.get_for_update(None, request.budget_id)
            assert budget is not None
            await apply_request_action(uow, budget, request, action, actor_id=None, at=T0, **values)

        await run_unit(self.services, body)

    async def request_in(self, status: ExportStatus) -> str:
        """A line, locked, sent and moved on to `status`; returns the request id."""
        if not self.store.lines_of(self.budget_id):
            await self.add_line()
        request_id = await self.send()
        path = {
            ExportStatus.PENDING_ACCEPTANCE: [],
            ExportStatus.RETRIEVED: [RequestAction.RETRIEVE],
            ExportStatus.REJECTED: [RequestAction.REJECT],
            ExportStatus.EXPORTING: [RequestAction.ACCEPT],
            ExportStatus.EXPORT_FAILED: [RequestAction.ACCEPT, RequestAction.EXPORT_FAILED],
            ExportStatus.AWAITING_POSTING: [RequestAction.ACCEPT, RequestAction.EXPORT_WRITTEN],
            ExportStatus.SYNCED: [RequestAction.ACCEPT, RequestAction.EXPORT_POSTED],
        }[status]
        for action in path:
            await self.move(request_id, action)
        assert self.request(request_id).status == status.value
        return request_id

    def set_request(self, request_id: str, **values: Any) -> None:
        """Change a stored request behind every unit of work's back (a test's shortcut to a state)."""
        state = self.store.state
        state.update("requests", request_id, replace(state.requests[request_id], **values))

    # --- proof of nothing changed ---------------------------------------------------------------------

    def mark(self) -> Mark:
        return Mark(self.store.snapshot(), list(self.woken), list(self.kicks), self.store.commits)


@dataclass(frozen=True)
class Mark:
    """The whole store and the after-commit effects at one moment."""

    state: FakeState
    woken: list[str]
    kicks: list[int]
    commits: int


def make_shop(
    *,
    connector: str | None = "stub",
    capabilities: Capabilities | None = None,
    synced: bool = True,
    store: FakeStore | None = None,
    name: str = "Test Builders",
) -> Shop:
    """A company with one user per role (tests/support.py ROLES), a project (synced with the ERP, its cost
    codes and types too, unless `synced=False`) and its budget, at a fixed clock."""
    store = store or FakeStore()
    company = store.seed_company(
        name, erp_connector=connector, erp_settings={"folder": "/tmp/erp"} if connector else {}
    )
    users: dict[str, UserRecord] = {}
    for role, spec in ROLES.items():
        users[role] = store.seed_user(
            company.id,
            f"{role}@{company.id}.example.com",
            name=role.title(),
            is_company_admin=spec.get("company_admin", False),
            is_accounting_approver=spec.get("approver", False),
            erp_permission=spec.get("erp", PermissionLevel.NONE),
        )
    project = store.seed_project(company.id, "P-1", erp_job_id="JOB-1" if synced else None)
    budget = store.seed_budget(company.id, project.id)
    for role, spec in ROLES.items():
        store.seed_grant(users[role].id, project.id, spec.get("budget", PermissionLevel.NONE), spec.get("grants", []))
    codes = {code: store.seed_cost_code(company.id, code, erp_synced=synced) for code in CODES}
    types = {code: store.seed_cost_type(company.id, code, erp_synced=synced) for code in TYPES}
    stub = StubConnector(capabilities=capabilities or Capabilities())
    shop = Shop(
        store=store,
        company=company,
        users=users,
        project=project,
        budget_id=budget.id,
        codes=codes,
        types=types,
        connector=stub,
        services=cast(Services, None),
    )
    shop.services = Services(
        db=cast(Database, NoDatabase()),
        connectors=cast(ConnectorRegistry, StubRegistry(stub)),
        clock=lambda: T0,
        unit_of_work_factory=store.factory(shop.woken.append),
        kick_exports=lambda: shop.kicks.append(len(shop.kicks) + 1),
    )
    return shop


def two_shops() -> tuple[Shop, Shop]:
    """Two companies in one store: for proving that one's ids mean nothing to the other."""
    mine = make_shop()
    return mine, make_shop(store=mine.store, name="Other Builders")


# --- outcomes -------------------------------------------------------------------------------------------


UNCHECKED = object()


def accepted(outcome: Outcome) -> Changed:
    assert outcome.errors == [], [f"{e.code.name}: {e.message} {e.field}" for e in outcome.errors]
    return outcome.changed


def codes_of(outcome: Outcome) -> list[ErrorCode]:
    return [e.code for e in outcome.errors]


async def refused(
    shop: Shop,
    call: Callable[[], Awaitable[Outcome]],
    *codes: ErrorCode,
    field: object = UNCHECKED,
) -> Outcome:
    """Run a mutation that must be refused with exactly `codes` (and, when given, the first error's `field`;
    None for none) and prove it changed nothing: the whole store, no wake-up, no kick."""
    before = shop.mark()
    outcome = await call()
    assert codes_of(outcome) == list(codes), [f"{e.code.name}: {e.message} {e.field}" for e in outcome.errors]
    assert outcome.changed == Changed()
    if field is not UNCHECKED:
        assert outcome.errors[0].field == (tuple(cast(Sequence[str], field)) if field is not None else None)
    after = shop.mark()
    assert after.state == before.state, "a refused mutation changed the store"
    assert (after.woken, after.kicks) == (before.woken, before.kicks)
    assert shop.store.pending_hooks() == [], "a hook the test set up never ran"
    return outcome


def new_events(shop: Shop, before: Mark) -> list[EventRecord]:
    seen = {e.id for e in before.state.events.values()}
    return [e for e in shop.events() if e.id not in seen]


def concurrent_version_bump(shop: Shop) -> Callable[[Any], None]:
    """A hook for "budgets.save": another writer commits a change to the budget between our read and our
    write (as if it had not been locked), so the compare-and-set finds another version."""

    def bump(uow: Any) -> None:
        for state in (uow.state, uow.store.state):
            budget = state.budgets[shop.budget_id]
            state.budgets[shop.budget_id] = replace(budget, version=budget.version + 1)

    return bump


def grant(shop: Shop, role: str, level: PermissionLevel, grants: Iterable[Grant] = ()) -> None:
    """Change a role's grant on the project (straight in the store)."""
    state = shop.store.state
    user_id = shop.users[role].id
    del state.access[(user_id, shop.project.id)]
    shop.store.seed_grant(user_id, shop.project.id, level, grants)


__all__ = [
    "T0",
    "ConnectorError",
    "Mark",
    "Shop",
    "StubConnector",
    "accepted",
    "codes_of",
    "concurrent_version_bump",
    "make_shop",
    "new_events",
    "refused",
    "two_shops",
]
