"""What one mutation costs the database over HTTP, authentication and payload included, pinned so that it
cannot grow back unnoticed: one pooled connection for the whole request, in one transaction (its
authentication's read included), and a payload shown from what the mutation committed, not read again.

The same statements on both engines, but for the decision's writes: PostgreSQL saves the budget, takes the
company's next event sequence and writes the event in one statement (UPDATEs and an INSERT in a WITH), SQLite
in three. Round trips are counted on PostgreSQL: each statement, BEGIN and COMMIT (a statement's preparation
is once per connection)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import httpx
import pytest

import persistence.database
from tests.database_use import Use, database_use
from tests.e2e.conftest import RunningApp, post_graphql
from tests.erp.workflow import add_line
from tests.support import Tenant

UPDATE = """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) {
  lineItem { id originalAmount description } budget { id version } userErrors { code } } }"""
LOCKING = """mutation($b: ID!) {{ {name}(input: {{budgetId: $b}}) {{ budget {{ id locked version }}
  userErrors {{ code }} }} }}"""

_OURS: ContextVar[bool] = ContextVar("ours", default=False)


@pytest.fixture(autouse=True)
def no_idle_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooled connection idle for a while is pinged first: not what is counted here."""
    monkeypatch.setattr(persistence.database, "IDLE_PING_SECONDS", 3600.0)


async def costs(running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant,
                requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[dict[str, Any], Use]]:
    """Each request's payload and database use, in turn (the first of a kind also prepares its statements)."""
    found = []
    for query, variables in requests:
        with database_use(running_app.runtime.services.db, counted=_OURS.get) as use:
            ours = _OURS.set(True)
            try:
                response = await post_graphql(client, tenant.token("admin"), query, variables)
            finally:
                _OURS.reset(ours)
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        (payload,) = response.json()["data"].values()
        assert payload["userErrors"] == []
        found.append((payload, use))
    return found


def expect(use: Use, running_app: RunningApp, statements: int) -> None:
    """`statements` on PostgreSQL (SQLite two more), one connection, one transaction."""
    sqlite = running_app.runtime.services.db.is_sqlite
    assert (use.checkouts, use.checkins) == (1, 1)
    assert use.statements == statements + 2 * sqlite
    if not sqlite:
        assert use.round_trips == ["BEGIN", *["bind_execute"] * statements, "COMMIT"], use.round_trips


async def test_a_line_updates_amount_costs_five_statements_on_one_connection(
    running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The user; the budget locked through the line, with the viewer's access; the line under the lock, with
    the budget's totals (the new amount must keep them in range); the line's write; the budget's and the
    event's."""
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    found = await costs(running_app, client, tenant, [(UPDATE, {"i": {"id": line_id, "originalAmount": amount}})
                                                      for amount in ("120.00", "130.00")])
    payload, use = found[-1]
    assert payload["lineItem"]["originalAmount"] == "130.00"
    expect(use, running_app, 5)


async def test_a_line_updates_text_costs_five_statements_too(
    running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """No amount changes: the line is read without the budget's totals."""
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    found = await costs(running_app, client, tenant, [(UPDATE, {"i": {"id": line_id, "description": text}})
                                                      for text in ("framing", "drywall")])
    payload, use = found[-1]
    assert payload["lineItem"]["description"] == "drywall"
    expect(use, running_app, 5)


async def test_a_lock_and_an_unlock_cost_three_statements_each(
    running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The user; the budget locked, with the viewer's access; the budget's and the event's writes."""
    names = ["lockBudget", "unlockBudget"] * 2
    found = await costs(running_app, client, tenant,
                        [(LOCKING.format(name=name), {"b": tenant.budget_id}) for name in names])
    for (payload, use), name in list(zip(found, names, strict=True))[2:]:
        assert payload["budget"]["locked"] is (name == "lockBudget")
        expect(use, running_app, 3)
