"""People sign in with their company's OpenID Connect issuer: a real provider (npm's certified
`oidc-provider`, tests/oidc/provider.mjs) issues the access tokens, the real app checks them. Discovery, a key
rotation (RS256 to ES256), a wrong audience, an expired token, an unknown and an unverified email, the link
by `sub`, provisioning, and the public endpoint that tells the dashboard where to sign in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from app import admin, oidc
from app.main import Runtime
from persistence.database import Database
from persistence.tables import sso_links, users
from resolvers.context import utc_now
from tests.e2e.conftest import LOCK, RunningApp, app, client, codes, gql, refused, running_app
from tests.oidc.support import AUDIENCE, CLIENT_ID, Provider, running_provider, sign_in, signing_key
from tests.support import Tenant, snapshot
from tests.test_cli import run, run_json

__all__ = ["app", "client", "running_app"]  # fixtures

VIEWER = "{ viewer { id email } }"


class FakeMonotonic:
    """The key cache's clock, moved by the test (no waiting)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Provider]:
    async with running_provider(tmp_path, [signing_key("RS256")]) as started:
        yield started


@pytest.fixture
def keys_clock(running_app: RunningApp) -> FakeMonotonic:
    clock = FakeMonotonic()
    verifier = running_app.runtime.auth.oidc
    assert verifier is not None
    verifier.keys.clock = clock
    return clock


async def trust(db: Database, tenant: Tenant, provider: Provider, *, audience: str = AUDIENCE,
                provision: bool = False) -> None:
    async with db.unit_of_work() as uow:
        await oidc.set_sso(uow.connection, tenant.company_id, provider.issuer, audience, provision=provision,
                           client_id=CLIENT_ID)
        await uow.commit()


def unauthenticated(body: dict[str, Any]) -> str:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED", body
    message: str = error["message"]
    return message


def verifier_of(runtime: Runtime) -> oidc.OidcVerifier:
    assert runtime.auth.oidc is not None
    return runtime.auth.oidc


async def test_a_person_signs_in_by_verified_email_and_is_linked_by_sub(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider, keys_clock: FakeMonotonic
) -> None:
    await trust(db, tenant, provider)
    tokens = await sign_in(provider, "approver@example.com")
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "RS256"
    body = await gql(client, tokens["access_token"], VIEWER)
    assert body == {"data": {"viewer": {"id": tenant.users["approver"], "email": "approver@example.com"}}}
    async with db.read() as conn:
        link = (await conn.execute(select(sso_links).where(sso_links.c.issuer == provider.issuer))).one()
    assert (link.subject, link.user_id) == ("approver@example.com", tenant.users["approver"])

    # Linked: the subject names the user even when the email in the token no longer matches anyone.
    async with db.unit_of_work() as uow:
        await uow.connection.execute(users.update().where(users.c.id == tenant.users["approver"])
                                     .values(email="alex.renamed@example.com"))
        await uow.commit()
    again = await sign_in(provider, "approver@example.com")
    assert (await gql(client, again["access_token"], "{ viewer { id } }"))["data"]["viewer"]["id"] == (
        tenant.users["approver"])


