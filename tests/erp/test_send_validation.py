"""Validation before the click, through the schema on the suite's database (both engines): every Sage 300 CRE
field limit is an ERP_FORMAT_INVALID blocker naming the line and the field (Blocker.lineItem / field) and
refuses sendToERP with the same, changing nothing; the batch checked before the send is the one the worker
exports; a connection changed after the send fails the export with the violations instead of writing a file;
and a request's exported entries are what reached the ERP."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import admin
from app.export_worker import ExportWorker
from persistence.export_reads import SqlExportReads
from persistence.tables import erp_job_cost_entries, export_jobs, projects
from resolvers.budget_state import export_state, send_batch
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.fixtures.batches import STEEL_TOO_LONG, assert_same_records, rows
from tests.erp.workflow import ACCEPT, LOCK, MODIFY, RETRY, SEND, SYNC, add_line, request
from tests.support import Tenant, make_tenant, snapshot

BLOCKERS = """query($b: ID!) { budget(id: $b) { sendBlockers { code message field lineItem { id } } } }"""
SEND_ERRORS = """mutation($b: ID!) { sendToERP(input: {budgetId: $b}) {
  erpRequest { id } userErrors { code message field } } }"""
ENTRIES = """query($r: ID!) { erpRequest(id: $r) { status entryCount entriesTotal entries {
  id entryId kind costCode costType subJob amount quantity posted postedAt
  lineItem { id } modification { number notes } } } }"""

CODES = ("03-300", "05-120", "09-900", "03-300-0001-ABCD", "=03300")
TYPES = ("L", "M", "S", "LABR", "@L")


async def connect(tenant: Tenant, name: str, options: dict[str, Any]) -> None:
    if "drop_folder" in options:  # as an administrator does: the folder exists before it is configured
        Path(options["drop_folder"]).mkdir(exist_ok=True)
    async with tenant.services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, name, options)
        await uow.commit()


async def file_tenant(services: Services, folder: Path, name: str = "sage300-file", **options: Any) -> Tenant:
    tenant = await make_tenant(services, connector=None, codes=CODES, types=TYPES)
    await connect(tenant, name, {"drop_folder": str(folder), **options})
    return tenant


async def ready(tenant: Tenant) -> None:
    """Sync the job (and the lines' cost codes and types) and lock."""
    await tenant.ok("admin", SYNC, p=tenant.project_id)
    await tenant.ok("admin", LOCK, b=tenant.budget_id)


def worker(tenant: Tenant) -> ExportWorker:
    return ExportWorker(tenant.services, timeout_seconds=5, company_id=tenant.company_id,
                        policy=RetryPolicy(max_attempts=3, base_seconds=0.0))


async def new_cost_code(tenant: Tenant, code: str, description: str) -> None:
    data = await tenant.ok("admin", """mutation($i: CreateCostCodeInput!) { createCostCode(input: $i) {
        costCode { id } userErrors { code } } }""", i={"code": code, "description": description})
    tenant.cost_codes[code] = data["createCostCode"]["costCode"]["id"]


async def modification_line(tenant: Tenant) -> str:
    """A line at zero that a modification of 123,456,789.00 moves money onto (after the lock)."""
    line = await add_line(tenant, "09-900", "S", "0.00")
    await ready(tenant)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "toLineItemId": line, "amount": "123456789.00",
                                        "notes": "Owner allowance"})
    return line


async def long_code_description(tenant: Tenant) -> str:
    await new_cost_code(tenant, "01-100", STEEL_TOO_LONG)
    return await add_line(tenant, "01-100", "L", "10.00")


