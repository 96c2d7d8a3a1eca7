"""The one commit path (`run_unit`) and the mutation runner on top of it (`run_mutation`), on the fake unit
of work: commit and after-commit effects, refusals turned into userErrors, idempotency keys and a concurrent
writer that won the same key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.errors import (
    ConcurrentChangeError,
    DomainError,
    DomainErrors,
    ErrorCode,
    NotFoundError,
    VersionConflictError,
    invalid,
)
from domain.events import BudgetLocked
from domain.status import ExportStatus
from persistence.unit_of_work import AbstractUnitOfWork, TransactionConflictError
from resolvers import service
from resolvers.service import Body, Changed, Outcome, fingerprint, run_mutation, run_unit
from tests.fakes.unit_of_work import FakeUnitOfWork, Hook, IdempotencyRow
from tests.resolvers.service_support import T0, Shop, make_shop

E = ErrorCode


def locked_event(shop: Shop) -> BudgetLocked:
    return BudgetLocked(project_id=shop.project.id, budget_id=shop.budget_id, status=ExportStatus.NOT_SENT)


async def set_job(shop: Shop, uow: AbstractUnitOfWork, job_id: str = "JOB-9") -> Changed:
    """A body that writes something visible (the project's ERP job) and logs an event."""
    await uow.projects.set_erp_job(shop.project.id, job_id)
    await uow.events.append(shop.company.id, locked_event(shop), T0)
    return Changed(project_id=shop.project.id)


# --- run_unit ---------------------------------------------------------------------------------------------


async def test_run_unit_commits_and_returns_the_bodys_value() -> None:
    shop = make_shop()

    async def body(uow: AbstractUnitOfWork) -> str:
        await set_job(shop, uow)
        return "done"

    assert await run_unit(shop.services, body) == "done"
    assert shop.store.state.projects[shop.project.id].erp_job_id == "JOB-9"
    assert shop.woken == [shop.company.id]  # the commit that appended an event wakes the company once


async def test_run_unit_rolls_back_when_the_body_raises() -> None:
    shop = make_shop()
    before = shop.mark()

    async def body(uow: AbstractUnitOfWork) -> None:
        await set_job(shop, uow)
        uow.after_commit(lambda: shop.kicks.append(99))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_unit(shop.services, body)
    after = shop.mark()
    assert after.state == before.state and (after.woken, after.kicks) == ([], [])


async def test_after_commit_callbacks_run_after_the_commit() -> None:
    shop = make_shop()
    seen: list[tuple[str, int]] = []

    async def later() -> None:
        seen.append(("async", shop.store.commits))

    async def body(uow: AbstractUnitOfWork) -> None:
        uow.after_commit(lambda: seen.append(("sync", shop.store.commits)))
        uow.after_commit(later)
        await uow.projects.set_erp_job(shop.project.id, "JOB-9")

    await run_unit(shop.services, body)
    assert seen == [("sync", 1), ("async", 1)]
    assert shop.woken == []  # no event, no wake-up


async def test_a_unit_of_work_opened_inside_another_fails_at_once() -> None:
    """On SQLite the second unit of work would wait forever for the first's write lock; the fake says so."""
    shop = make_shop()

    async def body(uow: AbstractUnitOfWork) -> None:
        await run_unit(shop.services, lambda inner: inner.projects.set_erp_job(shop.project.id, "x"))

    with pytest.raises(RuntimeError, match="inside another"):
        await run_unit(shop.services, body)


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The retry's jittered pause, recorded instead of slept (the attempt numbers it was asked for)."""
    asked: list[int] = []

    def pause(attempt: int) -> float:
        asked.append(attempt)
        return 0.0

    monkeypatch.setattr(service, "retry_pause", pause)
    return asked


def aborted_at(shop: Shop, operation: str, times: int) -> list[int]:
    """The next `times` units that reach `operation` are aborted by the database, as a deadlock victim is.
    Returns the list of the units that were aborted (one entry each)."""
    aborted: list[int] = []

    def abort(uow: FakeUnitOfWork) -> None:
        aborted.append(1)
        if len(aborted) < times:
            shop.store.before(operation, abort)
        raise TransactionConflictError("deadlock detected")

    shop.store.before(operation, abort)
    return aborted


async def test_a_unit_the_database_aborted_runs_again_whole_in_a_fresh_unit(no_pause: list[int]) -> None:
    shop = make_shop()
    bodies: list[AbstractUnitOfWork] = []
    aborted = aborted_at(shop, "events.append", 2)

    async def body(uow: AbstractUnitOfWork) -> str:
        bodies.append(uow)
        uow.after_commit(lambda: shop.kicks.append(len(bodies)))
        await set_job(shop, uow, f"JOB-{len(bodies)}")
        return "done"

    assert await run_unit(shop.services, body) == "done"
    assert len(aborted) == 2 and len(bodies) == 3 and len(set(map(id, bodies))) == 3  # a fresh unit each time
    assert no_pause == [1, 2]
    # Only the third attempt's writes are kept, its after-commit callback and wake-up ran once.
    assert shop.store.state.projects[shop.project.id].erp_job_id == "JOB-3"
    assert (shop.kicks, shop.woken, shop.store.commits) == ([3], [shop.company.id], 1)
    assert [e.sequence for e in shop.events()] == [1]


async def test_after_the_last_attempt_the_conflict_propagates_and_nothing_is_kept(no_pause: list[int]) -> None:
    shop = make_shop()
    before = shop.mark()
    aborted = aborted_at(shop, "events.append", service.MAX_ATTEMPTS)

    async def body(uow: AbstractUnitOfWork) -> Changed:
        uow.after_commit(lambda: shop.kicks.append(1))
        return await set_job(shop, uow)

    with pytest.raises(TransactionConflictError):
        await run_unit(shop.services, body)
    assert len(aborted) == service.MAX_ATTEMPTS and no_pause == list(range(1, service.MAX_ATTEMPTS))
    after = shop.mark()
    assert after.state == before.state and (after.woken, after.kicks) == ([], [])

    # A mutation answers with a conflict the caller may retry, never "Unexpected error.".
    aborted_at(shop, "events.append", service.MAX_ATTEMPTS)
    outcome = await run_mutation(shop.ctx(), "op", body, idempotency_key="k-1", fingerprint_of=[1])
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    assert shop.mark().state == before.state


async def test_a_conflict_after_the_commit_is_not_run_again(no_pause: list[int]) -> None:
    """An after-commit callback that fails must not run a committed body a second time."""
    shop = make_shop()
    runs: list[int] = []

    def failing_kick() -> None:
        raise TransactionConflictError("in a callback")

    async def body(uow: AbstractUnitOfWork) -> None:
        runs.append(1)
        uow.after_commit(failing_kick)
        await set_job(shop, uow)

    with pytest.raises(TransactionConflictError):
        await run_unit(shop.services, body)
    assert runs == [1] and no_pause == [] and shop.store.commits == 1


async def test_retry_pauses_are_jittered_and_grow() -> None:
    pauses = [service.retry_pause(attempt) for attempt in (1, 4) for _ in range(200)]
    first, fourth = pauses[:200], pauses[200:]
    assert all(0 <= p <= service.RETRY_BASE_SECONDS * 2 for p in first)
    assert all(0 <= p <= service.RETRY_BASE_SECONDS * 16 for p in fourth)
    assert len(set(first)) > 150 and max(fourth) > service.RETRY_BASE_SECONDS * 2


# --- run_mutation: refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("budget", ["input", "budgetId"]),
        invalid("bad", ["input", "name"]),
        DomainError(E.BUDGET_LOCKED, "locked"),
        VersionConflictError(actual=3, expected=2),
        ConcurrentChangeError(),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_refusal_is_a_user_error_and_nothing_is_written(error: DomainError) -> None:
    shop = make_shop()
    before = shop.mark()

    async def body(uow: AbstractUnitOfWork) -> Changed:
        await set_job(shop, uow)
        uow.after_commit(lambda: shop.kicks.append(1))
        raise error

    outcome = await run_mutation(shop.ctx(), "op", body, after_commit=lambda: shop.kicks.append(2))
    assert outcome.errors == [error] and outcome.changed == Changed()
    after = shop.mark()
    assert after.state == before.state and (after.woken, after.kicks) == ([], [])


async def test_several_refusals_are_all_reported() -> None:
    shop = make_shop()
    errors = [invalid("a", ["input", "a"]), DomainError(E.FORBIDDEN, "no")]

    async def body(uow: AbstractUnitOfWork) -> Changed:
        raise DomainErrors(errors)

    outcome = await run_mutation(shop.ctx(), "op", body)
    assert outcome.errors == errors


async def test_anything_else_propagates_to_be_masked_at_the_edge() -> None:
    shop = make_shop()

    async def body(uow: AbstractUnitOfWork) -> Changed:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await run_mutation(shop.ctx(), "op", body)


async def test_success_commits_runs_after_commit_and_reloads_the_loaders() -> None:
    shop = make_shop()
    ctx = shop.ctx()
    loaders = ctx.loaders
    committed: list[int] = []

    async def body(uow: AbstractUnitOfWork) -> Changed:
        return await set_job(shop, uow)

    outcome = await run_mutation(ctx, "op", body, after_commit=lambda: committed.append(shop.store.commits))
    assert outcome == Outcome(changed=Changed(project_id=shop.project.id))
    assert committed == [1] and shop.woken == [shop.company.id]
    assert ctx.loaders is not loaders  # records cached before the commit are stale


# --- run_mutation: idempotency ----------------------------------------------------------------------------


def counting_body(shop: Shop, calls: list[int]) -> Body:
    async def body(uow: AbstractUnitOfWork) -> Changed:
        calls.append(1)
        return await set_job(shop, uow, f"JOB-{len(calls)}")

    return body


async def test_a_key_replays_the_first_result_and_runs_nothing() -> None:
    shop = make_shop()
    calls: list[int] = []
    kicks: list[int] = []
    body = counting_body(shop, calls)

    def kick() -> None:
        kicks.append(1)

    first = await run_mutation(shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[1, "a"], after_commit=kick)
    before = shop.mark()
    again = await run_mutation(
        shop.ctx(), "op", body, idempotency_key=" k ", fingerprint_of=[1, "a"], after_commit=kick
    )
    assert again == first == Outcome(changed=Changed(project_id=shop.project.id))
    assert calls == [1] and kicks == [1]  # the body and the after-commit effect ran once
    assert shop.mark().state == before.state and shop.woken == before.woken
    row = shop.store.state.idempotency[(shop.users["admin"].id, "op", "k")]
    assert (row.input_hash, row.result, row.created_at) == (fingerprint([1, "a"]), {"project": shop.project.id}, T0)


async def test_a_key_with_other_input_is_refused() -> None:
    shop = make_shop()
    calls: list[int] = []
    body = counting_body(shop, calls)
    await run_mutation(shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[1])
    before = shop.mark()
    outcome = await run_mutation(shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[2])
    assert [(e.code, e.field) for e in outcome.errors] == [(E.VALIDATION_FAILED, ("input", "idempotencyKey"))]
    assert calls == [1] and shop.mark().state == before.state


async def test_keys_belong_to_a_user_and_an_operation() -> None:
    shop = make_shop()
    calls: list[int] = []
    body = counting_body(shop, calls)
    for role, operation in (("admin", "op"), ("standard", "op"), ("admin", "other")):
        await run_mutation(shop.ctx(role), operation, body, idempotency_key="k", fingerprint_of=[1])
    assert calls == [1, 1, 1] and len(shop.store.state.idempotency) == 3


@pytest.mark.parametrize("key", [None, "", "   "])
async def test_without_a_key_every_call_runs(key: str | None) -> None:
    shop = make_shop()
    calls: list[int] = []
    body = counting_body(shop, calls)
    for _ in range(2):
        await run_mutation(shop.ctx(), "op", body, idempotency_key=key, fingerprint_of=[1])
    assert calls == [1, 1] and shop.store.state.idempotency == {}


async def test_a_refusal_stores_no_result_so_a_retry_runs_again() -> None:
    shop = make_shop()
    attempts: list[int] = []

    async def body(uow: AbstractUnitOfWork) -> Changed:
        attempts.append(1)
        if len(attempts) == 1:
            raise invalid("not yet")
        return await set_job(shop, uow)

    first = await run_mutation(shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[1])
    second = await run_mutation(shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[1])
    assert [e.code for e in first.errors] == [E.VALIDATION_FAILED]
    assert second.errors == [] and attempts == [1, 1]


def winner_committed(shop: Shop, input_hash: str, result: dict[str, str]) -> Hook:
    """A hook for "idempotency.put": a concurrent request with the same key committed first."""

    def hook(uow: FakeUnitOfWork) -> None:
        row = IdempotencyRow(shop.users["admin"].id, "op", "k", input_hash, result, T0)
        for state in (uow.state, uow.store.state):
            state.idempotency[(row.user_id, "op", "k")] = row

    return hook


async def test_a_concurrent_winner_of_the_key_is_answered_with_its_result() -> None:
    shop = make_shop()
    shop.store.before("idempotency.put", winner_committed(shop, fingerprint([1]), {"project": "prj_winner"}))
    kicks: list[int] = []
    body = counting_body(shop, [])
    outcome = await run_mutation(
        shop.ctx(), "op", body, idempotency_key="k", fingerprint_of=[1], after_commit=lambda: kicks.append(1)
    )
    assert outcome == Outcome(changed=Changed(project_id="prj_winner"))
    assert shop.store.state.projects[shop.project.id].erp_job_id == "JOB-1"  # ours was rolled back
    assert shop.woken == [] and kicks == []


async def test_a_concurrent_winner_with_other_input_leaves_our_conflict() -> None:
    shop = make_shop()
    shop.store.before("idempotency.put", winner_committed(shop, fingerprint([2]), {"project": "prj_winner"}))
    outcome = await run_mutation(shop.ctx(), "op", counting_body(shop, []), idempotency_key="k", fingerprint_of=[1])
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]
    assert isinstance(outcome.errors[0], ConcurrentChangeError)


