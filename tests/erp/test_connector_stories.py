"""The whole story of the core workflow against every connector: send, retrieve, reject, unlock, change,
modify, accept, export, posting, unlock, re-send of only the deltas, second export."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import admin
from app.export_worker import ExportWorker
from persistence.tables import erp_job_cost_entries
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.webhook_server import Integrator, running_integrator
from tests.erp.workflow import (
    ACCEPT,
    CONFIRM,
    CONFIRM_WITH_TOTALS,
    LOCK,
    MODIFY,
    SEND,
    TOTALS,
    UNLOCK,
    UPDATE,
    add_line,
    lock_and_send,
    request,
)
from tests.support import Tenant, make_tenant

CONNECTORS = ["embedded", "sage300-file", "vista-csv", "webhook"]


@contextlib.asynccontextmanager
async def connected(name: str, tmp_path: Path) -> AsyncIterator[tuple[dict[str, Any], Integrator | None]]:
    (tmp_path / "drop").mkdir()
    if name == "webhook":
        async with running_integrator() as integrator:
            yield {**integrator.options, "secret": "s3cret-shared-with-the-integrator"}, integrator
    elif name == "embedded":
        yield {}, None
    elif name == "vista-csv":  # Vista's cost types are numbers
        yield {"drop_folder": str(tmp_path / "drop"), "cost_type_map": "L:1,S:3"}, None
    else:
        yield {"drop_folder": str(tmp_path / "drop")}, None


async def export_now(services: Services, tenant: Tenant) -> None:
    worker = ExportWorker(services, timeout_seconds=5, company_id=tenant.company_id, policy=RetryPolicy(max_attempts=1))
    assert await worker.run_once() == 1


@pytest.mark.parametrize("name", CONNECTORS)
async def test_the_whole_story_runs_against_each_connector(name: str, services: Services, tmp_path: Path) -> None:
    async with connected(name, tmp_path) as (options, integrator):
        tenant = await make_tenant(services, connector=None)
        async with services.db.unit_of_work() as uow:
            await admin.set_company_connector(uow, tenant.company_id, name, options)
            await uow.commit()
        sub_job = "BLDG-A" if name in ("embedded", "webhook") else None  # the file formats take no sub jobs
        concrete = await add_line(tenant, "03-300", "L", "125000.00", sub_job=sub_job, quantity="1500",
                                  unitOfMeasure="HR", unitCost="83.3333")
        steel = await add_line(tenant, "05-120", "S", "486900.00", description="Steel, furnish & erect")
        first = await lock_and_send(tenant)
        await tenant.ok("admin", "mutation($b: ID!) { retrieveBudget(input: {budgetId: $b}) { userErrors { code } } }",
                        b=tenant.budget_id)
        second = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
        assert second != first
        await tenant.ok("approver", """mutation($r: ID!) { decideExport(input: {erpRequestId: $r, decision: REJECT,
            reason: "Split concrete by building"}) { userErrors { code } } }""", r=second)
        await tenant.ok("admin", UNLOCK, b=tenant.budget_id)
        await tenant.ok("admin", UPDATE, i={"id": concrete, "originalAmount": "130000.00"})
        await tenant.ok("admin", LOCK, b=tenant.budget_id)
        await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                            "toLineItemId": concrete, "amount": "5000.00", "notes": "CO #1"})
        third = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]
        assert third["kind"] == "CREATE_BUDGET"  # nothing was exported before: rejected entries never were
        await tenant.ok("approver", ACCEPT, r=third["id"])
        await export_now(services, tenant)
        exported = await request(tenant, third["id"])
        assert exported["status"] == "AWAITING_POSTING", exported
        assert exported["erpReference"]
        refused = await tenant.execute("admin", UNLOCK, b=tenant.budget_id)
        assert [e["code"] for e in refused.data["unlockBudget"]["userErrors"]] == ["AWAITING_POSTING"]
        totals = (await tenant.ok("admin", TOTALS, r=third["id"]))["erpRequest"]
        assert totals == {"entryCount": 4, "entriesTotal": "616900.00"}  # two originals, a modification's two sides
        if name in ("sage300-file", "vista-csv"):  # the file connectors require the posting journal's totals
            refused = await tenant.execute("integrator", CONFIRM, r=third["id"])
            assert [e["code"] for e in refused.data["confirmJobCostPosting"]["userErrors"]] == ["VALIDATION_FAILED"] * 2
        await tenant.ok("integrator", CONFIRM_WITH_TOTALS, r=third["id"], n=4, t="616900.00")
        assert (await request(tenant, third["id"]))["status"] == "SYNCED"
        await tenant.ok("admin", UNLOCK, b=tenant.budget_id)

        # Re-send: one changed original amount and one new modification, nothing else.
        await tenant.ok("admin", UPDATE, i={"id": steel, "originalAmount": "480000.00"})
        await tenant.ok("admin", LOCK, b=tenant.budget_id)
        await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "toLineItemId": concrete, "amount": "750.25"})
        fourth = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]
        assert fourth["kind"] == "UPDATE_BUDGET"
        update = await request(tenant, fourth["id"])
        lines = {(line["costCode"], line["costType"]): line for line in update["lines"]}
        assert lines[("05-120", "S")]["originalBudget"] == "-6900.00"
        assert lines[("05-120", "S")]["budgetChanges"] == "0.00"
        assert lines[("03-300", "L")]["originalBudget"] == "0.00"
        assert lines[("03-300", "L")]["budgetChanges"] == "750.25"
        assert lines[("03-300", "L")]["revisedEstimate"] == "135750.25"
        await tenant.ok("approver", ACCEPT, r=fourth["id"])
        await export_now(services, tenant)
        assert (await request(tenant, fourth["id"]))["status"] == "AWAITING_POSTING"
        await check_target(name, services, tmp_path, integrator, exported["erpReference"])


async def check_target(name: str, services: Services, tmp_path: Path, integrator: Integrator | None,
                       first_reference: str) -> None:
    """What reached the ERP: the first export carries everything, the second only the deltas."""
    if name == "embedded":
        async with services.db.read() as conn:
            first = (await conn.execute(select(erp_job_cost_entries.c.kind, erp_job_cost_entries.c.amount)
                                        .where(erp_job_cost_entries.c.batch == first_reference))).all()
        assert sorted((k, str(a)) for k, a in first) == sorted([
            ("ORIGINAL_BUDGET", "130000.00"), ("ORIGINAL_BUDGET", "486900.00"),
            ("BUDGET_MODIFICATION", "5000.00"), ("BUDGET_MODIFICATION", "-5000.00"),
        ])
    elif name in ("sage300-file", "vista-csv"):
        files = sorted(p.name for p in (tmp_path / "drop").iterdir() if p.is_file())
        assert files, "no import file was written"
        text = "\n".join((tmp_path / "drop" / f).read_text() for f in files)
        assert "750.25" in text and "486900.00" in text
        # Sage 300's estimate import adds the change; Vista's replaces the estimate, so it gets the new total.
        assert ("-6900.00" if name == "sage300-file" else "480000.00") in text
    else:
        assert integrator is not None
        events = [r.json for r in integrator.received if r.event in ("create_budget", "update_budget")]
        assert [e["event"] for e in events] == ["create_budget", "update_budget"]
        update_amounts = sorted(t["amount"] for t in events[1]["transactions"])
        assert update_amounts == ["-6900.00", "750.25"]  # the unchanged original amount is not sent again
