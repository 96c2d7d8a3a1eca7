"""Locking and unlocking a budget."""

from __future__ import annotations

from domain import budget as wf
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers.budget_state import budget_state
from resolvers.change_targets import budget_for_change
from resolvers.context import Context
from resolvers.service import Changed, Outcome, run_mutation


async def lock_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        change = wf.lock(budget_state(budget), access, actor.user_id, ctx.services.clock())
        saved = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "lockBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def unlock_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        change = wf.unlock(budget_state(budget), access, actor.user_id)
        saved = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "unlockBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])
