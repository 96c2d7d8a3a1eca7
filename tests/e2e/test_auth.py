"""Authentication at the HTTP edge, GraphiQL and the health check."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import delete

from app import admin, auth
from persistence.database import Database
from persistence.ids import new_id
from persistence.tables import users
from tests.e2e.conftest import LOCK, assert_no_leak, gql, post_graphql
from tests.support import JWT_SECRET, Tenant, snapshot

VIEWER = "{ viewer { id } }"


def assert_unauthenticated(body: dict[str, object]) -> None:
    assert body.get("data") is None, body
    errors = body["errors"]
    assert isinstance(errors, list) and errors, body
    assert {e["extensions"]["code"] for e in errors} == {"UNAUTHENTICATED"}, body
    assert all("Bearer" in e["message"] for e in errors)


async def test_a_valid_token_names_the_viewer(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = await gql(client, tenant.token("reader"), VIEWER)
    assert body == {"data": {"viewer": {"id": tenant.users["reader"]}}}


async def test_no_authorization_header_is_unauthenticated(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    assert_unauthenticated(await gql(client, None, VIEWER))
    before = await snapshot(db, tenant.company_id)
    assert_unauthenticated(await gql(client, None, LOCK, i={"budgetId": tenant.budget_id}))
    assert await snapshot(db, tenant.company_id) == before


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Token abc"],
)
async def test_malformed_authorization_header_is_unauthenticated(
    client: httpx.AsyncClient, tenant: Tenant, header: str
) -> None:
    response = await client.post("/graphql", json={"query": VIEWER}, headers={"Authorization": header})
    assert_no_leak(response.text)
    assert_unauthenticated(response.json())


async def test_token_signed_with_another_secret_is_unauthenticated(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    forged = auth.issue_token("another-secret-" + "y" * 40, tenant.users["admin"], tenant.company_id)
    assert_unauthenticated(await gql(client, forged, VIEWER))
    before = await snapshot(db, tenant.company_id)
    assert_unauthenticated(await gql(client, forged, LOCK, i={"budgetId": tenant.budget_id}))
    assert await snapshot(db, tenant.company_id) == before


async def test_unsigned_token_is_unauthenticated(client: httpx.AsyncClient, tenant: Tenant) -> None:
    claims = {"sub": tenant.users["admin"], "company": tenant.company_id, "iss": auth.ISSUER, "exp": 4102444800}
    unsigned = jwt.encode(claims, key="", algorithm="none")  # "" is PyJWT's typed spelling of no key
    assert_unauthenticated(await gql(client, unsigned, VIEWER))


async def test_expired_token_is_unauthenticated(client: httpx.AsyncClient, tenant: Tenant, db: Database) -> None:
    expired = auth.issue_token(JWT_SECRET, tenant.users["admin"], tenant.company_id, expires_in=timedelta(minutes=-1))
    assert_unauthenticated(await gql(client, expired, VIEWER))
    before = await snapshot(db, tenant.company_id)
    assert_unauthenticated(await gql(client, expired, LOCK, i={"budgetId": tenant.budget_id}))
    assert await snapshot(db, tenant.company_id) == before


async def test_token_of_an_unknown_user_is_unauthenticated(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ghost = auth.issue_token(JWT_SECRET, new_id("User"), tenant.company_id)
    assert_unauthenticated(await gql(client, ghost, VIEWER))


async def test_token_of_a_deleted_user_stops_working_at_once(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    async with db.unit_of_work() as uow:
        user_id = await admin.create_user(uow, tenant.company_id, "leaver@example.com", "Leaver")
        await uow.commit()
    token = auth.issue_token(JWT_SECRET, user_id, tenant.company_id)
    assert (await gql(client, token, VIEWER)) == {"data": {"viewer": {"id": user_id}}}

    async with db.unit_of_work() as uow:
        await uow.connection.execute(delete(users).where(users.c.id == user_id))
        await uow.commit()
    assert_unauthenticated(await gql(client, token, VIEWER))


async def test_get_request_runs_a_query(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/graphql", params={"query": VIEWER},
                                headers={"Authorization": f"Bearer {tenant.token('admin')}",
                                         "Accept": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"id": tenant.users["admin"]}}}


async def test_browser_gets_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower() and "graphiql" in response.text.lower()


async def test_health_check_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_malformed_request_body_is_a_client_error(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post("/graphql", content=b"{not json",
                                 headers={"Authorization": f"Bearer {tenant.token('admin')}",
                                          "Content-Type": "application/json"})
    assert response.status_code == 400
    assert_no_leak(response.text)
    body = await post_graphql(client, tenant.token("admin"), "{ viewer { id ", {})
    assert_no_leak(body.text)
    assert body.json()["errors"][0]["message"].startswith("Syntax Error")
