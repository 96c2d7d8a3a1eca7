"""The one commit path of every writer, and the mutation runner on top of it.

`run_unit` opens a unit of work, runs a body, writes the notifications of the events the body appended
(resolvers.notification_planning, in the same transaction), commits and lets the unit of work fire its
after-commit callbacks (subscription wake-ups for every company whose log grew, export kicks, the
notification worker's wake-up): mutations, the export worker and the integrator callbacks all write through
it. `run_mutation` adds what a user's mutation needs: the idempotency key, and refusals turned into
userErrors here, and only here; anything else propagates and is masked at the edge.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import orjson

from domain.errors import ConcurrentChangeError, DomainError, DomainErrors, invalid
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers.context import Context, Services
from resolvers.notification_planning import plan_for_events

log = logging.getLogger("budgetbridge.mutations")

T = TypeVar("T")

MAX_IDEMPOTENCY_KEY = 200  # characters, as stored


@dataclass(frozen=True)
class Changed:
    """What a mutation's payload shows: the ids of what it created or changed."""

    budget_id: str | None = None
    line_item_id: str | None = None
    modification_id: str | None = None
    erp_request_id: str | None = None
    project_id: str | None = None
    cost_code_id: str | None = None
    cost_type_id: str | None = None

    # The keys of a stored idempotent result (kept as they have always been stored).
    _STORED = {
        "budget_id": "budget",
        "line_item_id": "lineItem",
        "modification_id": "modification",
        "erp_request_id": "erpRequest",
        "project_id": "project",
        "cost_code_id": "costCode",
        "cost_type_id": "costType",
    }

    def stored(self) -> dict[str, str]:
        return {self._STORED[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Changed:
        return cls(**{name: stored.get(key) for name, key in cls._STORED.items()})


@dataclass
class Outcome:
    changed: Changed = field(default_factory=Changed)
    errors: list[DomainError] = field(default_factory=list)


Body = Callable[[AbstractUnitOfWork], Awaitable[Changed]]


def refusals(exc: DomainError | DomainErrors) -> list[DomainError]:
    return exc.errors if isinstance(exc, DomainErrors) else [exc]


async def run_unit(services: Services, body: Callable[[AbstractUnitOfWork], Awaitable[T]]) -> T:
    """Run `body` in one unit of work and commit it, with the notifications its events cause; after-commit
    callbacks run once it committed."""
    async with services.unit_of_work() as uow:
        result = await body(uow)
        await plan_for_events(uow, services.kick_notifications)
        await uow.commit()
    return result


def fingerprint(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


async def run_mutation(
    ctx: Context,
    operation: str,
    body: Body,
    *,
    idempotency_key: str | None = None,
    fingerprint_of: Any = None,
    after_commit: Callable[[], None] | None = None,
) -> Outcome:
    actor = ctx.actor
    key = (idempotency_key or "").strip() or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        return Outcome(
            errors=[invalid(f"must be at most {MAX_IDEMPOTENCY_KEY} characters", ["input", "idempotencyKey"])]
        )
    input_hash = fingerprint(fingerprint_of) if key else ""

    async def unit(uow: AbstractUnitOfWork) -> Changed:
        if key is not None:
            stored = await uow.idempotency.get(actor.user_id, operation, key)
            if stored is not None:
                if stored.input_hash != input_hash:
                    raise invalid(
                        "this idempotency key was already used with different input", ["input", "idempotencyKey"]
                    )
                return Changed.from_stored(stored.result)
        changed = await body(uow)
        if key is not None:
            await uow.idempotency.put(actor.user_id, operation, key, input_hash, changed.stored(), ctx.services.clock())
        if after_commit is not None:
            uow.after_commit(after_commit)
        return changed

    try:
        changed = await run_unit(ctx.services, unit)
    except ConcurrentChangeError as exc:
        # A concurrent request won a unique key (same idempotency key, same line key, ...). Nothing of
        # ours was committed; a retry with the same key answers with the winner's result.
        log.info("concurrent change in %s", operation)
        if key is not None:
            replay = await _replay(ctx, operation, key, input_hash)
            if replay is not None:
                ctx.reset_loaders()
                return Outcome(changed=replay)
        return Outcome(errors=[exc])
    except (DomainError, DomainErrors) as exc:
        return Outcome(errors=refusals(exc))
    ctx.reset_loaders()  # a commit makes cached records stale; later fields read afresh
    return Outcome(changed=changed)


async def _replay(ctx: Context, operation: str, key: str, input_hash: str) -> Changed | None:
    async def read(uow: AbstractUnitOfWork) -> Changed | None:
        stored = await uow.idempotency.get(ctx.actor.user_id, operation, key)
        return Changed.from_stored(stored.result) if stored and stored.input_hash == input_hash else None

    return await run_unit(ctx.services, read)
