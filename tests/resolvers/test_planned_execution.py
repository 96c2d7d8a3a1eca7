"""Planned execution answers exactly what graphql-core answers.

The plan (resolvers.planned_execution) builds plain sub-selections straight from objects and gives a field
back to graphql-core whenever a value is not what it expects. Both executions are compared here:
- over every field of the schema reachable without required arguments, for every role, on budgets in every
  state of the workflow (lines, modifications, requests with exported entries, rejections, failures);
- over the documents the benches and the walkthrough read with;
- on a small schema built to hit each way a plan gives up (nulls in non-null positions, exception values,
  awaitables, iterators, custom type checks), where graphql-core's errors must come out unchanged.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
    parse,
)
from strawberry.extensions import ParserCache

from bench.nested_reads import QUERY as BENCH_QUERY
from resolvers.context import QueryLimits, Services
from resolvers.planned_execution import PlannedExecutor, _KeptPlans
from schema.build import schema
from tests.resolvers.spa_support import MODIFY, STATES, Session, case_in, new_world
from tests.support import ROLES

DEPTH = 4  # object levels below each root field: every type of the schema is reached within it


def _selection(type_: GraphQLOutputType, depth: int) -> str:
    named: GraphQLNamedType = get_named_type(type_)
    if is_abstract_type(named):
        possible = schema._schema.get_possible_types(named)
        # aliased per type: two types may have fields of one name and different types (`number`)
        return "__typename " + " ".join(f"... on {t.name} {{ {_fields(t, depth, t.name)} }}" for t in possible)
    assert isinstance(named, GraphQLObjectType)
    return "__typename " + _fields(named, depth)


def _fields(type_: GraphQLObjectType, depth: int, alias: str = "") -> str:
    chosen = []
    for name, field in type_.fields.items():
        if any(is_non_null_type(arg.type) and arg.default_value is Undefined for arg in field.args.values()):
            continue  # needs an argument this walk cannot make up
        key = f"{alias}_{name}: {name}" if alias else name
        if is_leaf_type(get_named_type(field.type)):
            chosen.append(key)
        elif depth > 0:
            page = "(first: 3)" if "first" in field.args else ""
            chosen.append(f"{key}{page} {{ {_selection(field.type, depth - 1)} }}")
    return " ".join(chosen)


def every_field_documents() -> dict[str, str]:
    """One document per root query field: everything below it, to DEPTH levels of objects."""
    query = schema._schema.query_type
    assert query is not None
    documents = {}
    for name, field in query.fields.items():
        required = [arg for arg, spec in field.args.items() if is_non_null_type(spec.type)]
        arguments = "(id: $id)" if required == ["id"] else ""
        if required and required != ["id"]:
            continue
        variables = "($id: ID!)" if arguments else ""
        named = get_named_type(field.type)
        depth = DEPTH - 1 if is_abstract_type(named) else DEPTH  # node: every Node type side by side
        selection = "" if is_leaf_type(named) else f"{{ {_selection(field.type, depth)} }}"
        documents[name] = f"query{variables} {{ {name}{arguments} {selection} }}"
    return documents


class _Executions:
    """Runs a document both ways and counts what graphql-core itself executed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fields_executed = {True: 0, False: 0}
        self._monkeypatch = monkeypatch
        original = PlannedExecutor.execute_field

        def counted(executor: PlannedExecutor, *args: Any, **kwargs: Any) -> Any:
            self.fields_executed[executor.planned] += 1
            return original(executor, *args, **kwargs)

        monkeypatch.setattr(PlannedExecutor, "execute_field", counted)

    async def both(self, session: Session, role: str, document: str, **variables: Any) -> tuple[Any, Any]:
        answers = []
        for planned in (False, True):
            self._monkeypatch.setattr(PlannedExecutor, "planned", planned)
            result = await session.result(role, document, **variables)
            answers.append((result.data, [(e.message, e.path) for e in result.errors or []]))
        return answers[0], answers[1]


