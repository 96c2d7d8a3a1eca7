"""Bad input over HTTP: every refusal names its code and changes nothing, and no answer leaks internals or
another company's existence."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from persistence.database import Database
from persistence.ids import new_id
from resolvers.context import Services
from tests.e2e.conftest import (
    CONFIRM_POSTING,
    CREATE_LINE,
    CREATE_MODIFICATION,
    DECIDE,
    IMPORT_LINES,
    LOCK,
    SEND,
    SYNC_PROJECT,
    UPDATE_LINE,
    add_line,
    assert_no_leak,
    budget_of,
    codes,
    gql,
    line_fields,
    ok,
    post_graphql,
    ready_to_send,
    refused,
)
from tests.support import Tenant, make_tenant, snapshot

DELETE_LINE = """mutation($id: ID!) {
  deleteBudgetLineItem(id: $id) { budget { id } userErrors { code message field } } }"""
INLINE_FLOAT = """mutation($b: ID!, $c: ID!, $t: ID!) {
  createBudgetLineItem(input: {budgetId: $b, item: {costCodeId: $c, costTypeId: $t, originalAmount: 12.5}}) {
    lineItem { id } userErrors { code }
  } }"""


class Unchanged:
    """`async with Unchanged(db, company...)`: the companies' rows are identical before and after."""

    def __init__(self, db: Database, *company_ids: str) -> None:
        self.db, self.company_ids = db, company_ids
        self.before: list[Any] = []

    async def __aenter__(self) -> None:
        self.before = [await snapshot(self.db, c) for c in self.company_ids]

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert [await snapshot(self.db, c) for c in self.company_ids] == self.before


async def refused_with(client: httpx.AsyncClient, token: str, code: str, query: str, **variables: Any) -> list[Any]:
    errors = await refused(client, token, query, **variables)
    assert codes(errors) == [code], errors
    assert all(e["message"] for e in errors)
    return errors


