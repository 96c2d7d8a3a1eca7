"""A document is parsed and validated once while it is among the recently seen ones; the cost check, which
depends on the variables, still runs on every request, and an invalid document is refused every time."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.schema.schema import validate_document

from resolvers.context import Services
from schema import build
from tests.support import make_tenant

COST_CODES = "query Codes($n: Int) { projects(first: $n) { edges { node { id } } } }"


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents graphql-core validated during the test (whatever earlier tests left cached is dropped)."""
    seen: list[str] = []
    real = validate_document

    def counting(graphql_schema: Any, document: Any, rules: Any) -> Any:
        seen.append(document.loc.source.body)
        return real(graphql_schema, document, rules)

    monkeypatch.setattr(build, "validate_document", counting)
    monkeypatch.setattr(build, "_validated", type(build._validated)())
    return seen


async def test_a_repeated_document_is_validated_once(services: Services, validations: list[str]) -> None:
    tenant = await make_tenant(services)
    validations.clear()  # the set-up's own mutations
    for _ in range(3):
        result = await tenant.execute("reader", COST_CODES, n=5)
        assert result.errors is None, result.errors
    assert validations == [COST_CODES]


async def test_an_invalid_document_is_refused_each_time_from_one_validation(
    services: Services, validations: list[str]
) -> None:
    tenant = await make_tenant(services)
    validations.clear()  # the set-up's own mutations
    query = "{ projects { nope } }"
    messages = []
    for _ in range(2):
        result = await tenant.execute("reader", query)
        assert result.data is None and result.errors
        messages.append([e.message for e in result.errors])
    assert messages[0] == messages[1] and "nope" in messages[0][0]
    assert validations == [query]


async def test_the_cost_check_still_sees_each_requests_variables(services: Services, validations: list[str]) -> None:
    tenant = await make_tenant(services)
    validations.clear()  # the set-up's own mutations
    assert (await tenant.execute("reader", COST_CODES, n=5)).errors is None
    refused = await tenant.execute("reader", COST_CODES, n=10**9)
    assert refused.data is None and refused.errors is not None
    assert [e.extensions for e in refused.errors] == [{"code": "BAD_USER_INPUT"}]
    assert validations == [COST_CODES]
