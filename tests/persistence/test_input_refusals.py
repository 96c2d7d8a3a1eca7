"""Every bad input, on both engines, through the real schema: text that cannot be stored (NUL, a lone surrogate),
text longer than its column, ids no row can hold, bad idempotency keys, and amounts or totals that would pass
the 13 integer digits of NUMERIC(15,2). Each is refused with its code on the field at fault, never with
"Unexpected error.", and changes nothing; SQLite and PostgreSQL answer alike.

One world per engine (module scope: building it is most of the time), each case proving with a snapshot that
its refusal changed nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.export_worker import ExportWorker
from persistence.database import Database
from resolvers.context import Services
from tests.support import Tenant, fresh_database, in_ci, make_services, make_tenant, snapshot

NUL, SURROGATE = "ok\x00", "ok\ud800"
MAX = "9999999999999.99"
ERRORS = "userErrors { code message field }"


def long(length: int) -> str:
    """One character more than a column of `length` holds."""
    return "x" * (length + 1)


def mutation(name: str, input_type: str) -> str:
    return f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ {ERRORS} }} }}"


CREATE_PROJECT = mutation("createProject", "CreateProjectInput")
CREATE_COST_CODE = mutation("createCostCode", "CreateCostCodeInput")
CREATE_COST_TYPE = mutation("createCostType", "CreateCostTypeInput")
CREATE_LINE = mutation("createBudgetLineItem", "CreateBudgetLineItemInput")
UPDATE_LINE = mutation("updateBudgetLineItem", "UpdateBudgetLineItemInput")
IMPORT_LINES = mutation("importBudgetLineItems", "ImportBudgetLineItemsInput")
CREATE_MODIFICATION = mutation("createBudgetModification", "CreateBudgetModificationInput")
LOCK = mutation("lockBudget", "BudgetActionInput")
UNLOCK = mutation("unlockBudget", "BudgetActionInput")
SEND = mutation("sendToERP", "BudgetActionInput")
RETRIEVE = mutation("retrieveBudget", "BudgetActionInput")
DECIDE = mutation("decideExport", "DecideExportInput")
RETRY = mutation("retryExport", "ErpRequestActionInput")
CONFIRM = mutation("confirmJobCostPosting", "ErpRequestActionInput")
SYNC = f"mutation($i: ID!) {{ syncProjectToERP(projectId: $i) {{ {ERRORS} }} }}"
DELETE_LINE = f"mutation($i: ID!) {{ deleteBudgetLineItem(id: $i) {{ {ERRORS} }} }}"
BLOCKERS = "query($i: ID!) { budget(id: $i) { revisedBudgetTotal sendBlockers { code message } } }"


# --- the world: one tenant per budget state the cases need --------------------------------------------------


@dataclass
class World:
    services: Services
    tenants: dict[str, Tenant] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)  # name -> line id
    request_id: str = ""


async def line(tenant: Tenant, code: str, ctype: str, amount: str) -> str:
    item = {"costCodeId": tenant.cost_codes[code], "costTypeId": tenant.cost_types[ctype], "originalAmount": amount}
    data = await tenant.ok(
        "admin",
        "mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) "
        "{ lineItem { id } userErrors { code message } } }",
        i={"budgetId": tenant.budget_id, "item": item},
    )
    line_id: str = data["createBudgetLineItem"]["lineItem"]["id"]
    return line_id


async def act(tenant: Tenant, role: str, query: str, **variables: Any) -> None:
    await tenant.ok(role, query, **variables)


async def build_world(services: Services) -> World:
    world = World(services)
    t = world.tenants
    # "open": unlocked, two lines.
    t["open"] = await make_tenant(services)
    world.lines["open"] = await line(t["open"], "03-300", "L", "100.00")
    await line(t["open"], "05-120", "M", "200.00")
    # "pending": locked and sent, its request pending acceptance.
    t["pending"] = await make_tenant(services)
    await line(t["pending"], "03-300", "L", "100.00")
    await act(t["pending"], "admin", SYNC, i=t["pending"].project_id)
    await act(t["pending"], "admin", LOCK, i={"budgetId": t["pending"].budget_id})
    sent = await t["pending"].ok(
        "admin",
        "mutation($i: BudgetActionInput!) { sendToERP(input: $i) { erpRequest { id } userErrors { code } } }",
        i={"budgetId": t["pending"].budget_id},
    )
    world.request_id = sent["sendToERP"]["erpRequest"]["id"]
    # "full": unlocked, totals one step from the limit: +MAX, -MAX, +MAX, -5.00 (total MAX - 5.00).
    t["full"] = await make_tenant(services)
    full = t["full"]
    world.lines["full+"] = await line(full, "03-300", "L", MAX)
    world.lines["full-"] = await line(full, "03-300", "M", "-" + MAX)
    await line(full, "05-120", "L", MAX)
    world.lines["full-5"] = await line(full, "05-120", "M", "-5.00")
    # "locked": locked, not sent: +MAX, -MAX, and a zero line that already received MAX by modification.
    t["locked"] = await make_tenant(services)
    locked = t["locked"]
    world.lines["locked+"] = await line(locked, "03-300", "L", MAX)
    world.lines["locked-"] = await line(locked, "03-300", "M", "-" + MAX)
    world.lines["locked0"] = await line(locked, "05-120", "L", "0.00")
    await act(locked, "admin", LOCK, i={"budgetId": locked.budget_id})
    await act(
        locked, "admin", CREATE_MODIFICATION, i={"budgetId": locked.budget_id, "toLineItemId": world.lines["locked0"],
                                                 "amount": MAX}
    )
    # "resend": a line exported at +MAX (synced), then set to -MAX: a re-send would carry a delta of -2 * MAX.
    t["resend"] = await make_tenant(services)
    resend = t["resend"]
    world.lines["resend"] = await line(resend, "03-300", "L", MAX)
    await act(resend, "admin", SYNC, i=resend.project_id)
    await act(resend, "admin", LOCK, i={"budgetId": resend.budget_id})
    sent = await resend.ok(
        "admin",
        "mutation($i: BudgetActionInput!) { sendToERP(input: $i) { erpRequest { id } userErrors { code } } }",
        i={"budgetId": resend.budget_id},
    )
    request_id = sent["sendToERP"]["erpRequest"]["id"]
    await act(resend, "approver", DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})
    assert await ExportWorker(services, poll_seconds=0.05, timeout_seconds=5).run_once() == 1
    await act(resend, "integrator", CONFIRM, i={"erpRequestId": request_id})
    await act(resend, "admin", UNLOCK, i={"budgetId": resend.budget_id})
    await act(resend, "admin", UPDATE_LINE, i={"id": world.lines["resend"], "originalAmount": "-" + MAX})
    await act(resend, "admin", LOCK, i={"budgetId": resend.budget_id})
    return world


class Worlds:
    """The module's worlds, one per engine, built on first use and kept until the module ends (so the order
    the tests run in, shuffled or not, never builds one twice)."""

    def __init__(self, postgres_url: str | OSError, sqlite_url: str) -> None:
        self.urls: dict[str, str | OSError] = {"sqlite": sqlite_url, "postgres": postgres_url}
        self.built: dict[str, World] = {}

    async def get(self, engine: str) -> World:
        if engine not in self.built:
            url = self.urls[engine]
            if isinstance(url, OSError):
                if in_ci():
                    pytest.fail(f"PostgreSQL is required in CI and is not reachable: {url}")
                pytest.skip(f"PostgreSQL not reachable ({url}); CI runs these")
            db: Database = await fresh_database(url)
            self.built[engine] = await build_world(make_services(db))
        return self.built[engine]

    async def close(self) -> None:
        for world in self.built.values():
            await world.services.connectors.aclose()
            await world.services.db.dispose()


@pytest.fixture(scope="module")
async def worlds(
    postgres_persistence_url: str | OSError, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worlds]:
    built = Worlds(postgres_persistence_url, f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bad-input') / 'b.db'}")
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, worlds: Worlds) -> World:
    return await worlds.get(request.param)


# --- the table --------------------------------------------------------------------------------------------


Variables = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    tenant: str
    role: str
    query: str
    variables: Variables
    code: str
    field: list[str]


def t(world: World, name: str) -> Tenant:
    return world.tenants[name]


def item(world: World, tenant: str = "open", **fields: Any) -> dict[str, Any]:
    ten = t(world, tenant)
    return {"costCodeId": ten.cost_codes["09-900"], "costTypeId": ten.cost_types["S"], "originalAmount": "1.00",
            **fields}


def text_cases() -> dict[str, Case]:
    """Every free-text input: NUL, a lone surrogate, and one character past its column."""
    fields: list[tuple[str, str, str, str, Callable[[World, str], dict[str, Any]], list[str], int]] = [
        # (name, tenant, role, query, variables(world, bad value), field, max length)
        ("createProject.name", "open", "admin", CREATE_PROJECT,
         lambda w, v: {"i": {"name": v, "number": "N-1"}}, ["input", "name"], 200),
        ("createProject.number", "open", "admin", CREATE_PROJECT,
         lambda w, v: {"i": {"name": "P", "number": v}}, ["input", "number"], 60),
        ("createCostCode.code", "open", "admin", CREATE_COST_CODE,
         lambda w, v: {"i": {"code": v, "description": "d"}}, ["input", "code"], 40),
        ("createCostCode.description", "open", "admin", CREATE_COST_CODE,
         lambda w, v: {"i": {"code": "C-1", "description": v}}, ["input", "description"], 200),
        ("createCostType.code", "open", "admin", CREATE_COST_TYPE,
         lambda w, v: {"i": {"code": v, "name": "n"}}, ["input", "code"], 20),
        ("createCostType.name", "open", "admin", CREATE_COST_TYPE,
         lambda w, v: {"i": {"code": "T-1", "name": v}}, ["input", "name"], 100),
        ("createBudgetLineItem.subJob", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "item": item(w, subJob=v)}},
         ["input", "item", "subJob"], 60),
        ("createBudgetLineItem.description", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "item": item(w, description=v)}},
         ["input", "item", "description"], 500),
        ("createBudgetLineItem.unitOfMeasure", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "item": item(w, unitOfMeasure=v)}},
         ["input", "item", "unitOfMeasure"], 20),
        ("updateBudgetLineItem.description", "open", "admin", UPDATE_LINE,
         lambda w, v: {"i": {"id": w.lines["open"], "description": v}}, ["input", "description"], 500),
        ("updateBudgetLineItem.unitOfMeasure", "open", "admin", UPDATE_LINE,
         lambda w, v: {"i": {"id": w.lines["open"], "unitOfMeasure": v}}, ["input", "unitOfMeasure"], 20),
        ("importBudgetLineItems.subJob", "open", "admin", IMPORT_LINES,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "items": [item(w), item(w, subJob=v)]}},
         ["input", "items", "1", "subJob"], 60),
        ("importBudgetLineItems.description", "open", "admin", IMPORT_LINES,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "items": [item(w, description=v)]}},
         ["input", "items", "0", "description"], 500),
        ("createBudgetModification.notes", "locked", "admin", CREATE_MODIFICATION,
         lambda w, v: {"i": {"budgetId": t(w, "locked").budget_id, "toLineItemId": w.lines["locked0"],
                             "amount": "1.00", "notes": v}}, ["input", "notes"], 2000),
        ("decideExport.reason", "pending", "approver", DECIDE,
         lambda w, v: {"i": {"erpRequestId": w.request_id, "decision": "REJECT", "reason": v}},
         ["input", "reason"], 2000),
        ("confirmJobCostPosting.erpReference", "pending", "integrator", CONFIRM,
         lambda w, v: {"i": {"erpRequestId": w.request_id, "erpReference": v}}, ["input", "erpReference"], 200),
    ]
    cases: dict[str, Case] = {}
    for name, tenant, role, query, variables, path, length in fields:
        for label, bad in (("NUL", NUL), ("surrogate", SURROGATE), ("too long", long(length))):
            cases[f"{name} {label}"] = Case(
                tenant, role, query, lambda w, f=variables, b=bad: f(w, b), "VALIDATION_FAILED", path  # type: ignore[misc]
            )
    return cases


def id_cases() -> dict[str, Case]:
    """Every id a mutation takes: NUL and a lone surrogate are VALIDATION_FAILED, a too long id NOT_FOUND."""
    fields: list[tuple[str, str, str, str, Callable[[World, str], dict[str, Any]], list[str]]] = [
        ("syncProjectToERP.projectId", "open", "admin", SYNC, lambda w, v: {"i": v}, ["projectId"]),
        ("createBudgetLineItem.budgetId", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": v, "item": item(w)}}, ["input", "budgetId"]),
        ("createBudgetLineItem.costCodeId", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "item": item(w, costCodeId=v)}},
         ["input", "item", "costCodeId"]),
        ("createBudgetLineItem.costTypeId", "open", "admin", CREATE_LINE,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "item": item(w, costTypeId=v)}},
         ["input", "item", "costTypeId"]),
        ("updateBudgetLineItem.id", "open", "admin", UPDATE_LINE,
         lambda w, v: {"i": {"id": v, "description": "d"}}, ["input", "id"]),
        ("deleteBudgetLineItem.id", "open", "admin", DELETE_LINE, lambda w, v: {"i": v}, ["id"]),
        ("importBudgetLineItems.costTypeId", "open", "admin", IMPORT_LINES,
         lambda w, v: {"i": {"budgetId": t(w, "open").budget_id, "items": [item(w, costTypeId=v)]}},
         ["input", "items", "0", "costTypeId"]),
        ("createBudgetModification.budgetId", "locked", "admin", CREATE_MODIFICATION,
         lambda w, v: {"i": {"budgetId": v, "toLineItemId": w.lines["locked0"], "amount": "1.00"}},
         ["input", "budgetId"]),
        ("createBudgetModification.fromLineItemId", "locked", "admin", CREATE_MODIFICATION,
         lambda w, v: {"i": {"budgetId": t(w, "locked").budget_id, "fromLineItemId": v,
                             "toLineItemId": w.lines["locked0"], "amount": "1.00"}}, ["input", "fromLineItemId"]),
        ("createBudgetModification.toLineItemId", "locked", "admin", CREATE_MODIFICATION,
         lambda w, v: {"i": {"budgetId": t(w, "locked").budget_id, "toLineItemId": v, "amount": "1.00"}},
         ["input", "toLineItemId"]),
        ("lockBudget.budgetId", "open", "admin", LOCK, lambda w, v: {"i": {"budgetId": v}}, ["input", "budgetId"]),
        ("unlockBudget.budgetId", "locked", "admin", UNLOCK, lambda w, v: {"i": {"budgetId": v}},
         ["input", "budgetId"]),
        ("sendToERP.budgetId", "locked", "admin", SEND, lambda w, v: {"i": {"budgetId": v}}, ["input", "budgetId"]),
        ("retrieveBudget.budgetId", "pending", "admin", RETRIEVE, lambda w, v: {"i": {"budgetId": v}},
         ["input", "budgetId"]),
        ("decideExport.erpRequestId", "pending", "approver", DECIDE,
         lambda w, v: {"i": {"erpRequestId": v, "decision": "ACCEPT"}}, ["input", "erpRequestId"]),
        ("retryExport.erpRequestId", "pending", "approver", RETRY, lambda w, v: {"i": {"erpRequestId": v}},
         ["input", "erpRequestId"]),
        ("confirmJobCostPosting.erpRequestId", "pending", "integrator", CONFIRM,
         lambda w, v: {"i": {"erpRequestId": v}}, ["input", "erpRequestId"]),
    ]
    cases: dict[str, Case] = {}
    for name, tenant, role, query, variables, path in fields:
        for label, bad, code in (("NUL", "bgt_" + NUL, "VALIDATION_FAILED"),
                                 ("surrogate", SURROGATE, "VALIDATION_FAILED"),
                                 ("too long", long(40), "NOT_FOUND")):
            cases[f"{name} {label}"] = Case(
                tenant, role, query, lambda w, f=variables, b=bad: f(w, b), code, path  # type: ignore[misc]
            )
    return cases


def idempotency_cases() -> dict[str, Case]:
    actions = [
        ("lockBudget", "open", "admin", LOCK, lambda w: {"budgetId": t(w, "open").budget_id}),
        ("sendToERP", "locked", "admin", SEND, lambda w: {"budgetId": t(w, "locked").budget_id}),
        ("retrieveBudget", "pending", "admin", RETRIEVE, lambda w: {"budgetId": t(w, "pending").budget_id}),
        ("decideExport", "pending", "approver", DECIDE, lambda w: {"erpRequestId": w.request_id, "decision": "ACCEPT"}),
        ("retryExport", "pending", "approver", RETRY, lambda w: {"erpRequestId": w.request_id}),
        ("confirmJobCostPosting", "pending", "integrator", CONFIRM, lambda w: {"erpRequestId": w.request_id}),
    ]
    cases: dict[str, Case] = {}
    for name, tenant, role, query, variables in actions:
        for label, bad in (("NUL", NUL), ("surrogate", SURROGATE), ("too long", long(200))):
            cases[f"{name}.idempotencyKey {label}"] = Case(
                tenant, role, query, lambda w, f=variables, b=bad: {"i": {**f(w), "idempotencyKey": b}},  # type: ignore[misc]
                "VALIDATION_FAILED", ["input", "idempotencyKey"],
            )
    return cases


def amount_cases() -> dict[str, Case]:
    """Changes that would take a line's amount or the budget's totals past 13 integer digits."""
    full, locked = "full", "locked"
    return {
        "line: a new line takes the total past": Case(
            full, "admin", CREATE_LINE,
            lambda w: {"i": {"budgetId": t(w, full).budget_id, "item": item(w, full, originalAmount="5.01")}},
            "AMOUNT_OUT_OF_RANGE", ["input", "item", "originalAmount"]),
        "line: an update takes the total past": Case(
            full, "admin", UPDATE_LINE, lambda w: {"i": {"id": w.lines["full-5"], "originalAmount": "1.00"}},
            "AMOUNT_OUT_OF_RANGE", ["input", "originalAmount"]),
        "line: deleting a line that offset others takes the total past": Case(
            full, "admin", DELETE_LINE, lambda w: {"i": w.lines["full-"]}, "AMOUNT_OUT_OF_RANGE", ["id"]),
        "import: rows that each fit take the total past": Case(
            "open", "admin", IMPORT_LINES,
            lambda w: {"i": {"budgetId": t(w, "open").budget_id, "items": [
                item(w, originalAmount="6000000000000.00"),
                item(w, costTypeId=t(w, "open").cost_types["L"], originalAmount="6000000000000.00"),
            ]}}, "AMOUNT_OUT_OF_RANGE", ["input", "items"]),
        "import: an updated row takes the total past": Case(
            full, "admin", IMPORT_LINES,
            lambda w: {"i": {"budgetId": t(w, full).budget_id, "items": [
                {"costCodeId": t(w, full).cost_codes["05-120"], "costTypeId": t(w, full).cost_types["M"],
                 "originalAmount": "1.00"}]}}, "AMOUNT_OUT_OF_RANGE", ["input", "items"]),
        "modification: onto a line takes its revised amount past": Case(
            locked, "admin", CREATE_MODIFICATION,
            lambda w: {"i": {"budgetId": t(w, locked).budget_id, "toLineItemId": w.lines["locked+"],
                             "amount": "0.01"}}, "AMOUNT_OUT_OF_RANGE", ["input", "amount"]),
        "modification: off a line takes its revised amount past": Case(
            locked, "admin", CREATE_MODIFICATION,
            lambda w: {"i": {"budgetId": t(w, locked).budget_id, "fromLineItemId": w.lines["locked-"],
                             "toLineItemId": w.lines["locked+"], "amount": "1.00"}},
            "AMOUNT_OUT_OF_RANGE", ["input", "amount"]),
        "modification: a line's modifications amount past": Case(
            locked, "admin", CREATE_MODIFICATION,
            lambda w: {"i": {"budgetId": t(w, locked).budget_id, "toLineItemId": w.lines["locked0"],
                             "amount": MAX}}, "AMOUNT_OUT_OF_RANGE", ["input", "amount"]),
        "send: a re-send whose delta is past 13 digits": Case(
            "resend", "admin", SEND, lambda w: {"i": {"budgetId": t(w, "resend").budget_id}},
            "AMOUNT_OUT_OF_RANGE", []),
    }


CASES = {**text_cases(), **id_cases(), **idempotency_cases(), **amount_cases()}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_refused_on_its_field_and_changes_nothing(world: World, name: str) -> None:
    case = CASES[name]
    tenant = t(world, case.tenant)
    db = world.services.db
    before = await snapshot(db, tenant.company_id)
    result = await tenant.execute(case.role, case.query, **case.variables(world))
    assert result.errors is None, result.errors
    assert result.data is not None
    (payload,) = result.data.values()
    errors = payload["userErrors"]
    assert errors, payload
    assert {e["code"] for e in errors} == {case.code}, errors
    assert (errors[0]["field"] or []) == case.field, errors
    assert all(e["message"] and "Unexpected error" not in e["message"] for e in errors)
    assert await snapshot(db, tenant.company_id) == before


async def test_a_send_that_would_carry_an_amount_past_13_digits_is_blocked_before_the_click(world: World) -> None:
    tenant = t(world, "resend")
    data = await tenant.ok("admin", BLOCKERS, i=tenant.budget_id)
    blockers = data["budget"]["sendBlockers"]
    # The line's delta, then the request's total original budget and the total of its entries.
    assert [b["code"] for b in blockers] == ["AMOUNT_OUT_OF_RANGE"] * 3, blockers
    assert all("-19999999999999.98" in b["message"] for b in blockers)
    assert "line 03-300/L" in blockers[0]["message"]
    assert data["budget"]["revisedBudgetTotal"] == "-" + MAX


READ_ARGUMENTS = {
    "node id": ('query($v: ID!) { node(id: $v) { id } }', "id"),
    "project id": ('query($v: ID!) { project(id: $v) { id } }', "id"),
    "budget id": ('query($v: ID!) { budget(id: $v) { id } }', "id"),
    "erpRequest id": ('query($v: ID!) { erpRequest(id: $v) { id } }', "id"),
    "erpRequests projectId": ('query($v: ID) { erpRequests(projectId: $v) { totalCount } }', "projectId"),
    "erpRequests after": ('query($v: String) { erpRequests(after: $v) { totalCount } }', "after"),
    "projects after": ('query($v: String) { projects(after: $v) { totalCount } }', "after"),
}


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["NUL", "surrogate"])
@pytest.mark.parametrize("name", list(READ_ARGUMENTS))
async def test_a_read_argument_no_row_can_hold_is_a_validation_error(world: World, name: str, bad: str) -> None:
    query, argument = READ_ARGUMENTS[name]
    result = await t(world, "open").execute("admin", query, v=bad)
    assert result.errors is not None and len(result.errors) == 1, result.errors
    (error,) = result.errors
    assert error.extensions == {"code": "VALIDATION_FAILED", "field": [argument]}, error
    assert error.message.startswith(f"{argument}: must not contain"), error.message


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["NUL", "surrogate"])
async def test_a_nested_cursor_no_row_can_hold_is_a_validation_error(world: World, bad: str) -> None:
    tenant = t(world, "open")
    for connection in ("lineItems", "history"):
        query = f"query($id: ID!, $v: String) {{ budget(id: $id) {{ {connection}(after: $v) {{ totalCount }} }} }}"
        result = await tenant.execute("admin", query, id=tenant.budget_id, v=bad)
        assert result.errors is not None, connection
        assert [e.extensions for e in result.errors] == [{"code": "VALIDATION_FAILED", "field": ["after"]}]