async def test_a_unique_key_conflict_without_an_idempotency_key_is_a_version_conflict() -> None:
    shop = make_shop()

    async def body(uow: AbstractUnitOfWork) -> Changed:
        project = shop.store.state.projects[shop.project.id]
        await uow.projects.add(replace(project, id="prj_" + "2" * 32))  # the same number again
        return Changed()

    outcome = await run_mutation(shop.ctx(), "op", body)
    assert [e.code for e in outcome.errors] == [E.VERSION_CONFLICT]


# --- Changed ------------------------------------------------------------------------------------------------


def test_changed_is_stored_under_the_keys_it_always_had() -> None:
    changed = Changed(budget_id="b", line_item_id="l", modification_id="m", erp_request_id="r")
    stored = changed.stored()
    assert stored == {"budget": "b", "lineItem": "l", "modification": "m", "erpRequest": "r"}
    assert Changed.from_stored(stored) == changed
    both = Changed(project_id="p", cost_code_id="c", cost_type_id="t")
    assert both.stored() == {"project": "p", "costCode": "c", "costType": "t"}
    assert Changed.from_stored(both.stored()) == both


def test_fingerprints_ignore_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint(["bgt_1", None]) != fingerprint(["bgt_1", 1])


async def test_an_idempotency_key_longer_than_its_column_is_refused() -> None:
    shop = make_shop()
    outcome = await run_mutation(
        shop.ctx(), "op", counting_body(shop, []), idempotency_key="k" * 201, fingerprint_of=[1]
    )
    assert [(e.code, e.field) for e in outcome.errors] == [(E.VALIDATION_FAILED, ("input", "idempotencyKey"))]


