"""The one commit path of every writer, and the mutation runner on top of it.

`run_unit` opens a unit of work, runs a body, writes the notifications of the events the body appended
(resolvers.notification_planning, in the same transaction), commits and lets the unit of work fire its
after-commit callbacks (subscription wake-ups for every company whose log grew, export kicks, the
notification worker's wake-up): mutations, the export worker and the integrator callbacks all write through
it. When the database aborts the unit to resolve a conflict with a concurrent one (a deadlock, a
serialisation failure: TransactionConflictError), `run_unit` runs the whole body again in a fresh unit of
work, a bounded number of times with jittered backoff; the after-commit callbacks run once, after the commit
that succeeded.

`run_mutation` adds what a user's mutation needs: the idempotency key, and refusals turned into userErrors
here, and only here; anything else propagates and is masked at the edge.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from domain import permissions
from domain.errors import ConcurrentChangeError, DomainError, DomainErrors, invalid
from persistence.records import BudgetRecord, LineItemRecord
from persistence.unit_of_work import AbstractUnitOfWork, TransactionConflictError
from resolvers import input_validation as check
from resolvers.context import Context, Services
from resolvers.notification_planning import plan_for_events
from resolvers.views import line_item_views

log = logging.getLogger("budgetbridge.mutations")

T = TypeVar("T")

MAX_IDEMPOTENCY_KEY = 200  # characters, as stored

# A unit the database aborted (deadlock, serialisation failure) runs again up to this many times in all,
# after a pause drawn from [0, RETRY_BASE_SECONDS * 2**attempt] (full jitter: the two units that deadlocked
# do not collide again in step).
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.01


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
    # The records as the unit of work committed them, when it holds them (its budget under lock): the payload
    # shows them without reading them again. Never stored with an idempotency key.
    budget: BudgetRecord | None = field(default=None, compare=False, repr=False)
    line_item: LineItemRecord | None = field(default=None, compare=False, repr=False)

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
        return {key: getattr(self, name) for name, key in self._STORED.items() if getattr(self, name)}

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


def retry_pause(attempt: int) -> float:
    return random.uniform(0, RETRY_BASE_SECONDS * 2**attempt)


async def run_unit(services: Services, body: Callable[[AbstractUnitOfWork], Awaitable[T]]) -> T:
    """Run `body` in one unit of work and commit it; after-commit callbacks run once it committed.

    A unit the database aborted to break a deadlock or a serialisation conflict is run again from the start
    (`body` must therefore do nothing outside its unit of work that cannot be done twice; every body here
    only reads and writes through `uow` and registers its side effects as after-commit callbacks). After
    MAX_ATTEMPTS the TransactionConflictError propagates."""
    attempt = 1
    while True:
        uow = services.unit_of_work()
        try:
            async with uow:
                result = await body(uow)
                await plan_for_events(uow, services.kick_notifications)
                await uow.commit()
            return result
        except TransactionConflictError:
            if uow.committed or attempt >= MAX_ATTEMPTS:
                raise  # committed: an after-commit callback failed, and the unit must not run twice
            log.info("unit of work aborted by a concurrent one (attempt %d of %d): running it again",
                     attempt, MAX_ATTEMPTS)
            await asyncio.sleep(retry_pause(attempt))
            attempt += 1


def fingerprint(value: Any) -> str:
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        # Text orjson cannot encode (a lone surrogate): such input is refused by the body's checks and its
        # result never stored, but the key's stored hash is compared first, so it needs a hash too.
        data = repr(value).encode("utf-8", "backslashreplace")
    return hashlib.sha256(data).hexdigest()


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
    refused = permissions.scope_refusal(actor, operation)
    if refused is not None:
        return Outcome(errors=[refused])
    try:
        key = check.text(idempotency_key, ["input", "idempotencyKey"], max_len=MAX_IDEMPOTENCY_KEY)
    except DomainError as exc:
        return Outcome(errors=[exc])
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
    except TransactionConflictError:
        # Every attempt was aborted by concurrent writers: nothing was committed; the caller may try again.
        log.warning("%s aborted by concurrent writers %d times", operation, MAX_ATTEMPTS)
        return Outcome(errors=[ConcurrentChangeError()])
    except (DomainError, DomainErrors) as exc:
        return Outcome(errors=refusals(exc))
    ctx.reset_loaders()  # a commit makes cached records stale; later fields read afresh
    _seed_payload(ctx, changed)
    return Outcome(changed=changed)


def _seed_payload(ctx: Context, changed: Changed) -> None:
    """The committed records the unit of work returned, handed to the loaders the payload reads through."""
    if changed.budget is not None:
        ctx.loaders.seed("budget", changed.budget.id, changed.budget)
    if changed.line_item is not None:
        (view,) = line_item_views([changed.line_item], None, None)  # without erpSynced, which needs reads
        ctx.loaders.seed("line_item_unsynced", view.id, view)


async def _replay(ctx: Context, operation: str, key: str, input_hash: str) -> Changed | None:
    async def read(uow: AbstractUnitOfWork) -> Changed | None:
        stored = await uow.idempotency.get(ctx.actor.user_id, operation, key)
        return Changed.from_stored(stored.result) if stored and stored.input_hash == input_hash else None

    return await run_unit(ctx.services, read)