async def test_every_field_of_the_schema_for_every_role_and_state_matches_graphql_core(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await new_world(services)
    # "exporting" last: its accepted request stays queued, and the worker of a later case would take it
    cases = {state: await case_in(world, state) for state in sorted(STATES, key=lambda s: s == "exporting")}
    synced = cases["synced"]  # a modification on a synced budget: an UPDATE_BUDGET request's second entry kind
    await world.tenant.ok("admin", MODIFY, b=synced.budget_id, f=synced.lines[0], t=synced.lines[1])
    # The walk is broad on purpose (every Node type side by side): the cost limits guard production, not this
    world.services.query_limits = QueryLimits(max_depth=50, max_items=1 << 63, max_selections=10**6)
    session, executions = Session(world.tenant), _Executions(monkeypatch)
    documents = every_field_documents()
    assert {"projects", "budget", "erpRequests", "node", "viewer"} <= set(documents)
    requests = [case.request_id for case in cases.values() if case.request_id is not None]
    ids_for = {"project": [synced.project_id], "budget": [synced.budget_id], "erpRequest": requests}
    ids_for["node"] = [synced.project_id, synced.budget_id, synced.lines[0], *requests]
    assert set(ids_for) == {name for name, document in documents.items() if "$id" in document}
    for role in ROLES:
        for name, document in documents.items():
            for id_ in ids_for.get(name, [None]):
                variables = {"id": id_} if id_ is not None else {}
                reference, planned = await executions.both(session, role, document, **variables)
                assert planned == reference, (role, name, id_)
                if role == "admin":  # not a vacuous comparison: the admin's walk is answered, with data
                    data, errors = reference
                    assert errors == [] and data is not None and data[name] is not None, (name, id_, errors)
    # the plans did take over: graphql-core executed far fewer fields itself
    assert executions.fields_executed[True] * 2 < executions.fields_executed[False], executions.fields_executed
    assert await world.worker().run_once() == 1  # the "exporting" case's job: no other test's worker finds it


async def test_the_bench_and_nested_read_documents_match_graphql_core(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.resolvers.test_nested_reads import NESTED, add_lines

    world = await new_world(services)
    await case_in(world, "synced")
    await add_lines(world.tenant, 30)
    session, executions = Session(world.tenant), _Executions(monkeypatch)
    for document, variables in ((BENCH_QUERY, {"first": 500}), (BENCH_QUERY, {"first": 3}), (NESTED, {})):
        reference, planned = await executions.both(session, "admin", document, **variables)
        assert planned == reference
        assert reference[1] == [] and reference[0]["projects"]["edges"]


# A schema built to make plans give up: each case must come out exactly as graphql-core has it.


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leafy(Named):
    amount: Decimal
    maybe: str | None
    required: str
    items: list[str]
    nested: Leafy | None


@strawberry.type
class Checked:
    value: str

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:  # a custom check: plans leave it to graphql-core
        return isinstance(obj, Checked)


@strawberry.type
class Holder:
    leaves: list[Leafy | None]  # a null in a non-null field of a line nulls that line, not the list
    named: list[Named]
    checked: Checked | None
    strange: Leafy | None


def _leafy(**overrides: Any) -> Leafy:
    values: dict[str, Any] = dict(name="a", amount=Decimal("1.50"), maybe=None, required="r", items=["x"], nested=None)
    values.update(overrides)
    return Leafy(**values)


def _odd_values() -> Iterator[Any]:
    yield "from a generator"


class _Later:
    """An awaitable that is no coroutine: left unawaited (a query that does not select it), it warns of nothing."""

    def __await__(self) -> Generator[None, None, str]:
        if False:  # a generator: awaiting it finishes at once, with this value
            yield
        return "awaited"


class _Bad:
    def __repr__(self) -> str:  # the same text in both executions (Decimal's serializer takes str())
        return "bad"


@strawberry.type
class SmallQuery:
    @strawberry.field
    def holder(self) -> Holder:
        broken: Any = _leafy(required=None)  # null in a non-null field
        failing: Any = _leafy(maybe=ValueError("a stored exception"))
        waiting: Any = _leafy(maybe=_Later())
        iterated: Any = _leafy(items=_odd_values())
        foreign: Any = _leafy(nested=_Bad())  # not a Leafy: the type check fails
        return Holder(
            leaves=[_leafy(nested=_leafy(name="inner")), broken, failing, waiting, iterated, foreign],
            named=[_leafy(name="n")],
            checked=Checked(value="c"),
            strange=_leafy(amount=_Bad()),
        )


# ParserCache: one parsed document per text, as the app's DocumentGuard keeps them
SMALL = strawberry.Schema(query=SmallQuery, execution_context_class=PlannedExecutor, extensions=[ParserCache])
SMALL_DOCUMENT = """query($with: Boolean!) { holder {
  leaves { __typename name amount maybe required items nested { name amount } also: name @include(if: $with) }
  named { __typename name ... on Leafy { amount } }
  checked { value }
  strange { amount }
  ...more
} }
fragment more on Holder { leaves { name nested { required } } }"""


@pytest.mark.parametrize("with_", [True, False])
async def test_plans_give_each_unexpected_value_back_to_graphql_core(
    monkeypatch: pytest.MonkeyPatch, with_: bool
) -> None:
    answers = []
    for planned in (False, True):
        monkeypatch.setattr(PlannedExecutor, "planned", planned)
        result = await SMALL.execute(SMALL_DOCUMENT, variable_values={"with": with_})
        answers.append((result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or [])))
    reference, planned_answer = answers
    assert planned_answer == reference
    data, errors = reference
    assert data is not None and len(data["holder"]["leaves"]) == 6
    assert data["holder"]["leaves"][0]["nested"] == {"name": "inner", "amount": "1.50", "required": "r"}
    assert ("also" in data["holder"]["leaves"][0]) is with_
    messages = " ".join(message for message, _path in errors)
    assert "Cannot return null for non-nullable field Leafy.required" in messages
    assert "a stored exception" in messages
    assert len(errors) == 3  # required, the exception, the foreign object
    assert data["holder"]["leaves"][3]["maybe"] == "awaited"  # an awaitable is awaited, by graphql-core
    assert data["holder"]["leaves"][4]["items"] == ["from a generator"]
    assert data["holder"]["strange"] == {"amount": "bad"}


async def test_plans_of_a_document_without_directives_are_kept_across_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    original = PlannedExecutor._make_field_plan

    def counted(executor: PlannedExecutor, parent_type: Any, details: Any) -> Any:
        made.append(f"{parent_type.name}.{details[0].node.name.value}")
        return original(executor, parent_type, details)

    monkeypatch.setattr(PlannedExecutor, "_make_field_plan", counted)
    fixed = "{ holder { leaves { name amount nested { name } } checked { value } } }"
    varying = "query($with: Boolean!) { holder { leaves { name also: amount @include(if: $with) } } }"
    answers = {}
    for document, variables in ((fixed, {}), (varying, {"with": True}), (varying, {"with": False})):
        for run in ("first", "again"):
            made.clear()
            result = await SMALL.execute(document, variable_values=variables)
            answers[document, str(variables), run] = (result.data, made[:])
    first, again = answers[fixed, "{}", "first"], answers[fixed, "{}", "again"]
    assert first[0] == again[0] and "Leafy.name" in first[1]
    assert again[1] == []  # the parsed document is cached, and so are its plans
    # with a directive, the plan depends on variables: made again for every request, and each is right
    assert answers[varying, "{'with': True}", "again"][1] and answers[varying, "{'with': False}", "again"][1]
    with_also = answers[varying, "{'with': True}", "again"][0]
    without = answers[varying, "{'with': False}", "again"][0]
    assert with_also is not None and without is not None
    assert with_also["holder"]["leaves"][0] == {"name": "a", "also": "1.50"}
    assert without["holder"]["leaves"][0] == {"name": "a"}


def test_kept_plans_are_bounded_by_documents_and_skip_documents_with_directives() -> None:
    kept = _KeptPlans(capacity=2)
    first, second, third = (parse(f"{{ holder {{ n{i}: checked {{ value }} }} }}") for i in range(3))
    operations = [document.definitions[0] for document in (first, second, third)]
    plans = [kept.of(operation, {}) for operation in operations]  # type: ignore[arg-type]
    assert all(found == {} for found in plans)
    assert kept.of(operations[2], {}) is plans[2]  # type: ignore[arg-type]  # the same document: its plans
    assert kept.of(operations[0], {}) is not plans[0]  # type: ignore[arg-type]  # evicted (two kept): new
    with_directive = parse("query($v: Boolean!) { holder { checked @include(if: $v) { value } } }")
    assert kept.of(with_directive.definitions[0], {}) is None  # type: ignore[arg-type]
