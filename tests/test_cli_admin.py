"""The operator's admin commands end to end, in process on the suite's database (both engines): what each
prints (text and --json), what it wrote (read back from the database), and each refusal with its message and
the proof that nothing changed. Other tests' companies share the database, so lists are checked for this
test's rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import cli
from app.export_worker import ExportWorker
from app.settings import Settings
from domain.permissions import Grant, PermissionLevel, ProjectAccess
from persistence import tables
from persistence.database import Database
from resolvers.context import Services
from resolvers.export_pipeline import RetryPolicy
from tests.erp.fakes import ScriptedConnector, SingleConnectorRegistry, failures
from tests.erp.workflow import accept, add_line, lock_and_send, request
from tests.support import JWT_SECRET, Tenant, make_tenant, snapshot


@dataclass
class Answer:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        lines = self.out.splitlines()
        assert len(lines) == 1, self.out
        return json.loads(lines[0])


@pytest.fixture
def run(db: Database, capsys: pytest.CaptureFixture[str]) -> Any:
    async def run(*argv: str) -> Answer:
        code = await cli.run_command(cli.parse(list(argv)), Settings(database_url=db.url, jwt_secret=JWT_SECRET))
        out, err = capsys.readouterr()
        return Answer(code, out, err)

    return run


async def company_row(db: Database, company_id: str) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(tables.companies).where(tables.companies.c.id == company_id))).one()


# --- companies -----------------------------------------------------------------------------------------


async def test_company_list_shows_each_company_with_its_connector_but_not_its_option_values(
    run: Any, db: Database, tmp_path: Path
) -> None:
    created = (await run("--json", "company", "create", "--name", "Listed Builders", "--currency", "cad")).json
    ok = await run("company", "set-erp", "--company", created["id"], "--connector", "sage300-file",
                   "--drop-folder", str(tmp_path), "--option", "encoding=cp1252")
    assert ok.code == 0, ok.err

    listed = (await run("company", "list", "--json")).json["companies"]
    mine = [c for c in listed if c["id"] == created["id"]]
    assert mine == [{"id": created["id"], "name": "Listed Builders", "currency": "CAD", "connector": "sage300-file",
                     "connectorOptions": ["drop_folder", "encoding"], "createdAt": mine[0]["createdAt"]}]
    text = (await run("company", "list")).out
    assert f"{created['id']}  CAD  sage300-file  Listed Builders" in text.splitlines()
    assert str(tmp_path) not in text and "cp1252" not in text
    row = await company_row(db, created["id"])
    assert row.erp_settings == {"drop_folder": str(tmp_path), "encoding": "cp1252"}


@pytest.mark.parametrize(("connector", "given", "suggestion"), [
    ("webhook", {"url": "https://erp.example/hook", "secret": "s" * 20, "timeout_second": "5"}, "timeout_seconds"),
    ("vista-csv", {"drop_folder": "/tmp", "cost_type_mapp": "L:1"}, "cost_type_map"),
    ("sage300-file", {"drop_folder": "/tmp", "encodng": "cp1252"}, "encoding"),
    ("embedded", {"require_posting_total": "true"}, "require_posting_totals"),
    ("embedded", {"drop_folder": "/tmp"}, None),
])
async def test_a_mistyped_connector_option_is_refused_naming_the_known_ones(
    run: Any, db: Database, connector: str, given: dict[str, str], suggestion: str | None
) -> None:
    company = (await run("--json", "company", "create", "--name", "Typo Builders")).json["id"]
    before = await company_row(db, company)
    options = [arg for key, value in given.items() for arg in ("--option", f"{key}={value}")]

    refused = await run("company", "set-erp", "--company", company, "--connector", connector, *options)

    assert refused.code == 2 and refused.out == ""
    assert refused.err.count("\n") == 1 and f"the {connector} connector has no option" in refused.err
    assert (f"did you mean {suggestion!r}?" in refused.err) is (suggestion is not None)
    assert "its options: " in refused.err and "require_posting_totals" in refused.err
    as_json = await run("--json", "company", "set-erp", "--company", company, "--connector", connector, *options)
    assert as_json.code == 2 and "has no option" in as_json.json["error"]
    assert await company_row(db, company) == before  # still embedded, no options


async def test_every_declared_option_is_accepted_and_saved(run: Any, db: Database, tmp_path: Path) -> None:
    company = (await run("--json", "company", "create", "--name", "Vista Builders")).json["id"]
    answer = await run("--json", "company", "set-erp", "--company", company, "--connector", "vista-csv",
                       "--drop-folder", str(tmp_path), "--option", "company_number=7",
                       "--option", "cost_type_map=L:1,M:2", "--option", "require_posting_totals=false")
    assert answer.code == 0, answer.out
    assert answer.json["options"] == ["company_number", "cost_type_map", "drop_folder", "require_posting_totals"]
    row = await company_row(db, company)
    assert row.erp_connector == "vista-csv" and row.erp_settings["company_number"] == "7"


def test_set_erp_help_lists_each_connectors_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["company", "set-erp", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "webhook: url, secret, timeout_seconds, supports_sub_jobs, requires_posting, require_posting_totals" in shown
    assert "vista-csv: drop_folder, company_number, cost_type_map, require_posting_totals" in shown


# --- projects ------------------------------------------------------------------------------------------


async def test_project_create_makes_the_project_with_its_budget(run: Any, db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    answer = await run("--json", "project", "create", "--company", tenant.company_id, "--number", " 2026-077 ",
                       "--name", "North Annex", "--erp-job-id", "JOB-2026-077")
    assert answer.code == 0, answer.out
    project_id = answer.json["id"]
    assert answer.json == {"id": project_id, "company": tenant.company_id, "number": "2026-077"}
    async with db.read() as conn:
        project = (await conn.execute(select(tables.projects).where(tables.projects.c.id == project_id))).one()
        budget = (await conn.execute(select(tables.budgets).where(tables.budgets.c.project_id == project_id))).one()
    assert (project.company_id, project.number, project.name, project.erp_job_id) == (
        tenant.company_id, "2026-077", "North Annex", "JOB-2026-077")
    assert (budget.export_status, budget.locked, budget.version) == ("NOT_SENT", False, 1)
    # The company admin sees it through the API at once, as synced to the ERP job it names.
    data = await tenant.ok("admin", "query($p: ID!) { node(id: $p) { ... on Project { number erpJobId } } }",
                           p=project_id)
    assert data["node"] == {"number": "2026-077", "erpJobId": "JOB-2026-077"}
    text = await run("project", "create", "--company", tenant.company_id, "--number", "2026-078", "--name", "B")
    assert text.code == 0 and text.out.startswith("project prj_")


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--number", "P-TAKEN", "--name", "Again"], "--number: project number P-TAKEN is already used",
     "VALIDATION_FAILED"),
    (["--number", "  ", "--name", "Blank"], "--number: must not be empty", "VALIDATION_FAILED"),
    (["--number", "P-2", "--name", "x" * 201], "--name: must be at most 200 characters", "VALIDATION_FAILED"),
    (["--number", "P-3", "--name", "Job", "--erp-job-id", "J" * 101], "--erp-job-id: must be at most 100 characters",
     "VALIDATION_FAILED"),
])
async def test_project_create_refuses_what_create_project_refuses(
    run: Any, db: Database, services: Services, args: list[str], message: str, code: str
) -> None:
    tenant = await make_tenant(services)
    assert (await run("project", "create", "--company", tenant.company_id, "--number", "P-TAKEN",
                      "--name", "First")).code == 0
    before = await snapshot(db, tenant.company_id)
    refused = await run("project", "create", "--company", tenant.company_id, *args)
    assert (refused.code, refused.err) == (2, f"budgetbridge: {message}\n")
    as_json = await run("--json", "project", "create", "--company", tenant.company_id, *args)
    assert as_json.json == {"error": message, "code": code}
    assert await snapshot(db, tenant.company_id) == before


async def test_project_create_in_an_unknown_company_is_refused(run: Any) -> None:
    refused = await run("project", "create", "--company", "co_nope", "--number", "1", "--name", "X")
    assert (refused.code, refused.err) == (2, "budgetbridge: no company co_nope\n")


# --- users ---------------------------------------------------------------------------------------------


async def test_an_approver_without_erp_integrations_is_made_with_a_one_line_warning(run: Any, db: Database) -> None:
    company = (await run("--json", "company", "create", "--name", "Warned Builders")).json["id"]

    made = await run("user", "create", "--company", company, "--email", "ap@warned.test", "--name", "Ap",
                     "--approver")
    assert made.code == 0 and made.out.startswith("user usr_")
    assert made.err.count("\n") == 1
    assert made.err.startswith("budgetbridge: warning: this approver cannot decide exports until given ERP "
                               "Integrations STANDARD or ADMIN")
    scripted = await run("--json", "user", "create", "--company", company, "--email", "ap2@warned.test",
                         "--name", "Ap2", "--approver", "--erp-permission", "READ_ONLY")
    assert scripted.err == "" and "cannot decide exports" in scripted.json["warning"]
    fine = await run("user", "create", "--company", company, "--email", "ap3@warned.test", "--name", "Ap3",
                     "--approver", "--erp-permission", "STANDARD")
    plain = await run("--json", "user", "create", "--company", company, "--email", "pm@warned.test", "--name", "Pm")
    assert fine.err == "" and plain.err == "" and "warning" not in plain.json
    async with db.read() as conn:
        rows = (await conn.execute(select(tables.users).where(tables.users.c.company_id == company))).all()
    assert sorted((r.email, r.is_accounting_approver, r.erp_permission) for r in rows) == [
        ("ap2@warned.test", True, "READ_ONLY"), ("ap3@warned.test", True, "STANDARD"),
        ("ap@warned.test", True, "NONE"), ("pm@warned.test", False, "NONE")]


async def test_user_list_shows_a_companys_users_with_their_rights(run: Any, services: Services) -> None:
    tenant = await make_tenant(services)
    listed = (await run("--json", "user", "list", "--company", tenant.company_id)).json["users"]
    assert [u["id"] for u in listed] == list(tenant.users.values())  # oldest first
    approver = next(u for u in listed if u["id"] == tenant.users["approver"])
    assert approver == {"id": tenant.users["approver"], "companyId": tenant.company_id,
                        "email": "approver@example.com", "name": "Approver", "companyAdmin": False,
                        "approver": True, "erpPermission": "STANDARD", "createdAt": approver["createdAt"]}
    text = (await run("user", "list", "--company", tenant.company_id)).out.splitlines()
    assert len(text) == len(tenant.users)
    assert any(tenant.users["admin"] in line and "(company admin, ERP NONE)" in line for line in text)
    everyone = (await run("user", "list", "--json")).json["users"]
    assert set(tenant.users.values()) <= {u["id"] for u in everyone}
    refused = await run("user", "list", "--company", "co_nope")
    assert (refused.code, refused.err) == (2, "budgetbridge: no company co_nope\n")


async def test_user_show_gives_the_rights_and_the_project_grants(run: Any, services: Services) -> None:
    tenant = await make_tenant(services)
    shown = (await run("user", "show", "--user", tenant.users["sender"], "--json")).json
    assert shown["companyName"] == "Test Builders" and shown["canDecideExports"] is False
    assert shown["projects"] == [{"projectId": tenant.project_id, "number": f"P-{tenant.company_id[-6:]}",
                                  "name": "Riverside MOB", "budgetPermission": "STANDARD",
                                  "grants": ["SEND_AND_RETRIEVE"]}]
    approver = (await run("--json", "user", "show", "--user", tenant.users["approver"])).json
    assert (approver["approver"], approver["erpPermission"], approver["canDecideExports"]) == (True, "STANDARD", True)
    text = (await run("user", "show", "--user", tenant.users["erp_reader"])).out
    assert "can decide exports: no (deciding exports needs Standard or Admin on ERP Integrations" in text
    assert "ERP Integrations: READ_ONLY" in text
    refused = await run("--json", "user", "show", "--user", "usr_nope")
    assert (refused.code, refused.json) == (2, {"error": "no user usr_nope"})


async def test_user_grant_replaces_the_users_permission_on_the_project(run: Any, services: Services) -> None:
    tenant = await make_tenant(services)
    user = tenant.users["reader"]
    answer = await run("--json", "user", "grant", "--user", user, "--project", tenant.project_id,
                       "--budget-permission", "STANDARD", "--grant", "LOCK_BUDGET")
    assert answer.json == {"user": user, "project": tenant.project_id, "budgetPermission": "STANDARD",
                           "grants": ["LOCK_BUDGET"]}
    async with services.unit_of_work() as uow:
        assert await uow.access.of(user, tenant.project_id) == ProjectAccess(
            PermissionLevel.STANDARD, frozenset({Grant.LOCK_BUDGET}))
    other = await make_tenant(services)
    refused = await run("user", "grant", "--user", user, "--project", other.project_id, "--budget-permission", "ADMIN")
    assert refused.code == 2 and refused.err == f"budgetbridge: no project {other.project_id} in the user's company\n"
    async with services.unit_of_work() as uow:
        assert (await uow.access.of(user, tenant.project_id)).budget_permission is PermissionLevel.STANDARD
        assert (await uow.access.of(user, other.project_id)).budget_permission is PermissionLevel.NONE


# --- the ERP queue: requests, export jobs, retry ----------------------------------------------------------


async def failed_export(services: Services) -> tuple[Services, Tenant, str, ScriptedConnector]:
    """A tenant whose one accepted request failed to export (the ERP refused it), its job FAILED."""
    connector = ScriptedConnector(outcomes=[*failures("Cost code 03-300 is closed in Job Cost", retryable=False)])
    scripted = Services(db=services.db, connectors=SingleConnectorRegistry(connector))  # type: ignore[arg-type]
    tenant = await make_tenant(scripted)
    await add_line(tenant, "03-300", "L", "1500.00")
    request_id = await lock_and_send(tenant)
    await accept(tenant, request_id)
    await worker(scripted, tenant).run_once()
    assert (await request(tenant, request_id))["status"] == "EXPORT_FAILED"
    return scripted, tenant, request_id, connector


def worker(services: Services, tenant: Tenant) -> ExportWorker:
    return ExportWorker(services, timeout_seconds=2, company_id=tenant.company_id,
                        policy=RetryPolicy(max_attempts=3, base_seconds=0.0, lease_seconds=60))


async def test_erp_requests_lists_a_companys_requests_by_status(run: Any, services: Services) -> None:
    _, tenant, failed, _ = await failed_export(services)
    listed = (await run("--json", "erp", "requests", "--company", tenant.company_id)).json["requests"]
    assert [r["id"] for r in listed] == [failed]
    assert listed[0]["status"] == "EXPORT_FAILED" and listed[0]["kind"] == "CREATE_BUDGET"
    assert listed[0]["failureMessage"] == "Cost code 03-300 is closed in Job Cost"
    assert listed[0]["decidedBy"] == tenant.users["approver"] and listed[0]["exportAttempts"] == 1
    only_failed = (await run("--json", "erp", "requests", "--status", "EXPORT_FAILED", "--status", "SYNCED")).json
    assert failed in {r["id"] for r in only_failed["requests"]}
    assert {r["status"] for r in only_failed["requests"]} <= {"EXPORT_FAILED", "SYNCED"}
    pending = await run("erp", "requests", "--company", tenant.company_id, "--status", "PENDING_ACCEPTANCE")
    assert pending.out == "no ERP requests\n"
    text = (await run("erp", "requests", "--company", tenant.company_id)).out
    assert "EXPORT_FAILED" in text and failed in text and "(Cost code 03-300 is closed in Job Cost)" in text


async def test_erp_jobs_shows_the_export_queue(run: Any, services: Services) -> None:
    _, tenant, failed, _ = await failed_export(services)
    jobs = (await run("--json", "erp", "jobs", "--company", tenant.company_id)).json["jobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert (job["requestId"], job["state"], job["attempts"], job["lastError"]) == (
        failed, "FAILED", 1, "Cost code 03-300 is closed in Job Cost")
    assert job["id"].startswith("xj_") and job["dueAt"] is not None and job["leaseUntil"] is None
    queued = await run("erp", "jobs", "--company", tenant.company_id, "--status", "QUEUED")
    assert queued.out == "no export jobs\n"
    text = (await run("erp", "jobs", "--company", tenant.company_id, "--status", "FAILED")).out
    assert f"{job['id']}  {failed}  FAILED" in text and "attempts 1" in text and "due 20" in text


async def test_erp_retry_runs_retry_export_as_the_approver(run: Any, services: Services) -> None:
    scripted, tenant, failed, connector = await failed_export(services)

    answer = await run("--json", "erp", "retry", "--request", failed, "--user", tenant.users["approver"])

    assert answer.json == {"request": failed, "status": "EXPORTING", "queued": True}
    assert (await request(tenant, failed))["status"] == "EXPORTING"
    jobs = (await run("--json", "erp", "jobs", "--company", tenant.company_id, "--status", "QUEUED")).json["jobs"]
    assert [j["requestId"] for j in jobs] == [failed]
    history = await tenant.ok("admin", """query($b: ID!) { budget(id: $b) { history(first: 1) { edges { node {
        type status actor { id } } } } } }""", b=tenant.budget_id)
    assert history["budget"]["history"]["edges"][0]["node"] == {
        "type": "ExportRetried", "status": "EXPORTING", "actor": {"id": tenant.users["approver"]}}
    assert await worker(scripted, tenant).run_once() == 1  # the worker exports it this time
    assert (await request(tenant, failed))["status"] == "AWAITING_POSTING" and len(connector.exported) == 2


@pytest.mark.parametrize(("role", "message", "code"), [
    ("admin", "deciding exports needs Standard or Admin on ERP Integrations and the accounting approver flag",
     "FORBIDDEN"),
    ("erp_reader", "deciding exports needs Standard or Admin on ERP Integrations and the accounting approver flag",
     "FORBIDDEN"),
])
async def test_erp_retry_is_refused_as_retry_export_refuses(
    run: Any, db: Database, services: Services, role: str, message: str, code: str
) -> None:
    _, tenant, failed, _ = await failed_export(services)
    before = await snapshot(db, tenant.company_id)
    refused = await run("erp", "retry", "--request", failed, "--user", tenant.users[role])
    assert (refused.code, refused.err) == (2, f"budgetbridge: {message}\n")
    as_json = await run("--json", "erp", "retry", "--request", failed, "--user", tenant.users[role])
    assert as_json.json == {"error": message, "code": code}
    assert await snapshot(db, tenant.company_id) == before


async def test_erp_retry_of_a_request_that_did_not_fail_or_is_not_the_users(
    run: Any, db: Database, services: Services
) -> None:
    _, tenant, failed, _ = await failed_export(services)
    assert (await run("erp", "retry", "--request", failed, "--user", tenant.users["approver"])).code == 0
    before = await snapshot(db, tenant.company_id)
    again = await run("--json", "erp", "retry", "--request", failed, "--user", tenant.users["approver"])
    assert again.json == {"error": "only a failed export can be retried (status EXPORTING)", "code": "NOT_FAILED"}
    other = await make_tenant(services)
    elsewhere = await run("--json", "erp", "retry", "--request", failed, "--user", other.users["approver"])
    assert elsewhere.json == {"error": "--request: ERP request not found", "code": "NOT_FOUND"}
    nobody = await run("--json", "erp", "retry", "--request", failed, "--user", "usr_nope")
    assert nobody.json == {"error": "no user usr_nope"}
    assert await snapshot(db, tenant.company_id) == before


async def test_erp_post_posts_the_embedded_ledgers_entries(run: Any, db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1500.00")
    await add_line(tenant, "05-120", "M", "250.00")
    request_id = await lock_and_send(tenant)
    early = await run("erp", "post", "--request", request_id)
    assert (early.code, early.err) == (2, "budgetbridge: the request is PENDING_ACCEPTANCE: nothing exported to post\n")
    await accept(tenant, request_id)
    await worker(services, tenant).run_once()
    posted = await run("--json", "erp", "post", "--request", request_id)
    assert posted.json == {"request": request_id, "postedEntries": 2}
    async with db.read() as conn:
        entries = (await conn.execute(select(tables.erp_job_cost_entries.c.posted).where(
            tables.erp_job_cost_entries.c.batch == "JC-bb-" + request_id.removeprefix("req_")))).scalars().all()
    assert entries == [True, True]
    await worker(services, tenant).run_once()  # posting detection sees it
    assert (await request(tenant, request_id))["status"] == "SYNCED"
