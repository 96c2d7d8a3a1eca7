"""`viewerCan` tells the truth: for every role and every budget / request state, each flag read before an
action agrees with what the action's mutation then does. Refusals change nothing; a success that moves the
budget on runs on a fresh budget in the same state, so one role's success cannot decide another's outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from resolvers.context import Services
from schema.build import schema
from tests.resolvers.spa_support import (
    ALL_ROLES,
    CONFIRM,
    DECIDE,
    LOCK,
    MODIFY,
    RETRIEVE,
    RETRY,
    SEND,
    UNLOCK,
    UPDATE,
    Case,
    Session,
    World,
    case_in,
    new_world,
)
from tests.resolvers.test_nested_reads import counted
from tests.support import snapshot

BUDGET_CAN = """query($b: ID!) { budget(id: $b) {
  viewerCan { editLines createModification lock unlock send retrieve } sendBlockers { code } } }"""
REQUEST_CAN = """query($r: ID!) { erpRequest(id: $r) {
  viewerCan { accept reject retrieve retryExport confirmPosting } } }"""


Run = Callable[[Session, str, Case], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Action:
    name: str
    on_request: bool
    run: Run
    # A success leaves the budget in its state (a line edit, one more modification), so the next role that
    # may do it runs on the same budget; any other success takes a fresh budget.
    keeps_state: bool = False


ACTIONS = [
    Action("editLines", False, lambda s, role, c: s.run(role, UPDATE, l=c.lines[0]), keeps_state=True),
    Action(
        "createModification",
        False,
        lambda s, role, c: s.run(role, MODIFY, b=c.budget_id, f=c.lines[0], t=c.lines[1]),
        keeps_state=True,
    ),
    Action("lock", False, lambda s, role, c: s.run(role, LOCK, b=c.budget_id)),
    Action("unlock", False, lambda s, role, c: s.run(role, UNLOCK, b=c.budget_id)),
    Action("send", False, lambda s, role, c: s.run(role, SEND, b=c.budget_id)),
    Action("retrieve", False, lambda s, role, c: s.run(role, RETRIEVE, b=c.budget_id)),
    Action("accept", True, lambda s, role, c: s.run(role, DECIDE, r=c.request_id, d="ACCEPT")),
    Action("reject", True, lambda s, role, c: s.run(role, DECIDE, r=c.request_id, d="REJECT", why="over budget")),
    Action("retrieve", True, lambda s, role, c: s.run(role, RETRIEVE, b=c.budget_id)),
    Action("retryExport", True, lambda s, role, c: s.run(role, RETRY, r=c.request_id)),
    Action("confirmPosting", True, lambda s, role, c: s.run(role, CONFIRM, r=c.request_id)),
]


def succeeded(payload: dict[str, Any], case: Case, action: Action) -> bool:
    if payload["userErrors"]:
        return False
    # A request action succeeded when it acted on that request (retrieveBudget retrieves the latest one).
    return not action.on_request or payload["erpRequest"]["id"] == case.request_id


async def viewer_can(session: Session, role: str, case: Case) -> tuple[dict[str, bool], dict[str, bool]] | None:
    """The budget's and the request's flags as the role reads them; None when it may not see the budget
    (then every action is refused: NOT_FOUND, FORBIDDEN)."""
    budget = (await session.execute(role, BUDGET_CAN, b=case.budget_id))["budget"]
    if budget is None:
        return None
    if case.request_id is None:
        return dict(budget["viewerCan"]), {}
    request = (await session.execute(role, REQUEST_CAN, r=case.request_id))["erpRequest"]
    return dict(budget["viewerCan"]), dict(request["viewerCan"])


def says(flags: tuple[dict[str, bool], dict[str, bool]] | None, action: Action) -> bool:
    if flags is None:
        return False
    return flags[1 if action.on_request else 0].get(action.name, False)


def label(action: Action) -> str:
    return f"{'request' if action.on_request else 'budget'}.{action.name}"


async def agree(world: World, state: str) -> dict[str, set[str]]:
    """Read every role's flags on a budget in `state`, then run every action as every role: the refused
    ones on that budget (nothing changes), the allowed ones on a budget of their own. Returns action ->
    the roles viewerCan allowed."""
    session = Session(world.tenant)
    case = await case_in(world, state)
    flags = {role: await viewer_can(session, role, case) for role in ALL_ROLES}
    actions = [a for a in ACTIONS if case.request_id is not None or not a.on_request]
    allowed = {label(a): {role for role in ALL_ROLES if says(flags[role], a)} for a in actions}

    before = await snapshot(world.services.db, world.tenant.company_id)
    for action in actions:
        for role in ALL_ROLES:
            if role not in allowed[label(action)]:
                outcome = await action.run(session, role, case)
                assert not succeeded(outcome, case, action), (state, label(action), role, outcome)
    assert await snapshot(world.services.db, world.tenant.company_id) == before, "a refused action changed data"

    for action in actions:
        reusable: Case | None = None
        for role in sorted(allowed[label(action)]):
            target = reusable or await case_in(world, state)
            outcome = await action.run(session, role, target)
            assert succeeded(outcome, target, action), (state, label(action), role, outcome)
            reusable = target if action.keeps_state else None
    return allowed


# What the permission table and the state machine say; the test checks the API says the same, and that each
# mutation then does what viewerCan said.
EDITORS = {"admin", "standard", "locker", "sender"}
SENDERS = {"admin", "sender"}
EXPECTED: dict[str, dict[str, set[str]]] = {
    "draft": {"budget.editLines": EDITORS, "budget.lock": {"admin", "locker"}},
    "locked": {"budget.createModification": EDITORS, "budget.unlock": {"admin"}, "budget.send": SENDERS},
    "pending": {
        "budget.retrieve": SENDERS,
        "request.accept": {"approver"},
        "request.reject": {"approver"},
        "request.retrieve": SENDERS,
    },
    "exporting": {},
    "failed": {"budget.createModification": EDITORS, "request.retryExport": {"approver"}},
    "awaiting_posting": {"budget.createModification": EDITORS, "request.confirmPosting": {"integrator"}},
    "synced": {"budget.createModification": EDITORS, "budget.unlock": {"admin"}},
    "rejected": {"budget.createModification": EDITORS, "budget.unlock": {"admin"}, "budget.send": SENDERS},
    "retrieved": {"budget.createModification": EDITORS, "budget.unlock": {"admin"}, "budget.send": SENDERS},
}


@pytest.mark.parametrize("state", list(EXPECTED))
async def test_viewer_can_agrees_with_every_mutation_for_every_role(services: Services, state: str) -> None:
    world = await new_world(services)
    allowed = await agree(world, state)
    assert {action: roles for action, roles in allowed.items() if roles} == EXPECTED[state]


async def test_send_is_what_send_blockers_say(services: Services) -> None:
    world = await new_world(services)
    case = await case_in(world, "draft")
    await world.tenant.ok("admin", LOCK, b=case.budget_id)  # locked, but the project is not synced
    data = await world.tenant.ok("admin", BUDGET_CAN, b=case.budget_id)
    assert data["budget"]["viewerCan"]["send"] is False
    assert {b["code"] for b in data["budget"]["sendBlockers"]} >= {"PROJECT_NOT_SYNCED"}
    outcome = await Session(world.tenant).run("admin", SEND, b=case.budget_id)
    assert {e["code"] for e in outcome["userErrors"]} == {b["code"] for b in data["budget"]["sendBlockers"]}


async def test_an_older_request_cannot_be_retrieved_though_its_budget_can(services: Services) -> None:
    world = await new_world(services)
    case = await case_in(world, "rejected")
    older = case.request_id
    case.request_id = (await world.tenant.ok("admin", SEND, b=case.budget_id))["sendToERP"]["erpRequest"]["id"]
    session = Session(world.tenant)
    old = await viewer_can(session, "admin", Case(case.budget_id, case.project_id, [], older))
    latest = await viewer_can(session, "admin", case)
    assert old is not None and latest is not None
    assert not any(old[1].values()), old  # rejected, and no longer its budget's latest
    assert latest[1]["retrieve"] is True and latest[0]["retrieve"] is True
    retrieved = await session.run("admin", RETRIEVE, b=case.budget_id)
    assert retrieved["erpRequest"]["id"] == case.request_id != older


LIST_CAN = """query($n: Int) { projects(first: $n) { edges { node { budget {
  viewerCan { editLines createModification lock unlock send retrieve }
  erpRequests { viewerCan { accept reject retrieve retryExport confirmPosting } } } } } } }"""
LIST_CHEAP = "query($n: Int) { projects(first: $n) { edges { node { budget { viewerCan { lock unlock } } } } } }"


async def test_viewer_can_of_many_budgets_costs_the_same_as_of_one(services: Services) -> None:
    world = await new_world(services)
    for _ in range(4):
        await case_in(world, "pending")  # after the tenant's own project, whose budget has no request
    ctx = await world.tenant.context("sender")

    async def statements_for(query: str, projects: int) -> int:
        ctx.reset_loaders()
        with counted(world.services.db) as statements:
            result = await schema.execute(query, variable_values={"n": projects}, context_value=ctx)
        assert result.errors is None and result.data is not None, result.errors
        assert len(result.data["projects"]["edges"]) == projects
        return len(statements)

    assert await statements_for(LIST_CAN, 2) == await statements_for(LIST_CAN, 5)
    # Flags that need no export state do not compute it.
    assert await statements_for(LIST_CHEAP, 5) < await statements_for(LIST_CAN, 5)
