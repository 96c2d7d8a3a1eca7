"""The per-process event cache: one read of the log per wake-up for all subscribers, never a gap."""

from __future__ import annotations

import asyncio

from persistence.reads import EventRelations
from resolvers.context import Services
from resolvers.event_tail import EventTails
from tests.erp.workflow import SEND, locked_with_one_line
from tests.resolvers.test_nested_reads import counted
from tests.support import Tenant, make_tenant

RETRIEVE = "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code } } }"


async def ready(services: Services) -> tuple[Tenant, int]:
    tenant = await make_tenant(services)
    return tenant, await locked_with_one_line(tenant)


async def test_many_readers_after_one_wake_up_cost_one_read_of_the_log(services: Services) -> None:
    tenant, newest = await ready(services)
    tails = EventTails(services.reads, max_age=3600)
    assert await tails.after(tenant.company_id, newest) == ([], EventRelations())
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    tails.invalidate(tenant.company_id)
    with counted(services.db) as statements:
        answers = await asyncio.gather(*(tails.after(tenant.company_id, newest) for _ in range(50)))
    assert {tuple(r.sequence for r in answer[0]) if answer else None for answer in answers} == {(newest + 1,)}
    assert len([s for s in statements if "FROM events" in s]) == 1
    assert len(statements) <= 5  # the events, then their actors, projects, budgets and requests, once


async def test_the_cache_never_skips_an_event_and_serves_related_rows(services: Services) -> None:
    tenant, newest = await ready(services)
    tails = EventTails(services.reads, capacity=3, max_age=3600)
    assert await tails.after(tenant.company_id, newest - 1) is None  # older than the cache: read the log
    assert await tails.after(tenant.company_id, newest) == ([], EventRelations())
    await tenant.ok("admin", SEND, b=tenant.budget_id)
    await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    tails.invalidate(tenant.company_id)
    answer = await tails.after(tenant.company_id, newest)
    assert answer is not None
    events, related = answer
    assert [(e.sequence, e.status) for e in events] == [(newest + 1, "PENDING_ACCEPTANCE"), (newest + 2, "RETRIEVED")]
    assert related.users[tenant.users["admin"]].email == "admin@example.com"
    assert tenant.project_id in related.projects
    assert tenant.budget_id in related.budgets
    assert {e.erp_request_id for e in events} <= set(related.requests)
    for _ in range(2):  # four more events: more than the capacity of three
        await tenant.ok("admin", SEND, b=tenant.budget_id)
        await tenant.ok("admin", RETRIEVE, b=tenant.budget_id)
    tails.invalidate(None)
    trimmed = await tails.after(tenant.company_id, newest + 5)
    assert trimmed is not None and [r.sequence for r in trimmed[0]] == [newest + 6]
    assert await tails.after(tenant.company_id, newest + 2) is None  # dropped from the cache: read the log


async def test_memory_is_bounded_by_the_most_recently_read_companies(services: Services) -> None:
    first, first_newest = await ready(services)
    second, second_newest = await ready(services)
    tails = EventTails(services.reads, max_age=3600, companies=1)
    assert await tails.after(first.company_id, first_newest) == ([], EventRelations())
    assert await tails.after(second.company_id, second_newest) == ([], EventRelations())  # forgets the first company
    await first.ok("admin", SEND, b=first.budget_id)
    # Rebuilt from the log's newest event: a reader behind it is sent to the log, never given a gap.
    assert await tails.after(first.company_id, first_newest) is None
    assert await tails.after(first.company_id, first_newest + 1) == ([], EventRelations())