async def test_a_key_rotation_fetches_the_new_keys_once_and_forged_key_ids_do_not_hammer_the_issuer(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, tmp_path: Path, running_app: RunningApp,
    keys_clock: FakeMonotonic,
) -> None:
    keys = verifier_of(running_app.runtime).keys
    old = signing_key("RS256")
    async with running_provider(tmp_path, [old]) as first:
        await trust(db, tenant, first)
        before = await sign_in(first, "reader@example.com")
        assert (await gql(client, before["access_token"], "{ viewer { id } }"))["data"]["viewer"]["id"] == (
            tenant.users["reader"])
        port, issuer = first.port, first.issuer
    assert keys.fetches == 1

    # The issuer rotates to a new (ES256) signing key, still publishing the old one.
    new = signing_key("ES256")
    async with running_provider(tmp_path, [new, old], port=port) as rotated:
        assert rotated.issuer == issuer
        after = await sign_in(rotated, "reader@example.com")
        assert jwt.get_unverified_header(after["access_token"])["kid"] == new["kid"]
        keys_clock.now += 31  # past the refetch limit since the first fetch
        assert (await gql(client, after["access_token"], "{ viewer { id } }"))["data"]["viewer"]["id"] == (
            tenant.users["reader"])
        assert keys.fetches == 2
        # The old key still verifies (it is still published), without another fetch.
        assert "errors" not in await gql(client, before["access_token"], "{ viewer { id } }")
        # Tokens naming a key id nobody published: refused, and within the limit they fetch nothing.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        async def forged_is_refused() -> None:
            forged = jwt.encode({"iss": issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60},
                                stranger, algorithm="RS256", headers={"kid": "forged-kid"})
            assert "not valid" in unauthenticated(await gql(client, forged, "{ viewer { id } }"))

        for _ in range(3):
            await forged_is_refused()
        assert keys.fetches == 2  # within the limit of the last fetch: nothing fetched
        keys_clock.now += 31
        for _ in range(3):
            await forged_is_refused()
        assert keys.fetches == 3  # past the limit: the first fetched once, the others nothing


async def test_a_token_for_another_audience_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider, keys_clock: FakeMonotonic
) -> None:
    await trust(db, tenant, provider, audience="https://another-api.example.com")
    tokens = await sign_in(provider, "admin@example.com")
    before = await snapshot(db, tenant.company_id)
    body = await gql(client, tokens["access_token"], LOCK, i={"budgetId": tenant.budget_id})
    assert "another application" in unauthenticated(body)
    assert await snapshot(db, tenant.company_id) == before


async def test_an_expired_token_is_refused_past_the_clock_skew(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider, running_app: RunningApp,
    keys_clock: FakeMonotonic,
) -> None:
    await trust(db, tenant, provider)
    tokens = await sign_in(provider, "admin@example.com")
    expires = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
    verifier = verifier_of(running_app.runtime)
    start = utc_now()
    verifier.clock = lambda: start.fromtimestamp(expires + 30, start.tzinfo)  # within the 60 s skew
    assert "errors" not in await gql(client, tokens["access_token"], "{ viewer { id } }")
    # A live connection signed in with it authenticates it again at each re-read (app.graphql_view): the same
    # check, so it ends too once the token is past the skew.
    assert (await running_app.runtime.auth.authenticate(tokens["access_token"])).actor.company_id == tenant.company_id
    verifier.clock = lambda: start.fromtimestamp(expires + 61, start.tzinfo)
    before = await snapshot(db, tenant.company_id)
    body = await gql(client, tokens["access_token"], LOCK, i={"budgetId": tenant.budget_id})
    assert "expired" in unauthenticated(body)
    assert await snapshot(db, tenant.company_id) == before


async def test_an_unknown_person_is_told_what_an_admin_can_do_and_nothing_is_created(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider, keys_clock: FakeMonotonic
) -> None:
    await trust(db, tenant, provider)
    tokens = await sign_in(provider, "newcomer@example.com")
    before = await snapshot(db, tenant.company_id)
    message = unauthenticated(await gql(client, tokens["access_token"], VIEWER))
    assert message.startswith("newcomer@example.com is not a user of this company yet")
    assert f"budgetbridge user create --company {tenant.company_id} --email newcomer@example.com" in message
    assert await snapshot(db, tenant.company_id) == before

    unverified = await sign_in(provider, "unverified@example.com")
    assert "no verified email" in unauthenticated(await gql(client, unverified["access_token"], VIEWER))
    assert await snapshot(db, tenant.company_id) == before


async def test_provisioning_creates_the_person_without_any_permission(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider, keys_clock: FakeMonotonic
) -> None:
    await trust(db, tenant, provider, provision=True)
    tokens = await sign_in(provider, "newcomer@example.com")
    viewer = (await gql(client, tokens["access_token"], VIEWER))["data"]["viewer"]
    assert viewer["email"] == "newcomer@example.com" and viewer["id"] not in tenant.users.values()
    async with db.read() as conn:
        row = (await conn.execute(select(users).where(users.c.id == viewer["id"]))).one()
    assert (row.company_id, row.is_company_admin, row.is_accounting_approver, row.erp_permission, row.kind) == (
        tenant.company_id, False, False, "NONE", "person")
    before = await snapshot(db, tenant.company_id)
    # Without any permission the budget is not even visible to them.
    assert codes(await refused(client, tokens["access_token"], LOCK, i={"budgetId": tenant.budget_id})) == [
        "NOT_FOUND"]
    assert await snapshot(db, tenant.company_id) == before


