"""A property-based fuzz of every mutation input over HTTP (the real app, its export worker running).

Each example sends one mutation whose every input is drawn from hostile values: text with NUL and lone
surrogates, text at and past its column's length, ids that exist or not, amounts at the 13-digit limit and
past it, bad decimals, odd idempotency keys and versions, and roles that may not act. Whatever it sends, the
answer is never a 5xx nor "Unexpected error.", and after every example every budget of the company keeps its
invariants: totals = sums of the lines, revised = original + modifications per line, each line's
modifications amount = the sum of the modifications that touch it, every amount within 13 integer digits.

The examples share one company, so the workflow moves on (lines, locks, sends, decisions, exports) as the
fuzz goes. Derandomized (a fixed seed per test) and without Hypothesis' example database, so CI sees the
same inputs every run; FUZZ_EXAMPLES bounds the time (about 20 s on SQLite).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from resolvers.context import Services
from tests.support import Tenant, make_tenant

FUZZ_EXAMPLES = int(os.environ.get("BUDGETBRIDGE_FUZZ_EXAMPLES", "200"))
MAX = Decimal("9999999999999.99")
ERRORS = "userErrors { code message field }"
ERRORS_KEY = "userErrors"

MUTATIONS: dict[str, tuple[str, str]] = {
    # name: (signature, how the variable is passed)
    "createProject": ("$i: CreateProjectInput!", "input: $i"),
    "createCostCode": ("$i: CreateCostCodeInput!", "input: $i"),
    "createCostType": ("$i: CreateCostTypeInput!", "input: $i"),
    "syncProjectToERP": ("$i: ID!", "projectId: $i"),
    "createBudgetLineItem": ("$i: CreateBudgetLineItemInput!", "input: $i"),
    "updateBudgetLineItem": ("$i: UpdateBudgetLineItemInput!", "input: $i"),
    "deleteBudgetLineItem": ("$i: ID!, $v: Int", "id: $i, expectedVersion: $v"),
    "importBudgetLineItems": ("$i: ImportBudgetLineItemsInput!", "input: $i"),
    "createBudgetModification": ("$i: CreateBudgetModificationInput!", "input: $i"),
    "lockBudget": ("$i: BudgetActionInput!", "input: $i"),
    "unlockBudget": ("$i: BudgetActionInput!", "input: $i"),
    "sendToERP": ("$i: BudgetActionInput!", "input: $i"),
    "retrieveBudget": ("$i: BudgetActionInput!", "input: $i"),
    "decideExport": ("$i: DecideExportInput!", "input: $i"),
    "retryExport": ("$i: ErpRequestActionInput!", "input: $i"),
    "confirmJobCostPosting": ("$i: ErpRequestActionInput!", "input: $i"),
}


def document(name: str) -> str:
    signature, arguments = MUTATIONS[name]
    return f"mutation({signature}) {{ {name}({arguments}) {{ {ERRORS} }} }}"


# --- hostile values ---------------------------------------------------------------------------------------

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # includes NUL and lone surrogates


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `choices`, each drawn about as often as its weight. (`st.one_of` flattens nested choices into
    equal branches, and Hypothesis favours the ends of an integer range: the slots are spread so both ends
    fall on the first choice.)"""
    slots = [strategy for weight, strategy in choices for _ in range(weight * 10)]
    middle = slots[1:-1]
    random.Random(len(slots)).shuffle(middle)
    spread = [slots[0], *middle, slots[0]]
    return st.integers(0, len(spread) - 1).flatmap(lambda n: spread[n])


PLAIN = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)


def texts(length: int) -> st.SearchStrategy[str | None]:
    """Text for a column of `length`: plain (so the workflow moves on), or hostile: anything (NUL,
    surrogates), at and past the limit, blank, or absent."""
    hostile = st.one_of(
        st.none(),
        st.text(ANY_CHAR, max_size=12),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
        st.builds(lambda n, c: c * n, st.integers(length - 1, length + 2), st.sampled_from(["x", "é", "😀", " "])),
        st.sampled_from(["", "   ", "\x00", "\ud800", "a\udfffb", "\u2028", "'; drop table budgets; --"]),
    )
    return weighted((3, PLAIN), (2, hostile))


