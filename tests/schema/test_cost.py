"""The query cost analysis: linear in the document, before graphql-core validates it, every list charged."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query, parse

from resolvers.context import QueryLimits, Services
from resolvers.pagination import UNPAGED_MAXIMA
from schema.build import schema
from schema.cost import CostAnalysis
from tests.resolvers.test_nested_reads import counted
from tests.support import make_tenant

ANALYSIS = CostAnalysis(schema._schema)
LIMITS = QueryLimits()


def doubling(levels: int, leaf: str = "id name") -> str:
    """The issue's document: each fragment spreads the previous one twice (2^levels paths, ~6 tokens a level)."""
    parts = [f"query Q {{ viewer {{ ...F{levels} }} }}", f"fragment F0 on User {{ {leaf} }}"]
    parts += [f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return "\n".join(parts)


def refusal(query: str, limits: QueryLimits = LIMITS, **variables: object) -> str | None:
    errors = ANALYSIS.check(parse(query), limits, variables)
    if not errors:
        return None
    (error,) = errors
    assert error.extensions == {"code": "BAD_USER_INPUT"}
    return error.message


def test_the_doubling_fragment_document_costs_visits_linear_in_its_levels() -> None:
    visits = {levels: ANALYSIS.count_visits(parse(doubling(levels))) for levels in range(1, 31)}
    steps = {visits[n + 1] - visits[n] for n in range(1, 30)}
    assert steps == {2}, visits  # each level adds its two spreads, whatever the paths double to
    assert visits[30] == visits[1] + 2 * 29
    assert visits[30] < 100  # 2^30 paths


@pytest.mark.parametrize("leaf", ["id name", "id company { id name }", "costCodes { id }"])
def test_the_doubling_fragment_document_is_refused_at_once(leaf: str) -> None:
    query = doubling(29, leaf.replace("costCodes", "company") if leaf.startswith("costCodes") else leaf)
    # No clock here (shared machines): that the analysis is linear is counted above; a walk of all 2^29 paths
    # would not finish within the suite's per-test timeout.
    message = refusal(query)
    assert message is not None and "selected" in message


async def test_the_doubling_document_is_refused_before_graphql_core_validates_it(services: Services) -> None:
    tenant = await make_tenant(services)
    result = await tenant.execute("reader", doubling(29))
    assert result.data is None and result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "BAD_USER_INPUT"}]


async def test_aliases_of_an_unpaged_list_are_refused_before_anything_is_read(services: Services) -> None:
    tenant = await make_tenant(services)
    context = await tenant.context("reader")
    aliases = " ".join(f"a{i}: costCodes {{ id code description }}" for i in range(200))
    with counted(services.db) as statements:
        result = await schema.execute(f"{{ {aliases} }}", context_value=context)
    assert result.data is None and result.errors is not None
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}
    assert "too many objects" in result.errors[0].message
    assert statements == []
    assert (await tenant.ok("reader", "{ a: costCodes { id } b: costCodes { id } }"))["a"]


UNPAGED = {
    "Query.costCodes": "costCodes { id }",
    "Query.costTypes": "costTypes { id }",
    "Budget.erpRequests": "budget(id: $id) { erpRequests { id } }",
    "Budget.modifications": "budget(id: $id) { modifications { id } }",
    "Budget.pendingExport": "budget(id: $id) { pendingExport { costCode } }",
    "Budget.sendBlockers": "budget(id: $id) { sendBlockers { code } }",
    "ErpRequest.lines": "erpRequest(id: $id) { lines { costCode } }",
}


