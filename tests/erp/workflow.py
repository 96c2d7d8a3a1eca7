"""The workflow steps the connector tests share, through the real schema."""

from __future__ import annotations

from typing import Any

from tests.support import Tenant

ADD_LINE = """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) {
  lineItem { id } userErrors { code message } } }"""
SYNC = "mutation($p: ID!) { syncProjectToERP(projectId: $p) { userErrors { code message } } }"
LOCK = "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { userErrors { code message } } }"
UNLOCK = "mutation($b: ID!) { unlockBudget(input: {budgetId: $b}) { userErrors { code message } } }"
SEND = "mutation($b: ID!) { sendToERP(input: {budgetId: $b}) { erpRequest { id kind } userErrors { code message } } }"
ACCEPT = """mutation($r: ID!) { decideExport(input: {erpRequestId: $r, decision: ACCEPT}) {
  erpRequest { status } userErrors { code message } } }"""
RETRY = (
    "mutation($r: ID!) { retryExport(input: {erpRequestId: $r}) { erpRequest { status } userErrors { code message } } }"
)
CONFIRM = """mutation($r: ID!) { confirmJobCostPosting(input: {erpRequestId: $r}) {
  erpRequest { status } userErrors { code message } } }"""
CONFIRM_WITH_TOTALS = """mutation($r: ID!, $n: Int, $t: Decimal) {
  confirmJobCostPosting(input: {erpRequestId: $r, entryCount: $n, totalAmount: $t}) {
  erpRequest { status } userErrors { code message field } } }"""
TOTALS = "query($r: ID!) { erpRequest(id: $r) { entryCount entriesTotal } }"
MODIFY = """mutation($i: CreateBudgetModificationInput!) { createBudgetModification(input: $i) {
  modification { id } userErrors { code message } } }"""
UPDATE = (
    """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) { userErrors { code message } } }"""
)
REQUEST = """query($r: ID!) { erpRequest(id: $r) { id status kind erpReference failureMessage exportedAt postedAt
  lines { costCode costType subJob originalBudget budgetChanges revisedEstimate isNewLine }
  totalOriginalBudget totalBudgetChanges } }"""
BLOCKERS = "query($b: ID!) { budget(id: $b) { sendBlockers { code message } unlockBlockers { code } exportStatus } }"


async def add_line(tenant: Tenant, code: str, ctype: str, amount: str, sub_job: str | None = None, **extra: Any) -> str:
    data = await tenant.ok(
        "admin",
        ADD_LINE,
        i={
            "budgetId": tenant.budget_id,
            "item": {
                "costCodeId": tenant.cost_codes[code],
                "costTypeId": tenant.cost_types[ctype],
                "originalAmount": amount,
                "subJob": sub_job,
                **extra,
            },
        },
    )
    return str(data["createBudgetLineItem"]["lineItem"]["id"])


async def lock_and_send(tenant: Tenant, *, sync: bool = True) -> str:
    if sync:
        await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    data = await tenant.ok("admin", SEND, b=tenant.budget_id)
    return str(data["sendToERP"]["erpRequest"]["id"])


async def send(tenant: Tenant) -> str:
    data = await tenant.ok("admin", SEND, b=tenant.budget_id)
    return str(data["sendToERP"]["erpRequest"]["id"])


async def accept(tenant: Tenant, request_id: str) -> None:
    await tenant.ok("approver", ACCEPT, r=request_id)


async def request(tenant: Tenant, request_id: str) -> dict[str, Any]:
    data = await tenant.ok("admin", REQUEST, r=request_id)
    return dict(data["erpRequest"])


NEWEST_EVENT = "query($b: ID!) { budget(id: $b) { history(first: 1) { edges { node { sequence } } } } }"


async def locked_with_one_line(tenant: Tenant) -> int:
    """One synced line on a locked budget, ready to send; returns the company's newest event sequence."""
    await add_line(tenant, "03-300", "L", "1.00")
    await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    newest = await tenant.ok("admin", NEWEST_EVENT, b=tenant.budget_id)
    return int(newest["budget"]["history"]["edges"][0]["node"]["sequence"])


async def confirm_with_totals(tenant: Tenant, request_id: str) -> None:
    """Confirm posting as an accountant who checked the posting journal against the request's totals."""
    totals = (await tenant.ok("admin", TOTALS, r=request_id))["erpRequest"]
    await tenant.ok("integrator", CONFIRM_WITH_TOTALS, r=request_id, n=totals["entryCount"], t=totals["entriesTotal"])
