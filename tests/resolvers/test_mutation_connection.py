"""A mutation runs on its request's one connection, and gives it back however it ends: committed, refused,
or failed unexpectedly (a statement the database or SQLAlchemy refused)."""

from __future__ import annotations

import pytest

from persistence.repositories import SqlLineItems
from resolvers.context import Services
from schema.build import schema
from tests.database_use import database_use
from tests.erp.workflow import add_line
from tests.support import make_tenant

UPDATE = """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) {
  lineItem { id originalAmount } userErrors { code } } }"""


@pytest.mark.parametrize("ending", ["committed", "refused", "failed"])
async def test_a_mutation_gives_its_one_connection_back_however_it_ends(
    services: Services, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    tenant = await make_tenant(services)
    line_id = await add_line(tenant, "03-300", "L", "100.00")
    if ending == "failed":
        async def broken(*_: object) -> None:
            raise RuntimeError("a statement failed")

        monkeypatch.setattr(SqlLineItems, "update", broken)
    amount = "1.234" if ending == "refused" else "120.00"  # three decimals: VALIDATION_FAILED
    context = await tenant.context("admin")  # the viewer, read as authentication would
    with database_use(services.db) as use:
        result = await schema.execute(UPDATE, variable_values={"i": {"id": line_id, "originalAmount": amount}},
                                      context_value=context)
    # A failed unit's connection goes to the pool (it may be broken); the payload has nothing to read then.
    assert (use.checkouts, use.checkins) == (1, 1)
    if ending == "committed":
        assert result.data and result.data["updateBudgetLineItem"]["lineItem"]["originalAmount"] == "120.00"
    elif ending == "refused":
        assert result.data and result.data["updateBudgetLineItem"]["userErrors"] == [{"code": "VALIDATION_FAILED"}]
    else:
        assert result.errors and result.errors[0].message == "Unexpected error."
    fresh = await tenant.ok("admin", "query($b: ID!) { budget(id: $b) { version } }", b=tenant.budget_id)
    assert fresh["budget"]["version"] == (3 if ending == "committed" else 2)
