"""lockBudget / unlockBudget on the fake unit of work: who may, when not, idempotency and version conflicts."""

from __future__ import annotations

from functools import partial

import pytest

from domain.errors import ErrorCode
from domain.status import ExportStatus
from resolvers.locking import lock_budget, unlock_budget
from resolvers.service import Changed, fingerprint
from tests.fakes.unit_of_work import FakeUnitOfWork, IdempotencyRow
from tests.resolvers.service_support import (
    T0,
    accepted,
    concurrent_version_bump,
    make_shop,
    new_events,
    refused,
    two_shops,
)

E = ErrorCode


# --- lock -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "locker"])
async def test_lock(role: str) -> None:
    shop = make_shop()
    before = shop.mark()
    changed = accepted(await lock_budget(shop.ctx(role), shop.budget_id, 1, None))
    assert changed == Changed(budget_id=shop.budget_id)
    user = shop.users[role].id
    budget = shop.budget
    assert (budget.locked, budget.locked_at, budget.locked_by_id, budget.version) == (True, T0, user, 2)
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.previous_status, event.status, event.data) == (
        "BudgetLocked",
        user,
        "NOT_SENT",
        "NOT_SENT",
        {},
    )
    assert (event.project_id, event.budget_id, event.erp_request_id, event.occurred_at) == (
        shop.project.id,
        shop.budget_id,
        None,
        T0,
    )
    assert shop.woken == [shop.company.id]
    assert shop.kicks == []


@pytest.mark.parametrize("role", ["standard", "sender", "reader", "approver", "integrator"])
async def test_lock_needs_admin_or_the_lock_grant(role: str) -> None:
    shop = make_shop()
    await refused(shop, lambda: lock_budget(shop.ctx(role), shop.budget_id, None, None), E.FORBIDDEN)


@pytest.mark.parametrize("role", ["outsider", "erp_reader"])
async def test_lock_of_a_budget_the_viewer_cannot_see_is_not_found(role: str) -> None:
    shop = make_shop()
    if role == "erp_reader":  # sees every project (ERP Integrations), but has no Budget permission
        await refused(shop, lambda: lock_budget(shop.ctx(role), shop.budget_id, None, None), E.FORBIDDEN)
    else:
        await refused(
            shop,
            lambda: lock_budget(shop.ctx(role), shop.budget_id, None, None),
            E.NOT_FOUND,
            field=["input", "budgetId"],
        )


async def test_lock_of_another_companys_or_an_unknown_budget_is_not_found() -> None:
    mine, theirs = two_shops()
    for budget_id in (theirs.budget_id, "bgt_00000000000000000000000000000000"):
        await refused(
            mine, partial(lock_budget, mine.ctx(), budget_id, None, None), E.NOT_FOUND, field=["input", "budgetId"]
        )


async def test_a_locked_budget_is_not_locked_again() -> None:
    shop = make_shop()
    await shop.lock()
    await refused(shop, lambda: lock_budget(shop.ctx(), shop.budget_id, None, None), E.BUDGET_LOCKED)


async def test_every_reason_at_once() -> None:
    shop = make_shop()
    await shop.lock()
    await refused(
        shop, lambda: lock_budget(shop.ctx("standard"), shop.budget_id, None, None), E.FORBIDDEN, E.BUDGET_LOCKED
    )


async def test_lock_with_a_stale_version() -> None:
    shop = make_shop()
    outcome = await refused(
        shop,
        lambda: lock_budget(shop.ctx(), shop.budget_id, 7, None),
        E.VERSION_CONFLICT,
        field=["input", "expectedVersion"],
    )
    assert "version 1, not 7" in outcome.errors[0].message


async def test_a_concurrent_save_is_a_version_conflict_and_writes_nothing() -> None:
    shop = make_shop()
    shop.store.before("budgets.save", concurrent_version_bump(shop))
    outcome = await lock_budget(shop.ctx(), shop.budget_id, None, "key-1")
    assert [(e.code, e.field) for e in outcome.errors] == [(E.VERSION_CONFLICT, None)]
    budget = shop.budget
    assert (budget.version, budget.locked) == (2, False)  # the other writer's version; our lock is not there
    assert shop.events() == [] and shop.woken == []
    assert shop.store.state.idempotency == {}  # a refusal keeps no result: a retry runs again


# --- lock: idempotency ------------------------------------------------------------------------------------


async def test_lock_again_with_the_same_key_answers_the_first_result() -> None:
    shop = make_shop()
    first = accepted(await lock_budget(shop.ctx(), shop.budget_id, 1, "key-1"))
    before = shop.mark()
    again = accepted(await lock_budget(shop.ctx(), shop.budget_id, 1, " key-1 "))  # keys are trimmed
    assert again == first == Changed(budget_id=shop.budget_id)
    after = shop.mark()
    assert after.state == before.state and after.woken == before.woken  # nothing written twice
    [stored] = shop.store.state.idempotency.values()
    assert (stored.operation, stored.key, stored.result) == ("lockBudget", "key-1", {"budget": shop.budget_id})


async def test_the_same_key_with_other_input_is_refused() -> None:
    shop = make_shop()
    accepted(await lock_budget(shop.ctx(), shop.budget_id, 1, "key-1"))
    await refused(
        shop,
        lambda: lock_budget(shop.ctx(), shop.budget_id, 2, "key-1"),
        E.VALIDATION_FAILED,
        field=["input", "idempotencyKey"],
    )