async def test_amount_with_three_fraction_digits_is_refused_on_its_field(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    admin = tenant.token("admin")
    line = await add_line(client, tenant, "03-300", "L", "10.00")
    async with Unchanged(db, tenant.company_id):
        errors = await refused_with(client, admin, "VALIDATION_FAILED", CREATE_LINE,
                                    i={"budgetId": tenant.budget_id,
                                       "item": line_fields(tenant, "05-120", "M", "12.345")})
        assert errors[0]["field"] == ["input", "item", "originalAmount"]
        errors = await refused_with(client, admin, "VALIDATION_FAILED", UPDATE_LINE,
                                    i={"id": line, "originalAmount": "12.345"})
        assert errors[0]["field"] == ["input", "originalAmount"]


@pytest.mark.parametrize(
    ("amount", "named"),
    [
        ("1e3", "exponent"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "Infinity"),
        (12.5, "float"),
        ("12345678901234", "integer digits"),
        ("12.34567", "fraction digits"),
        ("", "plain decimal"),
    ],
)
async def test_malformed_decimal_is_a_request_error_that_names_the_problem(
    client: httpx.AsyncClient, services: Services, db: Database, amount: object, named: str
) -> None:
    tenant = await make_tenant(services)
    async with Unchanged(db, tenant.company_id):
        body = await gql(client, tenant.token("admin"), CREATE_LINE,
                         i={"budgetId": tenant.budget_id, "item": line_fields(tenant, "03-300", "L", amount)})
    assert body.get("data") is None
    (error,) = body["errors"]
    assert "originalAmount" in error["message"] and named in error["message"], error
    assert "Unexpected error" not in error["message"]


async def test_float_literal_in_the_query_is_a_request_error(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    async with Unchanged(db, tenant.company_id):
        response = await post_graphql(client, tenant.token("admin"), INLINE_FLOAT, {
            "b": tenant.budget_id, "c": tenant.cost_codes["03-300"], "t": tenant.cost_types["L"],
        })
    assert_no_leak(response.text)
    body = response.json()
    assert body.get("data") is None
    (error,) = body["errors"]
    assert "Decimal" in error["message"] and "float" in error["message"], error


async def test_unknown_ids_are_not_found(client: httpx.AsyncClient, services: Services, db: Database) -> None:
    tenant = await make_tenant(services)
    admin = tenant.token("admin")
    line = await add_line(client, tenant, "03-300", "L", "10.00")
    unknown_budget, unknown_line = new_id("Budget"), new_id("BudgetLineItem")
    unknown_request = new_id("ErpRequest")
    async with Unchanged(db, tenant.company_id):
        for budget_id in (unknown_budget, "not-an-id"):
            await refused_with(client, admin, "NOT_FOUND", CREATE_LINE,
                               i={"budgetId": budget_id, "item": line_fields(tenant, "03-300", "M", "1.00")})
            await refused_with(client, admin, "NOT_FOUND", LOCK, i={"budgetId": budget_id})
            await refused_with(client, admin, "NOT_FOUND", SEND, i={"budgetId": budget_id})
        await refused_with(client, admin, "NOT_FOUND", UPDATE_LINE, i={"id": unknown_line, "originalAmount": "1.00"})
        await refused_with(client, admin, "NOT_FOUND", DELETE_LINE, id=unknown_line)
        await refused_with(client, admin, "NOT_FOUND", SYNC_PROJECT, p=new_id("Project"))
        await refused_with(client, tenant.token("approver"), "NOT_FOUND", DECIDE,
                           i={"erpRequestId": unknown_request, "decision": "ACCEPT"})
        await refused_with(client, tenant.token("integrator"), "NOT_FOUND", CONFIRM_POSTING,
                           i={"erpRequestId": unknown_request})
        item = {**line_fields(tenant, "03-300", "M", "1.00"), "costCodeId": new_id("CostCode")}
        errors = await refused_with(client, admin, "NOT_FOUND", CREATE_LINE,
                                    i={"budgetId": tenant.budget_id, "item": item})
        assert errors[0]["field"] == ["input", "item", "costCodeId"]

    await ok(client, admin, LOCK, i={"budgetId": tenant.budget_id})
    async with Unchanged(db, tenant.company_id):
        errors = await refused_with(client, admin, "NOT_FOUND", CREATE_MODIFICATION, i={
            "budgetId": tenant.budget_id, "fromLineItemId": line, "toLineItemId": unknown_line, "amount": "1.00",
        })
        assert errors[0]["field"] == ["input", "toLineItemId"]
        body = await gql(client, admin, "query($id: ID!) { budget(id: $id) { id } erpRequest(id: $id) { id } }",
                         id=unknown_budget)
        assert body == {"data": {"budget": None, "erpRequest": None}}


async def other_company_with_a_request(client: httpx.AsyncClient, services: Services) -> tuple[Tenant, dict[str, str]]:
    tenant = await make_tenant(services)
    lines = await ready_to_send(client, tenant)
    sent = await ok(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
    return tenant, {**lines, "request": sent["sendToERP"]["erpRequest"]["id"]}


async def test_another_companys_objects_are_not_found_and_never_leak(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    theirs, their_ids = await other_company_with_a_request(client, services)
    ours = await make_tenant(services)
    line = their_ids["concrete"]
    secrets = (theirs.company_id, theirs.budget_id, theirs.project_id, line, their_ids["request"],
               theirs.users["admin"], theirs.cost_codes["03-300"])

    async def refuse(role: str, query: str, **variables: Any) -> list[Any]:
        response = await post_graphql(client, ours.token(role), query, variables)
        assert_no_leak(response.text, *secrets)
        errors = await refused_with(client, ours.token(role), "NOT_FOUND", query, **variables)
        return errors

    admin = "admin"
    async with Unchanged(db, theirs.company_id, ours.company_id):
        await refuse(admin, CREATE_LINE,
                     i={"budgetId": theirs.budget_id, "item": line_fields(ours, "03-300", "L", "1.00")})
        await refuse(admin, UPDATE_LINE, i={"id": line, "originalAmount": "1.00"})
        await refuse(admin, DELETE_LINE, id=line)
        await refuse(admin, LOCK, i={"budgetId": theirs.budget_id})
        await refuse(admin, SEND, i={"budgetId": theirs.budget_id})
        await refuse(admin, SYNC_PROJECT, p=theirs.project_id)
        await refuse("approver", DECIDE, i={"erpRequestId": their_ids["request"], "decision": "REJECT", "reason": "x"})
        await refuse("integrator", CONFIRM_POSTING, i={"erpRequestId": their_ids["request"]})
        errors = await refuse(admin, CREATE_LINE, i={
            "budgetId": ours.budget_id,
            "item": {**line_fields(ours, "03-300", "L", "1.00"), "costCodeId": theirs.cost_codes["03-300"]},
        })
        assert errors[0]["field"] == ["input", "item", "costCodeId"]

        for root, object_id in (("budget", theirs.budget_id), ("project", theirs.project_id),
                                ("erpRequest", their_ids["request"])):
            query = f"query($id: ID!) {{ {root}(id: $id) {{ id }} }}"
            response = await post_graphql(client, ours.token("admin"), query, {"id": object_id})
            assert_no_leak(response.text, *secrets)
            assert response.json() == {"data": {root: None}}
        for object_id in (theirs.budget_id, theirs.project_id, their_ids["request"], line, theirs.company_id,
                          theirs.users["admin"], theirs.cost_codes["03-300"], theirs.cost_types["L"]):
            for role in ("admin", "approver"):
                response = await post_graphql(client, ours.token(role), "query($id: ID!) { node(id: $id) { id } }",
                                              {"id": object_id})
                assert_no_leak(response.text, *secrets)
                assert response.json() == {"data": {"node": None}}, object_id
        queue = await post_graphql(client, ours.token("approver"),
                                   "{ erpRequests { totalCount edges { node { id } } } projects { totalCount } }", {})
        assert_no_leak(queue.text, *secrets)
        assert queue.json()["data"]["erpRequests"]["totalCount"] == 0


@pytest.mark.parametrize("reason", [None, "", "   "])
async def test_rejection_without_a_reason_is_refused(
    client: httpx.AsyncClient, services: Services, db: Database, reason: str | None
) -> None:
    tenant = await make_tenant(services)
    await ready_to_send(client, tenant)
    request_id = (await ok(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id}))[
        "sendToERP"]["erpRequest"]["id"]
    decision: dict[str, Any] = {"erpRequestId": request_id, "decision": "REJECT"}
    if reason is not None:
        decision["reason"] = reason
    async with Unchanged(db, tenant.company_id):
        errors = await refused_with(client, tenant.token("approver"), "REASON_REQUIRED", DECIDE, i=decision)
        assert errors[0]["field"] == ["input", "reason"]
    assert (await budget_of(client, tenant))["exportStatus"] == "PENDING_ACCEPTANCE"


async def test_duplicate_line_key_is_refused(client: httpx.AsyncClient, services: Services, db: Database) -> None:
    tenant = await make_tenant(services)
    admin = tenant.token("admin")
    await add_line(client, tenant, "03-300", "L", "10.00")
    await add_line(client, tenant, "03-300", "L", "10.00", sub_job="PHASE-2")
    async with Unchanged(db, tenant.company_id):
        for sub_job in (None, "PHASE-2"):
            await refused_with(client, admin, "DUPLICATE_LINE_ITEM", CREATE_LINE,
                               i={"budgetId": tenant.budget_id,
                                  "item": line_fields(tenant, "03-300", "L", "99.00", sub_job=sub_job)})
    # Another sub job or cost type is another line.
    await add_line(client, tenant, "03-300", "L", "10.00", sub_job="PHASE-3")
    await add_line(client, tenant, "03-300", "M", "10.00")
    assert (await budget_of(client, tenant))["lineItemCount"] == 4


async def test_import_with_one_bad_row_creates_nothing(
    client: httpx.AsyncClient, services: Services, db: Database
) -> None:
    tenant = await make_tenant(services)
    other = await make_tenant(services)
    admin = tenant.token("admin")
    good = [line_fields(tenant, "03-300", "L", "100.00"), line_fields(tenant, "05-120", "M", "200.00")]
    bad_rows = {
        "VALIDATION_FAILED": (line_fields(tenant, "09-900", "S", "1.234"), ["input", "items", "1", "originalAmount"]),
        "NOT_FOUND": ({**line_fields(tenant, "09-900", "S", "1.00"), "costTypeId": other.cost_types["S"]},
                      ["input", "items", "1", "costTypeId"]),
        "DUPLICATE_LINE_ITEM": (line_fields(tenant, "03-300", "L", "5.00"), ["input", "items", "1"]),
    }
    async with Unchanged(db, tenant.company_id, other.company_id):
        for code, (row, field) in bad_rows.items():
            items = [good[0], row, good[1]]
            errors = await refused_with(client, admin, code, IMPORT_LINES,
                                        i={"budgetId": tenant.budget_id, "items": items})
            assert errors[0]["field"] == field
        await refused_with(client, admin, "VALIDATION_FAILED", IMPORT_LINES,
                           i={"budgetId": tenant.budget_id, "items": []})
    assert (await budget_of(client, tenant))["lineItemCount"] == 0

    imported = await ok(client, admin, IMPORT_LINES, i={"budgetId": tenant.budget_id, "items": good})
    assert imported["importBudgetLineItems"]["budget"]["lineItemCount"] == 2
    budget = await budget_of(client, tenant)
    assert budget["originalBudgetTotal"] == "300.00"
