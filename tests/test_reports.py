"""`budgetbridge report reconciliation`: a budget's reconciliation per line, or every project's totals of a
company, as CSV that opens cleanly in a spreadsheet (numbers bare, text neutralised) or as JSON. In process on
the suite's database (both engines), and once as a real `budgetbridge` process on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from app import admin, cli
from app.export_worker import ExportWorker
from app.settings import Settings
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.fixtures.batches import rows
from tests.erp.workflow import ACCEPT, LOCK, MODIFY, SEND, SYNC, UNLOCK, UPDATE, add_line
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant

INJECTION = '=HYPERLINK("http://x","pay")'
HEADER = ["Cost code", "Cost type", "Sub job", "Description", "Revised amount (USD)", "Exported", "Posted",
          "Pending", "Unsent", "Difference"]


async def export_and_post(tenant: Tenant, request_id: str, *, post: bool) -> None:
    await tenant.ok("approver", ACCEPT, r=request_id)
    worker = ExportWorker(tenant.services, timeout_seconds=5, company_id=tenant.company_id,
                          policy=RetryPolicy(max_attempts=1))
    await worker.run_once()
    if post:
        async with tenant.services.db.unit_of_work() as uow:
            await admin.post_embedded_entries(uow, request_id)
            await uow.commit()
        await worker.run_once()


async def accountants_budget(services: Services) -> tuple[Tenant, dict[str, str]]:
    """Request 1 (footings 1500.00, steel 2500.00) posted; footings cut to 1250.00 and modification 1 moving 250.00
    from steel to footings exported in request 2, not yet posted; modification 2 taking 100.00 off footings not
    sent. Steel's description is a formula."""
    tenant = await make_tenant(services)
    footings = await add_line(tenant, "03-300", "L", "1500.00", description="Footings", subJob="BLDG-A")
    steel = await add_line(tenant, "05-120", "M", "2500.00", description=INJECTION)
    await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    first = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await export_and_post(tenant, first, post=True)
    await tenant.ok("admin", UNLOCK, b=tenant.budget_id)
    await tenant.ok("admin", UPDATE, i={"id": footings, "originalAmount": "1250.00"})
    await tenant.ok("admin", LOCK, b=tenant.budget_id)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                        "toLineItemId": footings, "amount": "250.00"})
    second = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await export_and_post(tenant, second, post=False)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": footings, "amount": "100.00"})
    return tenant, {"footings": footings, "steel": steel}


EXPECTED_BUDGET = [
    HEADER,
    ["03-300", "L", "BLDG-A", "Footings", "1400.00", "1500.00", "1500.00", "0.00", "-100.00", "0.00"],
    ["05-120", "M", "", "'" + INJECTION, "2250.00", "2250.00", "2500.00", "0.00", "0.00", "0.00"],
    ["Total", "", "", "", "3650.00", "3750.00", "4000.00", "0.00", "-100.00", "0.00"],
]


async def report(db_url: str, *args: str) -> tuple[dict[str, Any], str]:
    parsed = cli._parser().parse_args(["report", "reconciliation", *args])
    return await cli._run(parsed, Settings(database_url=db_url))


async def test_a_budgets_reconciliation_as_a_spreadsheet_reads_it(services: Services) -> None:
    tenant, _ = await accountants_budget(services)

    payload, text = await report(services.db.url, "--budget", tenant.budget_id)

    assert rows(text) == EXPECTED_BUDGET
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert ",-100.00,0.00\r\n" in text  # amounts are bare numbers, negatives included
    assert "\"'=HYPERLINK(\"\"http://x\"\",\"\"pay\"\")\"" in text  # the formula is text, quoted and neutralised
    assert payload["balanced"] is True and payload["currency"] == "USD"


async def test_the_same_reconciliation_as_json(services: Services) -> None:
    tenant, lines = await accountants_budget(services)
    payload, text = await report(services.db.url, "--budget", tenant.budget_id, "--format", "json")
    assert json.loads(text) == payload
    assert payload["budget"] == tenant.budget_id
    assert payload["project"] == {"id": tenant.project_id, "number": f"P-{tenant.company_id[-6:]}",
                                  "name": "Riverside MOB"}
    assert payload["lines"] == [
        {"costCode": "03-300", "costType": "L", "subJob": "BLDG-A", "lineItemId": lines["footings"],
         "description": "Footings", "revisedAmount": "1400.00", "exported": "1500.00", "posted": "1500.00",
         "pending": "0.00", "unsent": "-100.00", "difference": "0.00"},
        {"costCode": "05-120", "costType": "M", "subJob": None, "lineItemId": lines["steel"],
         "description": INJECTION, "revisedAmount": "2250.00", "exported": "2250.00", "posted": "2500.00",
         "pending": "0.00", "unsent": "0.00", "difference": "0.00"},
    ]
    assert payload["totals"] == {"revisedAmount": "3650.00", "exported": "3750.00", "posted": "4000.00",
                                 "pending": "0.00", "unsent": "-100.00", "difference": "0.00"}