async def test_keys_are_per_user_and_operation() -> None:
    shop = make_shop()
    accepted(await lock_budget(shop.ctx("admin"), shop.budget_id, 1, "key-1"))
    # another user's same key is a new request (refused: version 1 is gone)
    await refused(shop, lambda: lock_budget(shop.ctx("locker"), shop.budget_id, 1, "key-1"), E.VERSION_CONFLICT)
    # the same user's same key on another operation is a new request too
    accepted(await unlock_budget(shop.ctx("admin"), shop.budget_id, 2, "key-1"))
    assert not shop.budget.locked


async def test_without_a_key_a_repeat_is_a_new_request() -> None:
    shop = make_shop()
    accepted(await lock_budget(shop.ctx(), shop.budget_id, None, "  "))  # a blank key is no key
    await refused(shop, lambda: lock_budget(shop.ctx(), shop.budget_id, None, "  "), E.BUDGET_LOCKED)
    assert shop.store.state.idempotency == {}


async def test_a_concurrent_winner_of_the_same_key_is_answered_with_its_result() -> None:
    """Two requests with one key race: the loser's insert of the key fails on the unique key, its unit of
    work rolls back, and it answers with what the winner stored."""
    shop = make_shop()

    # The winner committed its result (the same input) while our body ran: put it in the committed state
    # and in our transaction's view, which is what the unique key sees.
    def committed_meanwhile(uow: FakeUnitOfWork) -> None:
        row = IdempotencyRow(
            shop.users["admin"].id, "lockBudget", "key-1", fingerprint([shop.budget_id, None]), {"budget": "bgt_w"}, T0
        )
        for state in (uow.state, uow.store.state):
            state.idempotency[(row.user_id, row.operation, row.key)] = row

    shop.store.before("idempotency.put", committed_meanwhile)
    outcome = await lock_budget(shop.ctx(), shop.budget_id, None, "key-1")
    assert outcome.errors == [] and outcome.changed == Changed(budget_id="bgt_w")  # the winner's answer
    assert not shop.budget.locked and shop.events() == [] and shop.woken == []  # ours rolled back


# --- unlock -----------------------------------------------------------------------------------------------


async def test_unlock() -> None:
    shop = make_shop()
    await shop.lock()
    before = shop.mark()
    changed = accepted(await unlock_budget(shop.ctx(), shop.budget_id, 2, None))
    assert changed == Changed(budget_id=shop.budget_id)
    budget = shop.budget
    assert (budget.locked, budget.locked_at, budget.locked_by_id, budget.version) == (False, None, None, 3)
    [event] = new_events(shop, before)
    assert (event.type, event.actor_id, event.status, event.previous_status) == (
        "BudgetUnlocked",
        shop.users["admin"].id,
        "NOT_SENT",
        "NOT_SENT",
    )
    assert shop.woken == [shop.company.id] * 2


@pytest.mark.parametrize("role", ["locker", "sender", "standard", "reader", "approver"])
async def test_unlock_needs_admin(role: str) -> None:
    shop = make_shop()
    await shop.lock()
    await refused(shop, lambda: unlock_budget(shop.ctx(role), shop.budget_id, None, None), E.FORBIDDEN)


async def test_unlock_of_an_unlocked_budget() -> None:
    shop = make_shop()
    await refused(shop, lambda: unlock_budget(shop.ctx(), shop.budget_id, None, None), E.BUDGET_NOT_LOCKED)


@pytest.mark.parametrize(
    "status,code",
    [
        (ExportStatus.PENDING_ACCEPTANCE, E.EXPORT_IN_PROGRESS),
        (ExportStatus.EXPORTING, E.EXPORT_IN_PROGRESS),
        (ExportStatus.EXPORT_FAILED, E.EXPORT_IN_PROGRESS),
        (ExportStatus.AWAITING_POSTING, E.AWAITING_POSTING),
    ],
)
async def test_no_unlock_while_a_request_is_under_way(status: ExportStatus, code: ErrorCode) -> None:
    shop = make_shop()
    await shop.request_in(status)
    await refused(shop, lambda: unlock_budget(shop.ctx(), shop.budget_id, None, None), code)


@pytest.mark.parametrize("status", [ExportStatus.RETRIEVED, ExportStatus.REJECTED, ExportStatus.SYNCED])
async def test_unlock_once_the_request_is_settled(status: ExportStatus) -> None:
    shop = make_shop()
    await shop.request_in(status)
    accepted(await unlock_budget(shop.ctx(), shop.budget_id, None, None))
    assert not shop.budget.locked and shop.budget.export_status == status.value


async def test_unlock_of_another_companys_budget_is_not_found() -> None:
    mine, theirs = two_shops()
    await theirs.lock()
    await refused(
        mine, lambda: unlock_budget(mine.ctx(), theirs.budget_id, None, None), E.NOT_FOUND, field=["input", "budgetId"]
    )


async def test_unlock_with_a_stale_version_and_a_concurrent_save() -> None:
    shop = make_shop()
    await shop.lock()
    await refused(
        shop,
        lambda: unlock_budget(shop.ctx(), shop.budget_id, 1, None),
        E.VERSION_CONFLICT,
        field=["input", "expectedVersion"],
    )
    shop.store.before("budgets.save", concurrent_version_bump(shop))
    outcome = await unlock_budget(shop.ctx(), shop.budget_id, 2, None)
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    assert shop.budget.locked and shop.budget.version == 3


async def test_unlock_idempotency() -> None:
    shop = make_shop()
    await shop.lock()
    first = accepted(await unlock_budget(shop.ctx(), shop.budget_id, 2, "u-1"))
    before = shop.mark()
    assert accepted(await unlock_budget(shop.ctx(), shop.budget_id, 2, "u-1")) == first
    assert shop.mark().state == before.state
    await refused(shop, lambda: unlock_budget(shop.ctx(), shop.budget_id, None, "u-1"), E.VALIDATION_FAILED)
