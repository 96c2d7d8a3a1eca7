"""confirmJobCostPosting with the posting journal's control totals, through the schema on the suite's database:
wrong totals are refused (POSTING_TOTALS_MISMATCH) and change nothing, not even the ERP's posted flags; right
ones sync the request; the file connectors require them by default (VALIDATION_FAILED naming the field), and
`require_posting_totals` turns that on or off for any connector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import admin
from app.export_worker import ExportWorker
from persistence.tables import erp_job_cost_entries
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.workflow import ACCEPT, CONFIRM_WITH_TOTALS, MODIFY, SEND, add_line, lock_and_send, request
from tests.support import Tenant, make_tenant, snapshot

CAPABILITIES = "{ erpConnection { connector capabilities { requiresPostingTotals } } }"


async def connected(services: Services, name: str, options: dict[str, Any]) -> Tenant:
    tenant = await make_tenant(services, connector=None)
    async with services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, name, options)
        await uow.commit()
    return tenant


async def awaiting_posting(tenant: Tenant) -> str:
    """A request exported and awaiting posting with 5 entries totalling 4000.00: concrete 1500.00, steel
    2500.00, a new line at 0.00 and both sides of a 250.00 modification (the first send was retrieved, so the
    second carries everything)."""
    concrete = await add_line(tenant, "03-300", "L", "1500.00")
    steel = await add_line(tenant, "05-120", "M", "2500.00")
    await add_line(tenant, "09-900", "S", "0.00")
    await lock_and_send(tenant)
    await tenant.ok("admin", "mutation($r: ID!) { retrieveBudget(input: {budgetId: $r}) { userErrors { code } } }",
                    r=tenant.budget_id)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                        "toLineItemId": concrete, "amount": "250.00"})
    request_id: str = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    worker = ExportWorker(tenant.services, timeout_seconds=5, company_id=tenant.company_id,
                          policy=RetryPolicy(max_attempts=1))
    assert await worker.run_once() == 1
    assert (await request(tenant, request_id))["status"] == "AWAITING_POSTING"
    return request_id


async def confirm(tenant: Tenant, request_id: str, count: int | None, total: str | None) -> list[dict[str, Any]]:
    result = await tenant.execute("integrator", CONFIRM_WITH_TOTALS, r=request_id, n=count, t=total)
    assert result.errors is None, result.errors
    errors: list[dict[str, Any]] = result.data["confirmJobCostPosting"]["userErrors"]
    return errors


WRONG = [
    (6, "4000.00", [["input", "entryCount"]]),  # the zero line imported twice
    (5, "4250.00", [["input", "totalAmount"]]),  # an amount keyed wrong
    (10, "8000.00", [["input", "entryCount"], ["input", "totalAmount"]]),  # the whole file imported twice
    (4, "1500.00", [["input", "entryCount"], ["input", "totalAmount"]]),  # steel's entry skipped
]


@pytest.mark.parametrize(("count", "total", "fields"), WRONG)
async def test_wrong_totals_change_nothing_and_right_ones_sync(
    services: Services, count: int, total: str, fields: list[list[str]]
) -> None:
    tenant = await make_tenant(services)  # embedded: the ledger keeps posted flags we can look at
    request_id = await awaiting_posting(tenant)
    totals = (await tenant.ok("admin", "query($r: ID!) { erpRequest(id: $r) { entryCount entriesTotal } }",
                              r=request_id))["erpRequest"]
    assert totals == {"entryCount": 5, "entriesTotal": "4000.00"}
    before = await snapshot(services.db, tenant.company_id)
    flags_before = await posted_flags(services, request_id)

    errors = await confirm(tenant, request_id, count, total)

    assert [(e["code"], e["field"]) for e in errors] == [("POSTING_TOTALS_MISMATCH", f) for f in fields]
    assert await snapshot(services.db, tenant.company_id) == before
    assert await posted_flags(services, request_id) == flags_before == [False] * 5  # the ERP was not told either

    assert await confirm(tenant, request_id, 5, "4000.00") == []
    assert (await request(tenant, request_id))["status"] == "SYNCED"
    assert await posted_flags(services, request_id) == [True] * 5


async def posted_flags(services: Services, request_id: str) -> list[bool]:
    reference = (await services.reads.requests([request_id], None))[0].export_id
    async with services.db.read() as conn:
        return list((await conn.execute(select(erp_job_cost_entries.c.posted).where(
            erp_job_cost_entries.c.batch == f"JC-{reference}"))).scalars())


@pytest.mark.parametrize("name", ["sage300-file", "vista-csv"])
async def test_the_file_connectors_require_the_totals(services: Services, tmp_path: Path, name: str) -> None:
    (tmp_path / "drop").mkdir()
    options: dict[str, Any] = {"drop_folder": str(tmp_path / "drop")}
    if name == "vista-csv":
        options["cost_type_map"] = "L:1,M:2,S:3"
    tenant = await connected(services, name, options)
    assert (await tenant.ok("admin", CAPABILITIES))["erpConnection"] == {
        "connector": name, "capabilities": {"requiresPostingTotals": True}
    }
    request_id = await awaiting_posting(tenant)
    before = await snapshot(services.db, tenant.company_id)

    missing = await confirm(tenant, request_id, None, None)
    half = await confirm(tenant, request_id, 5, None)

    assert [(e["code"], e["field"]) for e in missing] == [
        ("VALIDATION_FAILED", ["input", "entryCount"]), ("VALIDATION_FAILED", ["input", "totalAmount"]),
    ]
    assert "requires the posting journal's entry count" in missing[0]["message"]
    assert [(e["code"], e["field"]) for e in half] == [("VALIDATION_FAILED", ["input", "totalAmount"])]
    assert await snapshot(services.db, tenant.company_id) == before
    assert await confirm(tenant, request_id, 5, "4000.00") == []
    assert (await request(tenant, request_id))["status"] == "SYNCED"


@pytest.mark.parametrize(("name", "value", "required"), [
    ("sage300-file", "false", False), ("embedded", "true", True), ("embedded", None, False),
])
async def test_require_posting_totals_is_the_connections_choice(
    services: Services, tmp_path: Path, name: str, value: str | None, required: bool
) -> None:
    (tmp_path / "drop").mkdir()
    options: dict[str, Any] = {"drop_folder": str(tmp_path / "drop")} if name != "embedded" else {}
    if value is not None:
        options["require_posting_totals"] = value
    tenant = await connected(services, name, options)
    caps = (await tenant.ok("admin", CAPABILITIES))["erpConnection"]["capabilities"]
    assert caps == {"requiresPostingTotals": required}
    request_id = await awaiting_posting(tenant)
    errors = await confirm(tenant, request_id, None, None)
    assert [e["code"] for e in errors] == (["VALIDATION_FAILED"] * 2 if required else [])


async def test_a_bad_require_posting_totals_option_is_refused_when_saved(services: Services) -> None:
    tenant = await make_tenant(services, connector=None)
    async with services.db.unit_of_work() as uow:
        with pytest.raises(admin.AdminError, match="require_posting_totals"):
            await admin.set_company_connector(uow, tenant.company_id, "embedded",
                                              {"require_posting_totals": "maybe"})
        with pytest.raises(admin.AdminError, match="no option 'drop_folder'"):
            await admin.set_company_connector(uow, tenant.company_id, "embedded", {"drop_folder": "/tmp"})