@pytest.mark.parametrize("key", ["k\x00", "\ud800k", "k" * 201])
async def test_an_idempotency_key_that_cannot_be_stored_is_refused_on_its_field(key: str) -> None:
    shop = make_shop()
    runs: list[int] = []
    before = shop.mark()
    outcome = await run_mutation(shop.ctx(), "op", counting_body(shop, runs), idempotency_key=key, fingerprint_of=[1])
    assert [(e.code, e.field) for e in outcome.errors] == [(E.VALIDATION_FAILED, ("input", "idempotencyKey"))]
    assert runs == [] and shop.mark().state == before.state


async def test_input_no_encoder_takes_is_fingerprinted_and_refused_by_the_body() -> None:
    """A lone surrogate in a fingerprinted input (an id) with a valid key: refused by the body's checks, never a
    crash in the fingerprint."""
    shop = make_shop()
    assert fingerprint(["bgt_\ud800"]) != fingerprint(["bgt_\udc00"])

    async def body(uow: AbstractUnitOfWork) -> Changed:
        raise invalid("must not contain unpaired surrogate code points", ["input", "budgetId"])

    outcome = await run_mutation(shop.ctx(), "op", body, idempotency_key="k-1", fingerprint_of=["bgt_\ud800"])
    assert [(e.code, e.field) for e in outcome.errors] == [(E.VALIDATION_FAILED, ("input", "budgetId"))]