async def test_the_api_says_the_same(services: Services) -> None:
    tenant, _ = await accountants_budget(services)
    data = await tenant.ok("approver", """query($b: ID!) { budget(id: $b) { reconciliation { balanced
        lines { costCode costType subJob revisedAmount exported posted pending unsent difference }
        totals { revisedAmount exported posted pending unsent difference } } } }""", b=tenant.budget_id)
    rec = data["budget"]["reconciliation"]
    values = ("revisedAmount", "exported", "posted", "pending", "unsent", "difference")
    assert [[line["costCode"], line["costType"], line["subJob"] or "", *(line[v] for v in values)]
            for line in rec["lines"]] == [[r[0], r[1], r[2], *r[4:]] for r in EXPECTED_BUDGET[1:3]]
    assert [rec["totals"][v] for v in values] == EXPECTED_BUDGET[3][4:]
    assert rec["balanced"] is True


async def test_a_companys_projects_with_their_totals(services: Services) -> None:
    tenant, _ = await accountants_budget(services)
    second = await tenant.ok("admin", """mutation { createProject(input: {name: "Annex, phase 2", number: "Q-100"})
        { project { id budget { id } } } }""")
    project = second["createProject"]["project"]
    await tenant.ok("admin", """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i)
        { userErrors { code } } }""", i={"budgetId": project["budget"]["id"], "item": {
        "costCodeId": tenant.cost_codes["09-900"], "costTypeId": tenant.cost_types["S"], "originalAmount": "800.00"}})

    payload, text = await report(services.db.url, "--company", tenant.company_id)

    assert rows(text) == [
        ["Project number", "Project name", "Budget", "Revised amount (USD)", "Exported", "Posted", "Pending", "Unsent",
         "Difference", "Balanced"],
        [f"P-{tenant.company_id[-6:]}", "Riverside MOB", tenant.budget_id, "3650.00", "3750.00", "4000.00", "0.00",
         "-100.00", "0.00", "yes"],
        ["Q-100", "Annex, phase 2", project["budget"]["id"], "800.00", "0.00", "0.00", "0.00", "800.00", "0.00", "yes"],
        ["Total", "", "", "4450.00", "3750.00", "4000.00", "0.00", "700.00", "0.00", "yes"],
    ]
    assert payload["balanced"] is True
    assert [p["project"]["number"] for p in payload["projects"]] == [f"P-{tenant.company_id[-6:]}", "Q-100"]


async def test_an_unknown_budget_or_company_is_one_clear_line(services: Services) -> None:
    for args, message in ((["--budget", "bgt_nope"], "no budget bgt_nope"), (["--company", "co_nope"],
                                                                              "no company co_nope")):
        try:
            await report(services.db.url, *args)
        except admin.AdminError as exc:
            assert str(exc) == message
        else:
            raise AssertionError("an unknown id was reported on")


async def test_the_command_prints_the_csv_and_the_json(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    db = await fresh_database(url)
    services = make_services(db)
    try:
        tenant, _ = await accountants_budget(services)
    finally:
        await services.connectors.aclose()
        await db.dispose()
    env = {"BUDGETBRIDGE_DATABASE_URL": url, "BUDGETBRIDGE_JWT_SECRET": JWT_SECRET, "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, timeout=60,
                              cwd=tmp_path)

    as_csv = run("report", "reconciliation", "--budget", tenant.budget_id)
    assert as_csv.returncode == 0, as_csv.stderr
    assert rows(as_csv.stdout.decode()) == EXPECTED_BUDGET
    assert as_csv.stdout.endswith(b"0.00\r\n")  # CRLF line ends, nothing after the last row
    as_json = run("--json", "report", "reconciliation", "--budget", tenant.budget_id)
    (line,) = as_json.stdout.decode().splitlines()
    assert json.loads(line)["totals"]["unsent"] == "-100.00"
    missing = run("report", "reconciliation", "--company", "co_nope")
    assert missing.returncode == 2 and missing.stderr == b"budgetbridge: no company co_nope\n"
    both = run("report", "reconciliation", "--company", "co_1", "--budget", "bgt_1")
    assert both.returncode == 2 and b"not allowed with argument" in both.stderr
