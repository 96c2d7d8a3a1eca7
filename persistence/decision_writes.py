"""The statements that write a decision on a budget: its new state (compare-and-set on its version), the
company's next event sequence and the event, and on PostgreSQL all three as one statement (UPDATEs and an
INSERT in a WITH). Built once, with named parameters: building a statement of this size and computing its
cache key costs SQLAlchemy about a millisecond, more than the database takes to run it.

No parameter is named like a column of a table these statements write: SQLAlchemy adds such a parameter of
an UPDATE or INSERT to what it sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CTE, ColumnElement, bindparam, insert, literal, select, true, update
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from domain.budget import BudgetState
from domain.events import BudgetEvent
from persistence.records import BudgetRecord
from persistence.tables import budgets, companies, events

_STATE = ("locked", "locked_at", "locked_by_id", "version", "export_status", "last_request_id", "request_count")
_EVENT = (
    "company_id", "occurred_at", "type", "actor_id", "project_id", "budget_id", "erp_request_id",
    "previous_status", "status", "reason", "data",
)


def state_params(before: BudgetRecord, after: BudgetState) -> dict[str, Any]:
    """The parameters of SAVE: `before` (as read under its lock) becomes `after`, one version on."""
    values = {
        "locked": after.locked,
        "locked_at": after.locked_at,
        "locked_by_id": after.locked_by_id,
        "version": before.version + 1,
        "export_status": after.export_status.value,
        "last_request_id": after.last_request_id,
        "request_count": after.request_count,
    }
    return {"saved_budget": before.id, "version_before": before.version, **{f"new_{k}": v for k, v in values.items()}}


def event_params(company_id: str, event: BudgetEvent, at: datetime) -> dict[str, Any]:
    """The parameters of NEXT_SEQUENCE and of the event's INSERT (but its sequence)."""
    values = {
        "company_id": company_id,
        "occurred_at": at,
        "type": event.type,
        "actor_id": event.actor_id,
        "project_id": event.project_id,
        "budget_id": event.budget_id,
        "erp_request_id": event.erp_request_id,
        "previous_status": event.previous_status.value if event.previous_status else None,
        "status": event.status.value,
        "reason": event.reason,
        "data": event.data,
    }
    return {"of_company": company_id, **{f"event_{k}": v for k, v in values.items()}}


def _next_sequence(*only_if: ColumnElement[bool]) -> ReturningUpdate[Any]:
    """The company's event counter moved on (its row locked until commit), returning the new sequence."""
    return (
        update(companies)
        .where(companies.c.id == bindparam("of_company"), *only_if)
        .values(event_sequence=companies.c.event_sequence + 1)
        .returning(companies.c.event_sequence)
    )


def _event_from(counter: CTE) -> ReturningInsert[Any]:
    """The event's INSERT with the sequence the counter's UPDATE (a CTE) returned, returning it."""
    columns = [bindparam(f"event_{name}", type_=events.c[name].type) for name in _EVENT]
    stmt = insert(events).from_select([*_EVENT, "sequence"], select(*columns, counter.c.event_sequence))
    return stmt.returning(events.c.sequence)


# The budget's state, returning the row as stored (none: its version moved).
SAVE = (
    update(budgets)
    .where(budgets.c.id == bindparam("saved_budget"), budgets.c.version == bindparam("version_before"))
    .values({name: bindparam(f"new_{name}") for name in _STATE})
    .returning(*budgets.c)
)

NEXT_SEQUENCE = _next_sequence()
INSERT_EVENT = insert(events).values({name: bindparam(f"event_{name}") for name in (*_EVENT, "sequence")})

# PostgreSQL: the counter and the event in one statement, returning the sequence.
_counter = NEXT_SEQUENCE.cte("next_sequence")
APPEND_EVENT = _event_from(_counter).add_cte(_counter, nest_here=True)

# PostgreSQL: all three, returning the budget as stored and the event's sequence; no row (and nothing
# written: the counter moves only once the budget was saved) when the version moved.
_saved = SAVE.cte("saved")
_appended = _event_from(_next_sequence(select(literal(1)).select_from(_saved).exists()).cte("next_sequence"))
_appended_cte = _appended.cte("appended")
SAVE_WITH_EVENT = select(_saved, _appended_cte.c.sequence).select_from(_saved.join(_appended_cte, true()))