# case: (cost code, cost type, amount, line fields, the field at fault, words of the message)
SAGE_LIMITS: list[tuple[str, str, str, str, dict[str, Any], str, list[str]]] = [
    ("cost code over 15", "03-300-0001-ABCD", "L", "10.00", {}, "costCode", ["16 characters", "at most 15"]),
    ("cost code read as a formula", "=03300", "L", "10.00", {}, "costCode", ["formula"]),
    ("category over 3", "03-300", "LABR", "10.00", {}, "costType", ["4 characters", "at most 3"]),
    ("category read as a formula", "03-300", "@L", "10.00", {}, "costType", ["formula"]),
    ("description over 30", "03-300", "L", "10.00", {"description": STEEL_TOO_LONG}, "description",
     ["45 characters", "at most 30"]),
    ("description over 30 with its protective quote", "03-300", "L", "10.00", {"description": "=" + "x" * 29},
     "description", ["31 characters", "quote"]),
    ("description with a line break", "03-300", "L", "10.00", {"description": "Footings\r\neast"}, "description",
     ["line break"]),
    ("unit over 4", "03-300", "L", "10.00", {"quantity": "12", "unitOfMeasure": "HOURS"}, "unitOfMeasure",
     ["5 characters", "at most 4"]),
    ("quantity with 3 decimals", "03-300", "L", "10.00", {"quantity": "12.125"}, "quantity",
     ["more than 2 decimal places"]),
    ("quantity over 8 digits", "03-300", "L", "10.00", {"quantity": "123456789"}, "quantity",
     ["more than 8 digits"]),
    ("amount over 8 digits", "03-300", "L", "123456789012.34", {}, "originalAmount",
     ["123456789012.34", "more than 8 digits"]),
    ("amount of 100 million", "03-300", "L", "100000000.00", {}, "originalAmount", ["more than 8 digits"]),
    ("extra over 6", "03-300", "L", "10.00", {"subJob": "BLDG-A-1"}, "subJob", ["8 characters", "at most 6", "extra"]),
    ("extra not file-name safe", "03-300", "L", "10.00", {"subJob": "A/B"}, "subJob", ["file"]),
]
SPECIAL = {
    # case: (how the line is made, the field at fault, words)
    "cost code description over 30 (the line has none)": (long_code_description, "description",
                                                            ["cost code's description", "give the line a description"]),
    "modification over 8 digits": (modification_line, "modificationsAmount", ["modification 1", "more than 8 digits"]),
}
ALL_CASES = [c[0] for c in SAGE_LIMITS] + list(SPECIAL)


async def the_case_line(tenant: Tenant, case: str) -> tuple[str, str, list[str]]:
    """Make the case's offending line on a locked, synced budget: (line id, field at fault, words)."""
    if case in SPECIAL:
        make, field, words = SPECIAL[case]
        line = await make(tenant)
    else:
        _, code, ctype, amount, fields, field, words = next(c for c in SAGE_LIMITS if c[0] == case)
        line = await add_line(tenant, code, ctype, amount, **fields)
    budget = await tenant.ok("admin", "query($b: ID!) { budget(id: $b) { locked } }", b=tenant.budget_id)
    if not budget["budget"]["locked"]:
        await ready(tenant)
    return line, field, words


@pytest.mark.parametrize("case", ALL_CASES)
async def test_each_sage_field_limit_blocks_the_send_naming_the_line_and_field(
    case: str, services: Services, tmp_path: Path
) -> None:
    tenant = await file_tenant(services, tmp_path / "drop")
    await add_line(tenant, "05-120", "M", "2500.00", description="Structural steel")  # a line that fits
    line, field, words = await the_case_line(tenant, case)

    blockers = (await tenant.ok("admin", BLOCKERS, b=tenant.budget_id))["budget"]["sendBlockers"]

    assert [(b["code"], b["field"], b["lineItem"]) for b in blockers] == [
        ("ERP_FORMAT_INVALID", [field], {"id": line})
    ], blockers
    message = blockers[0]["message"]
    assert message.startswith("Line ")
    for word in words:
        assert word in message

    before = await snapshot(services.db, tenant.company_id)
    refused = await tenant.execute("admin", SEND_ERRORS, b=tenant.budget_id)
    assert refused.errors is None
    payload = refused.data["sendToERP"]
    assert payload["erpRequest"] is None
    assert payload["userErrors"] == [
        {"code": "ERP_FORMAT_INVALID", "message": message, "field": ["lineItem", line, field]}
    ]
    assert await snapshot(services.db, tenant.company_id) == before
    assert list((tmp_path / "drop").iterdir()) == []


