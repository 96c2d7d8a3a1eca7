"""The schema documents itself: every type, field, argument, input field, enum value and directive of ours has
a description, read the way clients read it (the full introspection query), and the facts the descriptions
state about codes and page sizes hold."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import pytest
import strawberry
from graphql import DirectiveLocation, get_introspection_query, specified_directives, specified_scalar_types

from schema.build import schema
from schema.common import described
from tests.support import Tenant

# Everything clients can ask for: deprecated fields and enum values, and deprecated arguments and input fields.
INTROSPECTION = get_introspection_query(
    descriptions=True, directive_is_repeatable=True, schema_description=True, input_value_deprecation=True
)
BUILT_IN_SCALARS = frozenset(specified_scalar_types)
BUILT_IN_DIRECTIVES = frozenset(d.name for d in specified_directives)


def introspect(served: strawberry.Schema) -> dict[str, Any]:
    result = served.execute_sync(INTROSPECTION)
    assert result.errors is None, result.errors
    assert result.data is not None
    introspected: dict[str, Any] = result.data["__schema"]
    return introspected


def _lacks(element: dict[str, Any]) -> bool:
    return not (element.get("description") or "").strip()


def undescribed(introspected: dict[str, Any]) -> list[str]:
    """Every element of our own without a description, named the way the SDL spells it."""
    missing: list[str] = []
    for t in introspected["types"]:
        name = t["name"]
        if name.startswith("__") or name in BUILT_IN_SCALARS:
            continue
        if _lacks(t):
            missing.append(f"{t['kind'].lower().replace('_', ' ')} {name}")
        for f in t["fields"] or []:
            if _lacks(f):
                missing.append(f"field {name}.{f['name']}")
            missing += [f"argument {name}.{f['name']}({a['name']})" for a in f["args"] if _lacks(a)]
        missing += [f"input field {name}.{f['name']}" for f in t["inputFields"] or [] if _lacks(f)]
        missing += [f"enum value {name}.{v['name']}" for v in t["enumValues"] or [] if _lacks(v)]
    for d in introspected["directives"]:
        if d["name"] in BUILT_IN_DIRECTIVES:
            continue
        if _lacks(d):
            missing.append(f"directive @{d['name']}")
        missing += [f"directive argument @{d['name']}({a['name']})" for a in d["args"] if _lacks(a)]
    return missing


def all_descriptions(introspected: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, description) of every described element of ours."""
    found: list[tuple[str, str]] = []
    for t in introspected["types"]:
        name = t["name"]
        if name.startswith("__"):
            continue
        elements = [(name, t)]
        for f in t["fields"] or []:
            elements += [(f"{name}.{f['name']}", f)]
            elements += [(f"{name}.{f['name']}({a['name']})", a) for a in f["args"]]
        elements += [(f"{name}.{f['name']}", f) for f in t["inputFields"] or []]
        elements += [(f"{name}.{v['name']}", v) for v in t["enumValues"] or []]
        found += [(where, e["description"]) for where, e in elements if e.get("description")]
    return found


def test_every_type_field_argument_input_field_and_enum_value_has_a_description() -> None:
    missing = undescribed(introspect(schema))
    if missing:
        pytest.fail(f"{len(missing)} schema element(s) without a description:\n" + "\n".join(missing), pytrace=False)


# --- the check itself finds what is missing, wherever it is ---------------------------------------------------


class Colour(enum.Enum):
    RED = "RED"
    GREEN = strawberry.enum_value("GREEN", description="Described.")


strawberry.enum(Colour)


@strawberry.input(description="Described.")
class Paint:
    colour: Colour
    coats: int = strawberry.field(default=1, description="Described.")


@strawberry.directive(locations=[DirectiveLocation.FIELD], description="Described.")
def shout(value: str, loud: bool) -> str:
    return value.upper() if loud else value


@strawberry.type
class TinyQuery:
    @described("Described.")
    def paint(self, given: Paint, shade: Annotated[int, strawberry.argument(description="Described.")] = 0) -> int:
        return shade

    plain: str = "plain"


def test_the_check_names_every_kind_of_element_that_lacks_a_description() -> None:
    tiny = strawberry.Schema(query=TinyQuery, directives=[shout])
    assert sorted(undescribed(introspect(tiny))) == sorted(
        [
            "object TinyQuery",
            "field TinyQuery.plain",
            "argument TinyQuery.paint(given)",
            "enum Colour",
            "enum value Colour.RED",
            "input field Paint.colour",
            "directive argument @shout(value)",
            "directive argument @shout(loud)",
        ]
    )


# --- what the descriptions state holds --------------------------------------------------------------------------

# Codes named in descriptions that are not values of an enum of the schema: top-level `extensions.code`s.
TOP_LEVEL_CODES = frozenset({"BAD_USER_INPUT", "SUBSCRIBER_TOO_SLOW"})
CODE_LIKE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def test_every_code_or_status_a_description_names_exists() -> None:
    introspected = introspect(schema)
    values = {v["name"] for t in introspected["types"] for v in t["enumValues"] or []}
    unknown = [
        f"{where}: {word}"
        for where, text in all_descriptions(introspected)
        for word in CODE_LIKE.findall(text)
        if word not in values and word not in TOP_LEVEL_CODES
    ]
    assert unknown == []


# Where each type with a paged field is selected in `query($b: ID!) { ... }` ($b: the tenant's budget).
PATHS = {"Query": "budget(id: $b) {{ id }} {}", "Budget": "budget(id: $b) {{ {} }}"}


def paged_fields(introspected: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, field, its `first` argument) of every field that takes `first`."""
    return [
        (t["name"], f["name"], next(a for a in f["args"] if a["name"] == "first"))
        for t in introspected["types"]
        if not t["name"].startswith("__")
        for f in t["fields"] or []
        if any(a["name"] == "first" for a in f["args"])
    ]


async def test_every_page_takes_the_default_and_refuses_beyond_the_maximum_its_description_states(
    tenant: Tenant,
) -> None:
    pages = paged_fields(introspect(schema))
    assert len(pages) >= 4
    for owner, field, first_argument in pages:
        assert owner in PATHS, f"no path to reach {owner}.{field} in this test"
        described_first = first_argument["description"] or ""
        assert f"null means the default, {first_argument['defaultValue']}." in described_first, f"{owner}.{field}"
        stated = re.search(r"at most ([\d,]+)", described_first)
        assert stated is not None, f"{owner}.{field}(first) does not state its maximum"
        maximum = int(stated.group(1).replace(",", ""))
        for first, refused in ((maximum, False), (maximum + 1, True)):
            query = "query($b: ID!) { " + PATHS[owner].format(f"{field}(first: {first}) {{ totalCount }}") + " }"
            result = await tenant.execute("admin", query, b=tenant.budget_id)
            messages = [e.message for e in result.errors or []]
            expected = [f"first must be between 0 and {maximum}"] if refused else []
            assert messages == expected, f"{owner}.{field}(first: {first})"