def required(strategy: st.SearchStrategy[str | None]) -> st.SearchStrategy[str]:
    return strategy.map(lambda v: "" if v is None else v)


VALID_AMOUNTS = st.one_of(
    st.sampled_from(["0", "0.00", "0.01", "-0.01", "1.50", str(MAX), str(-MAX), "6000000000000.00", "-5.00"]),
    st.decimals(min_value=-MAX, max_value=MAX, places=2, allow_nan=False, allow_infinity=False).map(str),
)
AMOUNTS: st.SearchStrategy[Any] = weighted(
    (4, VALID_AMOUNTS),
    (1, st.one_of(
        st.integers(-(10**14), 10**14),
        st.sampled_from(["1e3", "NaN", "12.345", "10000000000000.00", "", "abc", "\x00"]),
    )),
)
QUANTITIES: st.SearchStrategy[Any] = weighted(
    (2, st.none()), (1, st.sampled_from(["2.5", "0.0001", "-1", "9999999999999.9999", "1.23456"])),
    (1, st.integers(-5, 10**6)),
)
KEYS = weighted((2, st.none()), (2, texts(200)), (1, st.text(st.sampled_from("ab"), min_size=1, max_size=2)))
VERSIONS = weighted((3, st.none()), (1, st.integers(0, 40)))


@dataclass(frozen=True)
class Ref:
    """An existing object of `kind`, the `index`-th known one (modulo how many exist when the example runs).
    Drawn as a number, so what Hypothesis draws never depends on the state the earlier examples left."""

    kind: str
    index: int


def ids(kind: str) -> st.SearchStrategy[Any]:
    garbage = st.one_of(required(texts(40)), st.sampled_from(["bgt_\x00", "li_\ud800", "x" * 41]))
    # Mostly existing objects, so the workflow moves on.
    return weighted((4, st.builds(Ref, st.just(kind), st.integers(0, 7))), (1, garbage))


class Known:
    """The ids the fuzz may aim at, read afresh before each example (the workflow moves on)."""

    def __init__(self, tenant: Tenant, budget: dict[str, Any]) -> None:
        self.by_kind = {
            "budget": [tenant.budget_id],
            "project": [tenant.project_id],
            "line": [e["node"]["id"] for e in budget["lineItems"]["edges"]],
            "request": [r["id"] for r in budget["erpRequests"]],
            "costCode": list(tenant.cost_codes.values()),
            "costType": list(tenant.cost_types.values()),
        }

    def resolve(self, value: Any) -> Any:
        """The drawn variables with every Ref replaced by a known id (one that names nothing if none exists)."""
        if isinstance(value, Ref):
            known = self.by_kind[value.kind]
            return known[value.index % len(known)] if known else f"{value.kind}_{value.index:032d}"
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def line_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"costCodeId": ids("costCode"), "costTypeId": ids("costType"), "originalAmount": AMOUNTS},
        optional={
            "subJob": texts(60),
            "description": texts(500),
            "quantity": QUANTITIES,
            "unitOfMeasure": texts(20),
            "unitCost": QUANTITIES,
        },
    )


