"""The one path every mutation takes: open a unit of work, honour the idempotency key, run the domain
decision and its writes, commit, then tell the rest of the app. Refusals become userErrors here, and only
here; anything else propagates and is masked at the edge."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from domain.errors import DomainError, DomainErrors, invalid
from persistence import writes
from persistence.database import UnitOfWork
from resolvers.context import Context

log = logging.getLogger("budgetbridge.mutations")

Result = dict[str, str | None]
Body = Callable[[UnitOfWork], Awaitable[Result]]


@dataclass
class Outcome:
    result: Result = field(default_factory=dict)
    errors: list[DomainError] = field(default_factory=list)


async def run_mutation(
    ctx: Context,
    operation: str,
    body: Body,
    *,
    idempotency_key: str | None = None,
    fingerprint_of: Any = None,
    after_commit: Callable[[Result], None] | None = None,
) -> Outcome:
    actor = ctx.actor
    key = (idempotency_key or "").strip() or None
    input_hash = writes.fingerprint(fingerprint_of) if key else ""
    try:
        async with ctx.db.unit_of_work() as uow:
            if key is not None:
                stored = await writes.stored_result(uow.conn, actor.user_id, operation, key)
                if stored is not None:
                    if stored.input_hash != input_hash:
                        raise invalid(
                            "this idempotency key was already used with different input",
                            ["input", "idempotencyKey"],
                        )
                    return Outcome(result=dict(stored.result))
            result = await body(uow)
            if key is not None:
                now = ctx.services.clock()
                await writes.store_result(uow.conn, actor.user_id, operation, key, input_hash, result, now)
            uow.after_commit(lambda: ctx.services.events_committed(actor.company_id))
            await uow.commit()
    except DomainError as exc:
        return Outcome(errors=[exc])
    except DomainErrors as exc:
        return Outcome(errors=exc.errors)
    except IntegrityError:
        # A concurrent request won a unique key (same idempotency key, same line key, ...). Nothing of
        # ours was committed; the retry sees the winner's state.
        log.info("integrity conflict in %s", operation, exc_info=True)
        if key is not None:
            async with ctx.db.read() as conn:
                stored = await writes.stored_result(conn, actor.user_id, operation, key)
            if stored is not None and stored.input_hash == input_hash:
                return Outcome(result=dict(stored.result))
        return Outcome(errors=[DomainError("VERSION_CONFLICT", "a concurrent change conflicted: reload and retry")])
    ctx.reset_loaders()
    if after_commit is not None:
        after_commit(result)
    return Outcome(result=result)