async def test_a_job_that_does_not_fit_is_a_blocker_on_the_project(services: Services, tmp_path: Path) -> None:
    tenant = await file_tenant(services, tmp_path / "drop")
    async with services.db.unit_of_work() as uow:  # a job number longer than Sage's 10 characters
        await uow.connection.execute(projects.update().where(projects.c.id == tenant.project_id)
                                     .values(number=f"24-017-{tenant.company_id[-6:]}"))
        await uow.commit()
    await add_line(tenant, "03-300", "L", "10.00")
    await ready(tenant)  # sync_job returns the job number: it becomes the ERP job id

    blockers = (await tenant.ok("admin", BLOCKERS, b=tenant.budget_id))["budget"]["sendBlockers"]

    assert [(b["code"], b["field"], b["lineItem"]) for b in blockers] == [
        ("ERP_FORMAT_INVALID", ["project", "erpJobId"], None)
    ]
    assert f"'24-017-{tenant.company_id[-6:]}'" in blockers[0]["message"] and "at most 10" in blockers[0]["message"]
    before = await snapshot(services.db, tenant.company_id)
    refused = (await tenant.execute("admin", SEND_ERRORS, b=tenant.budget_id)).data["sendToERP"]
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [("ERP_FORMAT_INVALID", ["project", "erpJobId"])]
    assert await snapshot(services.db, tenant.company_id) == before


async def test_vista_names_an_unmapped_cost_type_until_the_connection_maps_it(services: Services, tmp_path: Path
                                                                               ) -> None:
    tenant = await file_tenant(services, tmp_path / "drop", "vista-csv", cost_type_map="L:1")
    await add_line(tenant, "03-300", "L", "1500.00")
    steel = await add_line(tenant, "05-120", "M", "2500.00")
    await ready(tenant)

    blockers = (await tenant.ok("admin", BLOCKERS, b=tenant.budget_id))["budget"]["sendBlockers"]
    assert [(b["code"], b["field"], b["lineItem"]) for b in blockers] == [
        ("ERP_FORMAT_INVALID", ["costType"], {"id": steel})
    ]
    assert "cost_type_map" in blockers[0]["message"]

    await connect(tenant, "vista-csv", {"drop_folder": str(tmp_path / "drop"), "cost_type_map": "L:1,M:2"})
    assert (await tenant.ok("admin", BLOCKERS, b=tenant.budget_id))["budget"]["sendBlockers"] == []


async def test_sub_jobs_on_vista_point_at_the_line_too(services: Services, tmp_path: Path) -> None:
    tenant = await file_tenant(services, tmp_path / "drop", "vista-csv", cost_type_map="L:1")
    line = await add_line(tenant, "03-300", "L", "1500.00", subJob="BLDG-A")
    await ready(tenant)
    blockers = (await tenant.ok("admin", BLOCKERS, b=tenant.budget_id))["budget"]["sendBlockers"]
    assert [(b["code"], b["field"], b["lineItem"]) for b in blockers] == [
        ("SUB_JOB_NOT_SUPPORTED", ["subJob"], {"id": line})
    ]


async def test_the_batch_checked_before_the_send_is_the_one_the_worker_exports(services: Services, tmp_path: Path
                                                                                ) -> None:
    tenant = await file_tenant(services, tmp_path / "drop")
    concrete = await add_line(tenant, "03-300", "L", "1500.00", description="Footings", quantity="12.5",
                              unitOfMeasure="CY", unitCost="120.00", subJob="BLDG-A")
    steel = await add_line(tenant, "05-120", "M", "2500.00")
    await add_line(tenant, "09-900", "S", "0.00")
    await ready(tenant)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                        "toLineItemId": concrete, "amount": "300.00", "notes": "CO #4"})
    reads = services.reads
    (budget,) = await reads.budgets([tenant.budget_id], tenant.company_id)
    (project,) = await reads.projects([tenant.project_id], tenant.company_id)
    contents = (await reads.contents_of_budgets([budget.id]))[budget.id]
    today = date(2025, 6, 5)
    preview = send_batch(export_state(budget, contents.lines, contents.modifications, contents.entries), project, today)

    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    loaded = await SqlExportReads(services.db).export_batch(request_id, today)

    assert loaded is not None
    stored = loaded.batch
    assert dataclasses.replace(preview, export_id=stored.export_id, request_id=stored.request_id,
                               items=()) == dataclasses.replace(stored, items=())
    assert len(preview.items) == len(stored.items) == 5
    for ours, theirs in zip(preview.items, stored.items, strict=True):
        assert dataclasses.replace(ours, entry_id=theirs.entry_id) == theirs