def inputs(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """The variables of one mutation, every input field drawn."""
    i = st.fixed_dictionaries
    action = i({"budgetId": ids("budget")}, optional={"expectedVersion": VERSIONS, "idempotencyKey": KEYS})
    request_action = i({"erpRequestId": ids("request")}, optional={"erpReference": texts(200),
                                                                         "idempotencyKey": KEYS})
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "createProject": i({"name": required(texts(200)), "number": required(texts(60))}),
        "createCostCode": i({"code": required(texts(40)), "description": required(texts(200))}),
        "createCostType": i({"code": required(texts(20)), "name": required(texts(100))}),
        "syncProjectToERP": ids("project"),
        "createBudgetLineItem": i(
            {"budgetId": ids("budget"), "item": line_fields()}, optional={"expectedVersion": VERSIONS}
        ),
        "updateBudgetLineItem": i(
            {"id": ids("line")},
            optional={
                "description": texts(500),
                "originalAmount": AMOUNTS,
                "quantity": QUANTITIES,
                "unitOfMeasure": texts(20),
                "unitCost": QUANTITIES,
                "expectedVersion": VERSIONS,
            },
        ),
        "deleteBudgetLineItem": ids("line"),
        "importBudgetLineItems": i(
            {"budgetId": ids("budget"), "items": st.lists(line_fields(), max_size=4)},
            optional={"expectedVersion": VERSIONS},
        ),
        "createBudgetModification": i(
            {"budgetId": ids("budget"), "amount": AMOUNTS},
            optional={
                "fromLineItemId": ids("line"),
                "toLineItemId": ids("line"),
                "notes": texts(2000),
                "expectedVersion": VERSIONS,
            },
        ),
        "lockBudget": action,
        "unlockBudget": action,
        "sendToERP": action,
        "retrieveBudget": action,
        "decideExport": i(
            {"erpRequestId": ids("request"), "decision": st.sampled_from(["ACCEPT", "REJECT"])},
            optional={"reason": texts(2000), "idempotencyKey": KEYS},
        ),
        "retryExport": request_action,
        "confirmJobCostPosting": request_action,
    }
    drawn = by_name[name]
    if name == "deleteBudgetLineItem":
        return st.fixed_dictionaries({"i": drawn, "v": VERSIONS})
    return st.fixed_dictionaries({"i": drawn})


# Every mutation; those that move the workflow on (to locks, sends, decisions, exports and modifications)
# twice, so the fuzz reaches those states too.
WEIGHTED = [*MUTATIONS, "createBudgetLineItem", "syncProjectToERP", "lockBudget", "sendToERP", "decideExport",
            "createBudgetModification", "confirmJobCostPosting"]
LAST_STATE: dict[str, dict[str, Any]] = {}  # budget id -> the state the last example's check read

ROLE_OF = {"decideExport": "approver", "retryExport": "approver", "confirmJobCostPosting": "integrator"}
ROLES = st.sampled_from(["admin", "standard", "locker", "sender", "reader", "outsider", "approver", "integrator"])


# --- the invariants ---------------------------------------------------------------------------------------

STATE = """query($b: ID!) { budget(id: $b) {
  id originalBudgetTotal modificationsTotal revisedBudgetTotal lineItemCount
  lineItems(first: 1000) { edges { node { id originalAmount modificationsAmount revisedAmount } } }
  modifications { amount fromLineItem { id } toLineItem { id } }
  erpRequests { id status }
  sendBlockers { code } unlockBlockers { code }
  pendingExport { originalBudget budgetChanges revisedEstimate }
} }"""


async def graphql(client: httpx.AsyncClient, tenant: Tenant, role: str, query: str, variables: Any) -> dict[str, Any]:
    # JSON with \u escapes (httpx's own encoder writes raw UTF-8, which cannot hold a lone surrogate): what a
    # browser's JSON.stringify sends for the same strings.
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"Authorization": f"Bearer {tenant.token(role)}", "Content-Type": "application/json"}
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Unexpected error" not in response.text, (query, variables, response.text[:1000])
    answer: dict[str, Any] = response.json()
    return answer


