"""Live subscriptions share one execution per event when their answers cannot differ, and each subscriber still
gets exactly what an execution of its own would give: per viewer rights, per personal field, and after a
permission change.

Events are replayed from the log (`after`), so every subscriber's first answers are ready without waiting on
wake-ups; a subscriber with no shared executions (a Services without them) is the reference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

from graphql import ExecutionResult

from app import admin
from domain.permissions import PermissionLevel
from resolvers.context import Context, PollOnly, Services
from resolvers.shared_execution import SharedExecutions
from schema.build import schema
from tests.erp.workflow import SEND, locked_with_one_line
from tests.live_server import ObservedWakeups
from tests.support import Tenant, make_tenant

RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code } } }"
SUBSCRIPTION = """subscription($after: String, $first: Int) { exportStatusChanged(after: $after) {
  sequence status actor { id name notificationSettings { requestArrived } }
  project { id name viewerPermission }
  budget { id viewerCan { lock unlock send } lineItems(first: $first) { edges { node { id } } } }
  erpRequest { id status }
} }"""


async def subscriber(services: Services, tenant: Tenant, user_id: str, **variables: Any) -> AsyncGenerator[Any, None]:
    from app import auth

    viewer = await auth.load_viewer(services.reads, user_id)
    stream = await schema.subscribe(SUBSCRIPTION, variable_values=variables,
                                    context_value=Context(services=services, viewer_or_none=viewer))
    assert not hasattr(stream, "errors"), stream
    return stream


async def answers(stream: AsyncGenerator[Any, None], count: int) -> list[dict[str, Any]]:
    found = []
    for _ in range(count):
        result = await asyncio.wait_for(stream.__anext__(), 10)
        assert result.errors is None, result.errors
        found.append(result.data)
    await stream.aclose()
    return found


async def with_two_events(services: Services) -> tuple[Tenant, int]:
    tenant = await make_tenant(services)
    newest = await locked_with_one_line(tenant)
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    return tenant, newest


def unshared(services: Services) -> Services:
    return replace(services, shared_executions=None)


async def test_identical_subscriptions_share_one_execution_per_event_and_get_a_fresh_executions_answer(
    services: Services,
) -> None:
    tenant, newest = await with_two_events(services)
    shared = replace(services, shared_executions=SharedExecutions())
    approver = tenant.users["approver"]
    streams = [await subscriber(shared, tenant, approver, after=str(newest), first=5) for _ in range(6)]
    got = await asyncio.gather(*(answers(stream, 2) for stream in streams))
    reference = await answers(await subscriber(unshared(services), tenant, approver, after=str(newest), first=5), 2)
    assert [[e["exportStatusChanged"]["status"] for e in r] for r in got] == [["PENDING_ACCEPTANCE", "RETRIEVED"]] * 6
    assert all(r == reference for r in got)
    assert shared.shared_executions is not None
    assert (shared.shared_executions.executed, shared.shared_executions.shared) == (2, 10)  # 2 events, 6 subscribers


async def test_different_rights_or_variables_below_the_root_get_their_own_answers(services: Services) -> None:
    tenant, newest = await with_two_events(services)
    shared = replace(services, shared_executions=SharedExecutions())
    users = {role: tenant.users[role] for role in ("admin", "reader", "approver")}
    got = {role: await answers(await subscriber(shared, tenant, user, after=str(newest), first=5), 1)
           for role, user in users.items()}
    fewer_lines = await answers(await subscriber(shared, tenant, users["reader"], after=str(newest), first=0), 1)
    for role, user in users.items():
        reference = await answers(await subscriber(unshared(services), tenant, user, after=str(newest), first=5), 1)
        assert got[role] == reference, role
    permissions = {role: got[role][0]["exportStatusChanged"]["project"]["viewerPermission"] for role in users}
    assert permissions == {"admin": "ADMIN", "reader": "READ_ONLY", "approver": "READ_ONLY"}
    assert got["admin"][0] != got["reader"][0]
    assert fewer_lines[0]["exportStatusChanged"]["budget"]["lineItems"]["edges"] == []
    assert len(got["reader"][0]["exportStatusChanged"]["budget"]["lineItems"]["edges"]) == 1
    assert shared.shared_executions is not None and shared.shared_executions.shared == 0


async def test_a_personal_field_is_answered_for_each_viewer(services: Services) -> None:
    tenant, newest = await with_two_events(services)  # the events' actor is the admin
    async with services.db.unit_of_work() as uow:
        twin = await admin.create_user(uow, tenant.company_id, "twin@example.com", "Twin",
                                       company_admin=True)
        await admin.grant(uow, twin, tenant.project_id, PermissionLevel.ADMIN, [])
        await uow.commit()
    shared = replace(services, shared_executions=SharedExecutions())
    own = await answers(await subscriber(shared, tenant, tenant.users["admin"], after=str(newest), first=1), 1)
    other = await answers(await subscriber(shared, tenant, twin, after=str(newest), first=1), 1)
    assert own[0]["exportStatusChanged"]["actor"]["notificationSettings"] is not None
    assert other[0]["exportStatusChanged"]["actor"]["notificationSettings"] is None  # not the twin's own
    del own[0]["exportStatusChanged"]["actor"]["notificationSettings"]
    del other[0]["exportStatusChanged"]["actor"]["notificationSettings"]
    assert own == other  # the same rights: everything else equal


async def test_a_permission_change_takes_effect_on_the_next_event(services: Services) -> None:
    tenant, newest = await with_two_events(services)
    wakeups = ObservedWakeups(PollOnly())
    shared = replace(services, shared_executions=SharedExecutions(), live=wakeups, live_reread_seconds=0.05)
    reader, approver = tenant.users["reader"], tenant.users["approver"]
    readers = await subscriber(shared, tenant, reader, after=str(newest), first=1)
    approvers = await subscriber(shared, tenant, approver, after=str(newest), first=1)  # READ_ONLY too
    for stream in (readers, approvers):
        for _ in range(2):
            data = (await asyncio.wait_for(stream.__anext__(), 10)).data
            assert data["exportStatusChanged"]["project"]["viewerPermission"] == "READ_ONLY"
    following = [asyncio.ensure_future(stream.__anext__()) for stream in (readers, approvers)]
    async with services.db.unit_of_work() as uow:
        await admin.grant(uow, reader, tenant.project_id, PermissionLevel.ADMIN, [])
        await uow.commit()
    await wakeups.reread_by_timer()  # both have re-read their rights since the grant
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    upgraded, unchanged = [(await asyncio.wait_for(f, 10)).data["exportStatusChanged"] for f in following]
    assert upgraded["project"]["viewerPermission"] == "ADMIN"
    assert unchanged["project"]["viewerPermission"] == "READ_ONLY"
    assert upgraded["sequence"] == unchanged["sequence"]

    following = [asyncio.ensure_future(stream.__anext__()) for stream in (readers, approvers)]
    async with services.db.unit_of_work() as uow:
        await admin.grant(uow, reader, tenant.project_id, PermissionLevel.NONE, [])
        await uow.commit()
    await wakeups.reread_by_timer()
    await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)  # no longer the reader's to see
    marker = (await asyncio.wait_for(following[1], 10)).data["exportStatusChanged"]
    assert marker["status"] == "RETRIEVED"  # the approver got it
    await approvers.aclose()
    await wakeups.until(lambda: sum(s.open for s in wakeups.subscriptions) == 1, what="the approver's stream to end")
    await wakeups.reread_by_timer()  # the reader's stream has read it too, since: and skipped it
    assert not following[0].done()
    following[0].cancel()
    await asyncio.gather(following[0], return_exceptions=True)
    await readers.aclose()


async def test_a_shared_answer_is_reused_only_while_recent() -> None:
    now = [0.0]
    executions = SharedExecutions(max_age=1.0, clock=lambda: now[0])
    answers_given = iter(range(10))

    async def execute() -> ExecutionResult:
        return ExecutionResult(data={"n": next(answers_given)})

    key = ("co", 1)
    assert (await executions.run(key, execute)).data == {"n": 0}
    now[0] = 0.9
    assert (await executions.run(key, execute)).data == {"n": 0}  # the same event, moments later: shared
    now[0] = 2.0
    assert (await executions.run(key, execute)).data == {"n": 1}  # a late replay reads afresh
    assert (executions.executed, executions.shared) == (2, 1)