async def test_a_connection_changed_after_the_send_fails_the_export_with_the_violations(
    services: Services, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    tenant = await file_tenant(services, drop, "vista-csv", cost_type_map="L:1,M:2")
    await add_line(tenant, "03-300", "L", "1500.00", quantity="40", unitOfMeasure="HR")
    await add_line(tenant, "05-120", "M", "2500.50")
    await ready(tenant)
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    # Meanwhile someone re-maps the cost types: M has no Vista number any more.
    await connect(tenant, "vista-csv", {"drop_folder": str(drop), "cost_type_map": "L:1,S:3"})

    assert await worker(tenant).run_once() == 1

    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    assert failed["failureMessage"].startswith(
        "Viewpoint Vista cannot import this export as it is: Line 05-120/M: the cost type 'M' has no Vista cost type "
        "number (1-255)"
    )
    assert "connection changed since" in failed["failureMessage"]
    assert "retry the export" in failed["failureMessage"]
    async with services.db.read() as conn:
        job = (await conn.execute(select(export_jobs.c.status, export_jobs.c.attempts)
                                  .where(export_jobs.c.request_id == request_id))).one()
    assert tuple(job) == ("FAILED", 1)  # not retried: only another connection (or content) can fix it
    assert not any(p.is_file() for p in drop.iterdir())
    assert (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]["entries"] == []

    # The approver has the mapping put back and retries: the file is written as it would have been.
    await connect(tenant, "vista-csv", {"drop_folder": str(drop), "cost_type_map": "L:1,M:2"})
    await tenant.ok("approver", RETRY, r=request_id)
    assert await worker(tenant).run_once() == 1
    assert (await request(tenant, request_id))["status"] == "AWAITING_POSTING"
    (written,) = [p for p in drop.iterdir() if p.is_file()]
    assert rows(written.read_text()) == [
        ["Job", "Phase", "Cost Type", "U/M", "Hours", "Units", "Unit Cost", "Cost"],
        [tenant_job(tenant), "03-300", "1", "HR", "40.00", "40.000", "37.50000", "1500.00"],
        [tenant_job(tenant), "05-120", "2", "LS", "0.00", "0.000", "0.00000", "2500.50"],
    ]


def tenant_job(tenant: Tenant) -> str:
    return f"P-{tenant.company_id[-6:]}"


async def test_a_switch_to_a_stricter_erp_after_the_send_fails_the_export(services: Services, tmp_path: Path) -> None:
    tenant = await make_tenant(services, codes=CODES, types=TYPES)  # the embedded ledger takes any code
    await add_line(tenant, "03-300-0001-ABCD", "L", "10.00")
    await ready(tenant)
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    await connect(tenant, "sage300-file", {"drop_folder": str(tmp_path / "drop")})

    await worker(tenant).run_once()

    failed = await request(tenant, request_id)
    assert failed["status"] == "EXPORT_FAILED"
    message = failed["failureMessage"]
    assert message.startswith("Sage 300 CRE cannot import this export as it is: ")
    assert "Line 03-300-0001-ABCD/L: the cost code '03-300-0001-ABCD' is 16 characters long; at most 15 fit" in message
    assert list((tmp_path / "drop").iterdir()) == []


async def test_the_entries_of_an_exported_request_are_the_ledgers(services: Services) -> None:
    tenant = await make_tenant(services)
    concrete = await add_line(tenant, "03-300", "L", "1500.00", quantity="12.5", unitOfMeasure="CY", subJob="BLDG-A")
    steel = await add_line(tenant, "05-120", "M", "2500.00")
    await ready(tenant)
    await tenant.ok("admin", MODIFY, i={"budgetId": tenant.budget_id, "fromLineItemId": steel,
                                        "toLineItemId": concrete, "amount": "300.00", "notes": "CO #4"})
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    pending = (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]
    assert (pending["entries"], pending["entryCount"], pending["entriesTotal"]) == ([], 0, "0.00")  # not written yet
    await tenant.ok("approver", ACCEPT, r=request_id)
    assert (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]["entries"] == []  # EXPORTING
    await worker(tenant).run_once()

    exported = (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]
    assert exported["status"] == "AWAITING_POSTING"
    assert (exported["entryCount"], exported["entriesTotal"]) == (4, "4000.00")
    assert [(e["kind"], e["costCode"], e["costType"], e["subJob"], e["amount"], e["quantity"], e["lineItem"]["id"],
             e["modification"], e["posted"], e["postedAt"]) for e in exported["entries"]] == [
        ("ORIGINAL_BUDGET", "03-300", "L", "BLDG-A", "1500.00", "12.5000", concrete, None, False, None),
        ("BUDGET_MODIFICATION", "03-300", "L", "BLDG-A", "300.00", None, concrete, {"number": 1, "notes": "CO #4"},
         False, None),
        ("ORIGINAL_BUDGET", "05-120", "M", None, "2500.00", None, steel, None, False, None),
        ("BUDGET_MODIFICATION", "05-120", "M", None, "-300.00", None, steel, {"number": 1, "notes": "CO #4"},
         False, None),
    ]
    assert all(e["id"] == e["entryId"] for e in exported["entries"])
    async with services.db.read() as conn:
        ledger = (await conn.execute(select(
            erp_job_cost_entries.c.source_entry_id, erp_job_cost_entries.c.kind, erp_job_cost_entries.c.cost_code,
            erp_job_cost_entries.c.cost_type, erp_job_cost_entries.c.sub_job, erp_job_cost_entries.c.amount,
        ).where(erp_job_cost_entries.c.source_entry_id.in_([e["entryId"] for e in exported["entries"]])))).all()
    assert sorted((r[0], r[1], r[2], r[3], r[4] or None, str(r[5])) for r in ledger) == sorted(
        (e["entryId"], e["kind"], e["costCode"], e["costType"], e["subJob"], e["amount"]) for e in exported["entries"]
    )

    async with services.db.unit_of_work() as uow:
        await admin.post_embedded_entries(uow, request_id)
        await uow.commit()
    await worker(tenant).run_once()
    synced = (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]
    assert synced["status"] == "SYNCED"
    assert all(e["posted"] and e["postedAt"] for e in synced["entries"])


async def test_the_entries_of_a_sage_export_are_the_files_rows(services: Services, tmp_path: Path) -> None:
    tenant = await file_tenant(services, tmp_path / "drop")
    await add_line(tenant, "03-300", "L", "1500.00", description="Footings")
    await add_line(tenant, "05-120", "M", "2500.00", description="Structural steel")
    await ready(tenant)
    request_id = (await tenant.ok("admin", SEND, b=tenant.budget_id))["sendToERP"]["erpRequest"]["id"]
    await tenant.ok("approver", ACCEPT, r=request_id)
    await worker(tenant).run_once()

    entries = (await tenant.ok("admin", ENTRIES, r=request_id))["erpRequest"]["entries"]
    (written,) = [p for p in (tmp_path / "drop").iterdir() if p.is_file()]
    stamp = next(iter(rows(written.read_text())))[4]  # the export date, mmddyyyy
    expected = tmp_path / "expected.csv"
    expected.write_text("".join(
        f'"C","{e["costCode"]}","{d}","{e["costType"]}",{stamp},0.00,"",{e["amount"]}\r\n'
        for e, d in zip(entries, ["Footings", "Structural steel"], strict=True)
    ))
    assert_same_records(written, str(expected))