@pytest.mark.parametrize("field", sorted(UNPAGED))
def test_every_unpaged_list_counts_at_its_documented_maximum(field: str) -> None:
    maximum = UNPAGED_MAXIMA[field]
    fits = LIMITS.max_items // (maximum + 1)  # the enclosing object itself is not a list item
    selection = UNPAGED[field]
    header = "query($id: ID!)" if "$id" in selection else "query"

    def aliased(count: int) -> str:
        return f"{header} {{ {' '.join(f'a{i}: {selection}' for i in range(count))} }}"

    assert refusal(aliased(max(fits, 1)), id="x") is None or fits == 0
    message = refusal(aliased(LIMITS.max_items // maximum + 1), id="x")
    assert message is not None and "too many objects" in message


def test_pages_multiply_what_their_edges_select() -> None:
    nested = """query($n: Int) { projects(first: $n) { edges { node { budget {
        lineItems(first: 240) { edges { node { id } } } } } } } }"""
    assert refusal(nested, n=200) is None  # 200 + 200 x 240 = 48,200
    assert refusal(nested, n=210) is not None  # 210 + 210 x 240 = 50,610
    assert refusal(nested) is None  # the default page (50)
    assert refusal("{ projects(first: 100) { edges { node { budget { modifications { id } } } } } }") is not None


def test_a_fragment_on_a_connection_is_charged_with_each_page_it_is_spread_in() -> None:
    query = """query { budget(id: "x") { a: lineItems(first: 1000) { ...L } b: lineItems(first: 10) { ...L } } }
        fragment L on BudgetLineItemConnection { edges { node { costCode { id } } } }"""
    assert refusal(query) is None
    many = "query { budget(id: \"x\") { " + " ".join(
        f"a{i}: lineItems(first: 1000) {{ ...L }}" for i in range(25)
    ) + " } } fragment L on BudgetLineItemConnection { edges { node { costCode { id } costType { id } } } }"
    assert refusal(many) is None  # 25 x 1000: single objects under each item are not list items
    assert refusal(many.replace("a0: lineItems", "b: lineItems(first: 1000) { ...L } a0: lineItems")) is None
    over = many.replace("a0: lineItems", " ".join(f"b{i}: lineItems(first: 1000) {{ ...L }}" for i in range(26))
                        + " a0: lineItems")
    assert refusal(over) is not None  # 51 x 1000 > 50,000


def test_depth_is_refused_through_fragments_too() -> None:
    deep = "{ viewer { company { id } } }"
    assert refusal(deep, QueryLimits(max_depth=2)) is None
    assert "nested too deeply" in (refusal(deep, QueryLimits(max_depth=1)) or "")
    via_fragment = "{ viewer { ...U } } fragment U on User { company { id } }"
    assert "nested too deeply" in (refusal(via_fragment, QueryLimits(max_depth=1)) or "")


def test_at_most_the_configured_number_of_root_mutations() -> None:
    def mutations(count: int) -> str:
        fields = " ".join(f'm{i}: lockBudget(input: {{budgetId: "b"}}) {{ budget {{ id }} }}' for i in range(count))
        return f"mutation {{ {fields} }}"

    assert refusal(mutations(10)) is None
    assert "at most 10 mutations" in (refusal(mutations(11)) or "")
    assert "at most 3 mutations" in (refusal(mutations(4), QueryLimits(max_mutations=3)) or "")
    spread = "mutation { ...M } fragment M on Mutation { " + " ".join(
        f'm{i}: lockBudget(input: {{budgetId: "b"}}) {{ budget {{ id }} }}' for i in range(11)
    ) + " }"
    assert refusal(spread) is not None


def test_repeated_fields_that_make_graphql_core_quadratic_are_refused() -> None:
    assert refusal("{ viewer { " + "company { id } " * 50 + "} }") is None
    assert "selected 51 times" in (refusal("{ viewer { " + "company { id } " * 51 + "} }") or "")


def test_fragment_cycles_and_long_spread_chains_are_refused_without_exhausting_the_stack() -> None:
    assert "spreads itself" in (refusal("{ viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }")
                                or "")
    chain = [f"fragment F{i} on User {{ ...F{i - 1} }}" for i in range(1, 1501)]
    for fragments in (chain, chain[::-1]):  # in either order, a spread finds its fragment summarised
        assert refusal("{ viewer { ...F1500 } } fragment F0 on User { id } " + " ".join(fragments)) is None
    nested = '{ budget(id: "b") { ' + "project { budget { " * 75 + "id" + " } }" * 75 + " } }"
    assert "nested too deeply" in (refusal(nested) or "")


def test_the_standard_introspection_query_fits() -> None:
    assert refusal(get_introspection_query(descriptions=True, input_value_deprecation=True)) is None
    aliases = " ".join(f"a{i}: __schema {{ types {{ fields {{ args {{ name }} }} }} }}" for i in range(20))
    assert refusal(f"{{ {aliases} }}") is not None


def test_unknown_fields_and_fragments_are_left_to_validation() -> None:
    assert refusal("{ viewr { id } ...Missing }") is None
