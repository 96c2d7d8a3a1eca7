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


def graphql_blocks() -> list[str]:
    for path in API_MD_CANDIDATES:
        if path.exists():
            blocks = re.findall(r"```graphql\n(.*?)```", path.read_text(), re.S)
            assert blocks
            return blocks
    pytest.fail("API.md not found next to the repository (../shared/API.md) nor in docs/")


def contract_sdl() -> str:
    return graphql_blocks()[0]


def additions_sdl() -> str:
    """The contract with its "Additions (second wave)" applied (the last graphql block extends the first)."""
    blocks = graphql_blocks()
    assert len(blocks) >= 2, "API.md has no Additions block"
    return blocks[0] + "\n" + blocks[-1]


# The Additions issue 8 serves (format validation, posting totals, reconciliation): every name with the
# contract's type. None = every field of the type. The other Additions (viewerCan, erpRequests filter/orderBy,
# AMOUNT_OUT_OF_RANGE) belong to other issues.
ISSUE_8_ADDITIONS: dict[str, list[str] | None] = {
    "ErrorCode": ["ERP_FORMAT_INVALID", "POSTING_TOTALS_MISMATCH"],
    "Blocker": ["lineItem", "field"],
    "ExportEntry": None,
    "ErpRequest": ["entries", "entryCount", "entriesTotal"],
    "ReconciliationLine": None,
    "Reconciliation": None,
    "Budget": ["reconciliation"],
}


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


def test_the_additions_of_issue_8_are_served_as_the_contract_says() -> None:
    contract = build_schema(additions_sdl())
    served = schema._schema
    problems: list[str] = []
    for name, names in ISSUE_8_ADDITIONS.items():
        ctype, stype = contract.type_map[name], served.type_map.get(name)
        if stype is None:
            problems.append(f"missing type {name}")
            continue
        if isinstance(ctype, GraphQLEnumType):
            assert isinstance(stype, GraphQLEnumType)
            problems += [f"enum {name} lacks {v}" for v in names or ctype.values if v not in stype.values]
            continue
        assert isinstance(ctype, GraphQLObjectType) and isinstance(stype, GraphQLObjectType)
        for field_name in names or list(ctype.fields):
            cfield, sfield = ctype.fields[field_name], stype.fields.get(field_name)
            if sfield is None:
                problems.append(f"{name}.{field_name} missing")
            elif str(sfield.type) != str(cfield.type):
                problems.append(f"{name}.{field_name}: {sfield.type} != contract {cfield.type}")
    # Given only as a comment in the Additions: ErpRequestActionInput gains entryCount: Int, totalAmount: Decimal.
    action_input = served.type_map["ErpRequestActionInput"]
    assert isinstance(action_input, GraphQLInputObjectType)
    for field_name, type_name in (("entryCount", "Int"), ("totalAmount", "Decimal")):
        found = action_input.fields.get(field_name)
        if found is None or str(found.type) != type_name:
            problems.append(f"ErpRequestActionInput.{field_name} is not {type_name}")
    assert problems == []
