"""The GraphQL contract of API.md holds, and schema.graphql at the repo root is the schema we serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    Undefined,
    build_schema,
)

from schema.build import schema

ROOT = Path(__file__).resolve().parent.parent
API_MD_CANDIDATES = [ROOT.parent / "shared" / "API.md", ROOT / "docs" / "API.md"]


def contract_sdl() -> str:
    for path in API_MD_CANDIDATES:
        if path.exists():
            match = re.search(r"```graphql\n(.*?)```", path.read_text(), re.S)
            assert match is not None
            return match.group(1)
    pytest.fail("API.md not found next to the repository (../shared/API.md) nor in docs/")


def test_schema_graphql_file_is_the_served_schema() -> None:
    exported = (ROOT / "schema.graphql").read_text()
    assert exported == schema.as_str() + "\n", "run `python -m schema.export` to refresh schema.graphql"


def test_every_contract_type_field_and_argument_is_served_with_the_same_type() -> None:
    contract = build_schema(contract_sdl())
    served = schema._schema
    problems: list[str] = []
    for name, ctype in contract.type_map.items():
        if name.startswith("__"):
            continue
        stype = served.type_map.get(name)
        if stype is None:
            problems.append(f"missing type {name}")
            continue
        if not isinstance(stype, type(ctype)):
            problems.append(f"{name} is a {type(stype).__name__}, contract says {type(ctype).__name__}")
            continue
        if isinstance(ctype, GraphQLEnumType):
            assert isinstance(stype, GraphQLEnumType)
            missing = set(ctype.values) - set(stype.values)
            if missing:
                problems.append(f"enum {name} lacks {sorted(missing)}")
        if isinstance(ctype, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            assert isinstance(stype, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType))
            for field_name, cfield in ctype.fields.items():
                sfield = stype.fields.get(field_name)
                if sfield is None:
                    problems.append(f"{name}.{field_name} missing")
                    continue
                if str(sfield.type) != str(cfield.type):
                    problems.append(f"{name}.{field_name}: {sfield.type} != contract {cfield.type}")
                for arg_name, carg in getattr(cfield, "args", {}).items():
                    sarg = sfield.args.get(arg_name)
                    if sarg is None or str(sarg.type) != str(carg.type):
                        problems.append(f"{name}.{field_name}({arg_name}) differs from the contract")
                    elif carg.default_value is not Undefined and sarg.default_value != carg.default_value:
                        problems.append(f"{name}.{field_name}({arg_name}) default differs")
        if isinstance(ctype, GraphQLObjectType):
            assert isinstance(stype, GraphQLObjectType)
            interfaces = {i.name for i in stype.interfaces}
            for interface in ctype.interfaces:
                if interface.name not in interfaces:
                    problems.append(f"{name} does not implement {interface.name}")
    assert problems == []