async def test_an_issuer_no_company_trusts_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, provider: Provider, keys_clock: FakeMonotonic
) -> None:
    tokens = await sign_in(provider, "admin@example.com")
    assert "budgetbridge company set-sso" in unauthenticated(await gql(client, tokens["access_token"], VIEWER))


async def test_the_dashboard_learns_the_issuer_and_client_by_company_or_email(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, provider: Provider
) -> None:
    expected = {"companyId": tenant.company_id, "issuer": provider.issuer, "clientId": CLIENT_ID,
                "audience": AUDIENCE, "scope": oidc.DEFAULT_SCOPE,
                "authorizationEndpoint": f"{provider.issuer}/auth", "tokenEndpoint": f"{provider.issuer}/token"}
    missing = await client.get("/auth/config", params={"company": tenant.company_id})
    assert missing.status_code == 404 and "set-sso" in missing.json()["error"]
    await trust(db, tenant, provider)
    domain = f"{tenant.company_id[-8:]}.builders.test"  # a domain only this company's people have
    async with db.unit_of_work() as uow:
        await admin.create_user(uow, tenant.company_id, f"pm@{domain}", "Pat")
        await uow.commit()
    by_company = await client.get("/auth/config", params={"company": tenant.company_id})
    assert (by_company.status_code, by_company.json()) == (200, expected)
    by_email = await client.get("/auth/config", params={"email": f"Someone.New@{domain.upper()}"})
    assert (by_email.status_code, by_email.json()) == (200, expected)
    unknown = await client.get("/auth/config", params={"email": "pat@unknown-builders.test"})
    assert unknown.status_code == 404 and unknown.json() == missing.json()
    bad = await client.get("/auth/config", params={"email": "not an email"})
    assert bad.status_code == 400
    # The dashboard's page may now call the issuer's token endpoint (its Content-Security-Policy).
    page = await client.get("/", headers={"accept": "text/html"})
    connect = next(d for d in page.headers["content-security-policy"].split("; ") if d.startswith("connect-src"))
    assert connect.split() == ["connect-src", "'self'", provider.issuer]


async def test_set_sso_refuses_what_cannot_be_trusted(tenant: Tenant, db: Database) -> None:
    for issuer in ("http://login.example.com", "ftp://x", "https://login.example.com/?q=1"):
        with pytest.raises(admin.AdminError):
            async with db.unit_of_work() as uow:
                await oidc.set_sso(uow.connection, tenant.company_id, issuer, AUDIENCE)
    assert oidc.issuer_refusal("https://login.example.com/realms/acme") is None
    assert oidc.issuer_refusal("http://127.0.0.1:8080") is None



async def test_set_sso_is_one_command_that_checks_the_issuer_first(tmp_path: Path, provider: Provider) -> None:
    company = str(run_json(tmp_path, "company", "create", "--name", "Acme Builders")["id"])
    saved = await asyncio.to_thread(
        run_json, tmp_path, "company", "set-sso", "--company", company, "--issuer", provider.issuer,
        "--audience", AUDIENCE, "--client-id", CLIENT_ID, "--provision",
    )
    assert saved == {"company": company, "issuer": provider.issuer, "audience": AUDIENCE, "claim": "email",
                     "provision": True, "clientId": CLIENT_ID}
    wrong = await asyncio.to_thread(run, tmp_path, "company", "set-sso", "--company", company, "--issuer",
                                    provider.issuer + "/realms/other", "--audience", AUDIENCE)
    assert wrong.returncode == 2 and wrong.stderr.startswith("budgetbridge: the issuer's discovery failed")
    assert len(wrong.stderr.strip().splitlines()) == 1
