"""Scoped API tokens through the real app: each scope allowed and refused (with its code, and nothing
changed), the audit trail naming the token, revocation and expiry at once, the hash-only storage, the
integrator callback with a token, and the last use written at most once a minute."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app import admin, api_tokens, auth
from app.main import Runtime
from domain.permissions import PermissionLevel
from persistence.database import Database
from persistence.tables import api_tokens as api_tokens_table
from persistence.tables import notification_outbox, users
from resolvers.context import Services
from tests.e2e.conftest import (
    CONFIRM_POSTING,
    CREATE_COST_CODE,
    DECIDE,
    ERP_REQUEST,
    LOCK,
    SEND,
    UNLOCK,
    RunningApp,
    codes,
    gql,
    ok,
    ready_to_send,
    refused,
    wait_for_commit,
)
from tests.erp import workflow
from tests.erp.test_webhook_callbacks import (  # the webhook integrator and the app it calls back
    CALLBACK_PATH,
    callback_app,
    exported_and_waiting,
    http,
    integrator,
    request_of,
    webhook_tenant,
)
from tests.erp.webhook_server import Integrator
from tests.live_server import live_server, server_settings_for
from tests.support import Tenant, make_tenant, now, snapshot
from tests.test_cli import run, run_json
from tests.ws_support import (
    init_payload,
    initialise,
    latest_sequence,
    raw_socket,
    receive,
    send,
    subscribe,
    until_closed,
)

__all__ = ["callback_app", "http", "integrator"]  # fixtures

LIVE = "subscription($a: String) { exportStatusChanged(after: $a) { type actor { name } } }"
HISTORY = """query($b: ID!) { budget(id: $b) { history(first: 5) { edges { node { type actor { id name } } } } } }"""
BUDGET_NAME = "query($b: ID!) { budget(id: $b) { id locked } projects { totalCount } }"


async def new_token(db: Database, tenant: Tenant, scope: str, name: str = "hh2 sync",
                    expires_in: timedelta | None = None) -> tuple[str, str, str]:
    """(token, token id, principal user id)."""
    async with db.unit_of_work() as uow:
        token, record = await api_tokens.create(uow.connection, tenant.company_id, name, scope, now(), expires_in)
        await uow.commit()
    return token, record.id, record.user_id


async def grant_project(db: Database, tenant: Tenant, user_id: str) -> None:
    async with db.unit_of_work() as uow:
        await admin.grant(uow, user_id, tenant.project_id, PermissionLevel.ADMIN, [])
        await uow.commit()


async def revoke(db: Database, token_id: str) -> None:
    async with db.unit_of_work() as uow:
        await api_tokens.revoke(uow.connection, token_id, now())
        await uow.commit()


def assert_forbidden(errors: list[dict[str, Any]], mutation: str, scope: str) -> None:
    assert codes(errors) == ["FORBIDDEN"], errors
    assert f"{mutation} is not allowed for an API token with the '{scope}' scope" in errors[0]["message"]


async def awaiting_posting(client: httpx.AsyncClient, tenant: Tenant, running_app: RunningApp) -> dict[str, Any]:
    await ready_to_send(client, tenant)
    sent = await ok(client, tenant.token("admin"), SEND, i={"budgetId": tenant.budget_id})
    request_id = sent["sendToERP"]["erpRequest"]["id"]
    await ok(client, tenant.token("approver"), DECIDE, i={"erpRequestId": request_id, "decision": "ACCEPT"})

    async def status() -> dict[str, Any]:
        found: dict[str, Any] = (await ok(client, tenant.token("approver"), ERP_REQUEST, id=request_id))["erpRequest"]
        return found

    exported: dict[str, Any] = await wait_for_commit(running_app.runtime, tenant.company_id, status,
                                                     lambda r: r["status"] == "AWAITING_POSTING")
    return exported


async def test_only_the_hash_is_stored_and_the_token_is_a_service_principal(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    token, token_id, principal = await new_token(db, tenant, "read")
    assert token.startswith("bbt_") and len(token) > 40
    async with db.read() as conn:
        row = (await conn.execute(select(api_tokens_table).where(api_tokens_table.c.id == token_id))).one()
        user = (await conn.execute(select(users).where(users.c.id == principal))).one()
        every_text = [str(v) for table in (api_tokens_table, users) for r in await conn.execute(select(table))
                      for v in r]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in text or token[4:] in text for text in every_text)
    assert (user.kind, user.name, user.is_company_admin, user.is_accounting_approver) == (
        "service", "hh2 sync (API token)", False, False)
    viewer = (await ok(client, token, "{ viewer { id name } }"))["viewer"]
    assert viewer == {"id": principal, "name": "hh2 sync (API token)"}


async def test_read_scope_queries_and_is_refused_every_mutation(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    token, _, principal = await new_token(db, tenant, "read")
    await grant_project(db, tenant, principal)  # even with project rights, the scope is the ceiling
    data = await ok(client, token, BUDGET_NAME, b=tenant.budget_id)
    assert data == {"budget": {"id": tenant.budget_id, "locked": False}, "projects": {"totalCount": 1}}

    before = await snapshot(db, tenant.company_id)
    assert_forbidden(await refused(client, token, LOCK, i={"budgetId": tenant.budget_id}), "lockBudget", "read")
    assert_forbidden(await refused(client, token, CREATE_COST_CODE, i={"code": "99-1", "description": "x"}),
                     "create_costCode", "read")
    assert_forbidden(await refused(client, token, CONFIRM_POSTING, i={"erpRequestId": "req_x"}),
                     "confirmJobCostPosting", "read")
    assert await snapshot(db, tenant.company_id) == before


async def test_workflow_scope_runs_budget_mutations_named_in_the_audit_trail_and_nothing_else(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, running_app: RunningApp
) -> None:
    token, _, principal = await new_token(db, tenant, "workflow", name="Estimating sync")
    await ready_to_send(client, tenant)
    await ok(client, tenant.token("admin"), UNLOCK, i={"budgetId": tenant.budget_id})

    # Without project access the principal is refused like any user without it.
    before = await snapshot(db, tenant.company_id)
    assert codes(await refused(client, token, LOCK, i={"budgetId": tenant.budget_id})) == ["FORBIDDEN"]
    assert await snapshot(db, tenant.company_id) == before

    await grant_project(db, tenant, principal)
    locked = await ok(client, token, LOCK, i={"budgetId": tenant.budget_id})
    assert locked["lockBudget"]["budget"]["locked"] is True
    sent = (await ok(client, token, SEND, i={"budgetId": tenant.budget_id}))["sendToERP"]["erpRequest"]
    assert sent["sentBy"] == {"id": principal}
    history = (await ok(client, tenant.token("admin"), HISTORY, b=tenant.budget_id))["budget"]["history"]
    newest = history["edges"][0]["node"]
    assert newest["actor"] == {"id": principal, "name": "Estimating sync (API token)"}

    # The approvers hear who sent it; the principal has no mailbox, so a rejection notifies nobody there.
    await ok(client, tenant.token("approver"), DECIDE,
             i={"erpRequestId": sent["id"], "decision": "REJECT", "reason": "Split the steel line"})
    async with db.read() as conn:
        outbox = (await conn.execute(select(notification_outbox)
                                     .where(notification_outbox.c.erp_request_id == sent["id"]))).all()
    arrived = [row for row in outbox if row.kind == "REQUEST_ARRIVED"]
    assert arrived and all("Estimating sync (API token)" in str(row.payload) for row in arrived)
    assert "REQUEST_REJECTED" not in {row.kind for row in outbox}  # the sender is the principal: no mail
    assert not [row for row in outbox if row.recipient_id == principal]
    await ok(client, tenant.token("admin"), UNLOCK, i={"budgetId": tenant.budget_id})
    await ok(client, token, LOCK, i={"budgetId": tenant.budget_id})
    sent = (await ok(client, token, SEND, i={"budgetId": tenant.budget_id}))["sendToERP"]["erpRequest"]

    # Approving and confirming stay with people and the erp-callback scope.
    before = await snapshot(db, tenant.company_id)
    assert_forbidden(await refused(client, token, DECIDE, i={"erpRequestId": sent["id"], "decision": "ACCEPT"}),
                     "decideExport", "workflow")
    assert_forbidden(await refused(client, token, CONFIRM_POSTING, i={"erpRequestId": sent["id"]}),
                     "confirmJobCostPosting", "workflow")
    assert_forbidden(await refused(client, token, CREATE_COST_CODE, i={"code": "99-1", "description": "x"}),
                     "create_costCode", "workflow")
    assert await snapshot(db, tenant.company_id) == before


async def test_erp_callback_scope_confirms_posting_and_nothing_else(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, running_app: RunningApp
) -> None:
    token, _, principal = await new_token(db, tenant, "erp-callback", name="Vista bridge")
    await grant_project(db, tenant, principal)
    request = await awaiting_posting(client, tenant, running_app)

    before = await snapshot(db, tenant.company_id)
    assert_forbidden(await refused(client, token, UNLOCK, i={"budgetId": tenant.budget_id}),
                     "unlockBudget", "erp-callback")
    assert await snapshot(db, tenant.company_id) == before

    posted = await ok(client, token, CONFIRM_POSTING, i={"erpRequestId": request["id"]})
    assert posted["confirmJobCostPosting"]["erpRequest"]["status"] == "SYNCED"
    history = (await ok(client, tenant.token("admin"), HISTORY, b=tenant.budget_id))["budget"]["history"]
    assert history["edges"][0]["node"]["actor"] == {"id": principal, "name": "Vista bridge (API token)"}


async def test_a_revoked_token_fails_at_once_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, running_app: RunningApp
) -> None:
    token, token_id, principal = await new_token(db, tenant, "workflow")
    await grant_project(db, tenant, principal)
    await ok(client, token, "{ viewer { id } }")
    assert (await running_app.runtime.auth.authenticate(token)).actor.user_id == principal

    await revoke(db, token_id)
    before = await snapshot(db, tenant.company_id)
    for query, variables in (("{ viewer { id } }", {}), (LOCK, {"i": {"budgetId": tenant.budget_id}})):
        body = await gql(client, token, query, **variables)
        assert body.get("data") is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
        assert "revoked" in body["errors"][0]["message"]
    assert await snapshot(db, tenant.company_id) == before
    # What a live WebSocket's periodic re-read runs (app.graphql_view), and an HS256 token naming the principal.
    with pytest.raises(auth.AuthenticationError):
        await running_app.runtime.auth.authenticate(token)
    runtime: Runtime = running_app.runtime
    named = auth.issue_token(runtime.jwt_secret, principal, tenant.company_id)
    assert (await gql(client, named, "{ viewer { id } }"))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_expired_or_unknown_token_is_unauthenticated(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    expired, _, _ = await new_token(db, tenant, "read", expires_in=timedelta(seconds=1))
    async with db.unit_of_work() as uow:  # expire it now rather than wait for the clock
        await uow.connection.execute(
            api_tokens_table.update().where(api_tokens_table.c.token_hash == api_tokens.hash_of(expired))
            .values(expires_at=now() - timedelta(seconds=1))
        )
        await uow.commit()
    body = await gql(client, expired, "{ viewer { id } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" and "expired" in body["errors"][0]["message"]
    unknown = await gql(client, "bbt_" + "A" * 43, "{ viewer { id } }")
    assert unknown["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_hs256_token_naming_a_principal_keeps_the_scope(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, running_app: RunningApp
) -> None:
    _, _, principal = await new_token(db, tenant, "read")
    await grant_project(db, tenant, principal)
    named = auth.issue_token(running_app.runtime.jwt_secret, principal, tenant.company_id)
    before = await snapshot(db, tenant.company_id)
    assert_forbidden(await refused(client, named, LOCK, i={"budgetId": tenant.budget_id}), "lockBudget", "read")
    assert await snapshot(db, tenant.company_id) == before


async def test_the_last_use_is_written_at_most_once_a_minute(tenant: Tenant, db: Database) -> None:
    _, token_id, _ = await new_token(db, tenant, "read")
    uses = api_tokens.UseRecorder(db)
    t0 = now()

    async def last_used() -> Any:
        async with db.read() as conn:
            return (await conn.execute(select(api_tokens_table.c.last_used_at)
                                       .where(api_tokens_table.c.id == token_id))).scalar_one()

    async def record_of() -> Any:
        async with db.read() as conn:
            listed = await api_tokens.listing(conn, tenant.company_id)
        return next(t for t in listed if t.id == token_id)

    await uses.used(await record_of(), t0)
    assert await last_used() == t0
    await uses.used(await record_of(), t0 + timedelta(seconds=30))
    assert await last_used() == t0
    # Another process (a fresh recorder) within the minute does not write either.
    await api_tokens.UseRecorder(db).used(await record_of(), t0 + timedelta(seconds=45))
    assert await last_used() == t0
    await uses.used(await record_of(), t0 + timedelta(seconds=61))
    assert await last_used() == t0 + timedelta(seconds=61)


async def test_integrator_callbacks_take_an_erp_callback_token_of_the_exports_company(
    http: httpx.AsyncClient, services: Services, db: Database, integrator: Integrator
) -> None:
    tenant = await webhook_tenant(services, integrator)
    other = await make_tenant(services)
    request_id, export_id = await exported_and_waiting(http, tenant, integrator)
    success = {"exportId": export_id, "status": "success", "erpReference": "INT-42"}
    reader, _, _ = await new_token(db, tenant, "read")
    foreign, _, _ = await new_token(db, other, "erp-callback")
    mine, _, _ = await new_token(db, tenant, "erp-callback")

    before = await snapshot(db, tenant.company_id)
    wrong_scope = await http.post(CALLBACK_PATH, json=success, headers={"Authorization": f"Bearer {reader}"})
    assert (wrong_scope.status_code, wrong_scope.json()["code"]) == (403, "FORBIDDEN")
    other_company = await http.post(CALLBACK_PATH, json=success, headers={"Authorization": f"Bearer {foreign}"})
    assert (other_company.status_code, other_company.json()["error"]) == (409, "unknown export")
    bad = await http.post(CALLBACK_PATH, json=success, headers={"Authorization": "Bearer bbt_nope"})
    assert bad.status_code == 401
    assert await snapshot(db, tenant.company_id) == before
    assert (await request_of(http, tenant, request_id))["status"] == "EXPORTING"

    accepted = await http.post(CALLBACK_PATH, json=success, headers={"Authorization": f"Bearer {mine}"})
    assert accepted.status_code == 200, accepted.text
    request = await request_of(http, tenant, request_id)
    assert (request["status"], request["erpReference"]) == ("AWAITING_POSTING", "INT-42")


def test_the_cli_prints_a_token_once_lists_and_revokes(tmp_path: Path) -> None:
    company = str(run_json(tmp_path, "company", "create", "--name", "Acme Builders")["id"])
    created = run_json(tmp_path, "api-token", "create", "--company", company, "--name", "hh2 sync",
                       "--scope", "workflow", "--expires-in", "3600")
    token = str(created["token"])
    assert token.startswith("bbt_") and created["scope"] == "workflow" and created["expiresAt"]
    text = run(tmp_path, "api-token", "list", "--company", company)
    assert str(created["id"]) in text.stdout and "hh2 sync" in text.stdout and "last used never" in text.stdout
    listed = run_json(tmp_path, "api-token", "list", "--company", company)
    assert token not in json.dumps(listed)
    rows: Any = listed["tokens"]
    (row,) = rows
    assert (row["name"], row["scope"], row["lastUsedAt"], row["revokedAt"]) == ("hh2 sync", "workflow", None, None)
    assert run_json(tmp_path, "api-token", "revoke", "--id", str(created["id"]))["revokedAt"]
    for args, message in (
        (("create", "--company", "co_nope", "--name", "x", "--scope", "read"), "no company co_nope"),
        (("create", "--company", company, "--name", "x", "--scope", "read", "--expires-in", "0"),
         "--expires-in must be a positive number of seconds"),
        (("revoke", "--id", "tok_nope"), "no API token tok_nope"),
    ):
        refused_run = run(tmp_path, "api-token", *args)
        assert (refused_run.returncode, refused_run.stderr.strip()) == (2, f"budgetbridge: {message}")


async def test_a_read_token_follows_subscriptions_and_a_revoked_one_cannot_connect(
    db: Database, services: Services
) -> None:
    tenant = await make_tenant(services)
    reader, reader_id, _ = await new_token(db, tenant, "read")
    async with live_server(server_settings_for(db.url)) as server:
        async with raw_socket(server.ws_url) as ws:
            await initialise(ws, reader)
            after = await latest_sequence(services, tenant.company_id)
            await subscribe(ws, "1", LIVE, {"a": after})
            await workflow.add_line(tenant, "03-300", "L", "1000.00")
            await workflow.lock_and_send(tenant)
            message = await receive(ws)
            assert message["type"] == "next", message
            event = message["payload"]["data"]["exportStatusChanged"]
            assert (event["type"], event["actor"]) == ("BudgetSentToErp", {"name": "Admin"})
        await revoke(db, reader_id)
        async with raw_socket(server.ws_url) as ws:
            await send(ws, {"type": "connection_init", "payload": init_payload(reader)})
            code, _ = await until_closed(ws)
            assert code == 4403


async def test_a_live_connection_learns_when_its_credential_ends(
    tenant: Tenant, db: Database, running_app: RunningApp
) -> None:
    """A WebSocket's periodic re-read authenticates its token again (app.graphql_view): past the token's
    expiry that fails, whatever the kind of token."""
    runtime = running_app.runtime

    def at(instant: datetime) -> auth.Authenticator:
        return auth.Authenticator(
            runtime.jwt_secret, runtime.services.reads, runtime.settings.max_token_seconds, clock=lambda: instant
        )

    token, _, _ = await new_token(db, tenant, "read", expires_in=timedelta(hours=1))
    viewer = await at(now()).authenticate(token)
    assert viewer.credential_expires_at is not None
    with pytest.raises(auth.AuthenticationError, match="expired"):
        await at(viewer.credential_expires_at).authenticate(token)

    person = auth.issue_token(runtime.jwt_secret, tenant.users["admin"], tenant.company_id, timedelta(minutes=5))
    assert (await at(now()).authenticate(person)).actor.user_id == tenant.users["admin"]
    with pytest.raises(auth.AuthenticationError):
        await at(now() + timedelta(minutes=6)).authenticate(person)