def check_invariants(budget: dict[str, Any]) -> None:
    lines = [e["node"] for e in budget["lineItems"]["edges"]]
    assert len(lines) == budget["lineItemCount"]
    original = sum((Decimal(x["originalAmount"]) for x in lines), Decimal(0))
    modified = sum((Decimal(x["modificationsAmount"]) for x in lines), Decimal(0))
    assert Decimal(budget["originalBudgetTotal"]) == original, budget
    assert Decimal(budget["modificationsTotal"]) == modified, budget
    assert Decimal(budget["revisedBudgetTotal"]) == original + modified, budget
    moved: dict[str, Decimal] = {x["id"]: Decimal(0) for x in lines}
    for m in budget["modifications"]:
        amount = Decimal(m["amount"])
        assert amount > 0
        if m["toLineItem"]:
            moved[m["toLineItem"]["id"]] += amount
        if m["fromLineItem"]:
            moved[m["fromLineItem"]["id"]] -= amount
    for x in lines:
        assert Decimal(x["revisedAmount"]) == Decimal(x["originalAmount"]) + Decimal(x["modificationsAmount"]), x
        assert Decimal(x["modificationsAmount"]) == moved[x["id"]], (x, budget["modifications"])
    amounts = [original, modified, original + modified] + [
        Decimal(x[k]) for x in lines for k in ("originalAmount", "modificationsAmount", "revisedAmount")
    ]
    assert all(-MAX <= a <= MAX for a in amounts), budget


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_no_mutation_input_reaches_a_masked_failure_and_budgets_stay_consistent(
    client: httpx.AsyncClient, fuzz_tenant: Tenant, data: st.DataObject
) -> None:
    tenant = fuzz_tenant
    if tenant.budget_id not in LAST_STATE:  # later examples aim at what the previous one's check read
        LAST_STATE[tenant.budget_id] = (await graphql(client, tenant, "admin", STATE, {"b": tenant.budget_id}))[
            "data"
        ]["budget"]
    known = Known(tenant, LAST_STATE[tenant.budget_id])
    name = data.draw(st.sampled_from(WEIGHTED), label="mutation")
    variables = known.resolve(data.draw(inputs(name), label="variables"))
    role = data.draw(weighted((3, st.just(ROLE_OF.get(name, "admin"))), (1, ROLES)), label="role")
    answer = await graphql(client, tenant, role, document(name), variables)
    payload = (answer.get("data") or {}).get(name)
    outcome = "request error" if payload is None else ",".join(e["code"] for e in payload[ERRORS_KEY]) or "ok"
    event(f"{name}: {outcome}")  # `pytest --hypothesis-show-statistics` shows what the fuzz reached

    # Lines and modifications only ever reach the tenant's budget (the one budget id the fuzz knows).
    state = await graphql(client, tenant, "admin", STATE, {"b": tenant.budget_id})
    assert "errors" not in state, state
    check_invariants(state["data"]["budget"])
    LAST_STATE[tenant.budget_id] = state["data"]["budget"]


@pytest.fixture
async def fuzz_tenant(services: Services) -> Tenant:
    """One company for every example of a run: Hypothesis runs all examples inside one call of the test, so
    the function-scoped fixtures are shared on purpose and the workflow moves on between examples. It starts
    synced and locked with three lines, one of them at the 13-digit limit, so sends, decisions, exports and
    modifications are a step away (and unlocking, line edits and locking again two)."""
    tenant = await make_tenant(services)
    create = (
        "mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) { userErrors { code } } }"
    )
    for code, kind, amount in (("09-900", "S", "-5000.00"), ("03-300", "L", "1000.00"), ("05-120", "M", str(MAX))):
        item = {"costCodeId": tenant.cost_codes[code], "costTypeId": tenant.cost_types[kind], "originalAmount": amount}
        await tenant.ok("admin", create, i={"budgetId": tenant.budget_id, "item": item})
    await tenant.ok("admin", f"mutation($p: ID!) {{ syncProjectToERP(projectId: $p) {{ {ERRORS} }} }}",
                    p=tenant.project_id)
    await tenant.ok("admin", document("lockBudget"), i={"budgetId": tenant.budget_id})
    return tenant
