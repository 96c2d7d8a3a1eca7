"""Taking access back over HTTP: disabling a user, revoking their tokens, and the longest a token may live.

Refusals are UNAUTHENTICATED at once (the user is re-read on every request) and change nothing; only a
disabled account is told why. Runs on the suite's engine (SQLite, or PostgreSQL in CI's second run)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app import admin, auth
from app.settings import Settings
from domain.permissions import PermissionLevel
from persistence.database import Database
from resolvers.context import utc_now
from tests.e2e.conftest import LOCK, gql
from tests.e2e.test_auth import VIEWER, assert_unauthenticated
from tests.support import JWT_SECRET, Tenant, snapshot
from tests.test_cli import run, run_json

MAX = Settings().max_token_seconds
TTL = timedelta(seconds=MAX)


async def _colleague(tenant: Tenant, email: str) -> str:
    """A company admin of the tenant with Admin on its project: allowed to lock its budget."""
    async with tenant.services.db.unit_of_work() as uow:
        user_id = await admin.create_user(uow, tenant.company_id, email, email, company_admin=True)
        await admin.grant(uow, user_id, tenant.project_id, PermissionLevel.ADMIN, [])
        await uow.commit()
    return user_id


async def _set_disabled(db: Database, user_id: str, disabled: bool) -> None:
    async with db.unit_of_work() as uow:
        await admin.set_user_disabled(uow.connection, user_id, disabled, utc_now())
        await uow.commit()


async def _revoke(db: Database, user_id: str, now: datetime) -> datetime:
    async with db.unit_of_work() as uow:
        valid_after = await admin.revoke_tokens(uow.connection, user_id, now)
        await uow.commit()
    return valid_after


async def _issue(db: Database, user_id: str, **kwargs: Any) -> str:
    async with db.unit_of_work() as uow:
        token = await admin.issue_user_token(uow.connection, JWT_SECRET, user_id, TTL, **kwargs)
        await uow.commit()
    return token


def _iat(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["iat"])


async def test_a_disabled_user_is_refused_at_once_and_the_same_token_works_once_enabled(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    user_id = await _colleague(tenant, "pat@example.com")
    token = auth.issue_token(JWT_SECRET, user_id, tenant.company_id)
    assert await gql(client, token, VIEWER) == {"data": {"viewer": {"id": user_id}}}

    await _set_disabled(db, user_id, True)
    refused = await gql(client, token, VIEWER)
    assert refused == {"errors": [{"message": "this account is disabled", "extensions": {"code": "UNAUTHENTICATED"}}]}
    before = await snapshot(db, tenant.company_id)
    locked = await gql(client, token, LOCK, i={"budgetId": tenant.budget_id})
    assert [e["extensions"]["code"] for e in locked["errors"]] == ["UNAUTHENTICATED"] and "data" not in locked
    assert await snapshot(db, tenant.company_id) == before
    with pytest.raises(admin.AdminError, match="is disabled"):
        await _issue(db, user_id)

    await _set_disabled(db, user_id, False)
    assert await gql(client, token, VIEWER) == {"data": {"viewer": {"id": user_id}}}
    relocked = await gql(client, token, LOCK, i={"budgetId": tenant.budget_id})
    assert relocked["data"]["lockBudget"]["userErrors"] == [], relocked
    assert relocked["data"]["lockBudget"]["budget"]["locked"] is True, relocked  # the same call now does change


async def test_revoked_tokens_stop_working_and_a_token_issued_after_the_revocation_works(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    user_id = await _colleague(tenant, "sam@example.com")
    old = auth.issue_token(JWT_SECRET, user_id, tenant.company_id)
    assert await gql(client, old, VIEWER) == {"data": {"viewer": {"id": user_id}}}

    await _revoke(db, user_id, utc_now())
    assert_unauthenticated(await gql(client, old, VIEWER))  # the generic answer: nothing about the account
    before = await snapshot(db, tenant.company_id)
    assert_unauthenticated(await gql(client, old, LOCK, i={"budgetId": tenant.budget_id}))
    assert await snapshot(db, tenant.company_id) == before

    new = await _issue(db, user_id)  # at once, very likely within the revocation's second
    assert await gql(client, new, VIEWER) == {"data": {"viewer": {"id": user_id}}}
    assert_unauthenticated(await gql(client, old, VIEWER))


class _Clock:
    """Wall-clock time the test moves: `sleep` advances it, as waiting would."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


async def test_within_the_revocations_second_a_token_issued_before_is_refused_and_one_issued_after_works(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    user_id = await _colleague(tenant, "kim@example.com")
    second = datetime.fromtimestamp(int(utc_now().timestamp()) - 10, UTC)  # a whole second in the recent past
    before = auth.issue_token(JWT_SECRET, user_id, tenant.company_id, now=second + timedelta(seconds=0.2))
    assert await gql(client, before, VIEWER) == {"data": {"viewer": {"id": user_id}}}

    valid_after = await _revoke(db, user_id, second + timedelta(seconds=0.5))
    assert valid_after == second + timedelta(seconds=1)
    assert _iat(before) == int(second.timestamp())
    assert_unauthenticated(await gql(client, before, VIEWER))  # same second as the revocation, but before it

    clock = _Clock(second + timedelta(seconds=0.8))  # same second, after the revocation
    after = await _issue(db, user_id, clock=clock, sleep=clock.sleep)
    assert clock.slept == [pytest.approx(0.2)]  # it waited for the next whole second, no longer
    assert _iat(after) == int(second.timestamp()) + 1
    assert await gql(client, after, VIEWER) == {"data": {"viewer": {"id": user_id}}}
    # Stamped at once instead, it would carry the revoked second's iat and be refused: the wait is what works.
    hasty = auth.issue_token(JWT_SECRET, user_id, tenant.company_id, now=second + timedelta(seconds=0.8))
    assert_unauthenticated(await gql(client, hasty, VIEWER))


def _signed(**claims: Any) -> str:
    return jwt.encode({"iss": auth.ISSUER, **claims}, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(("iat", "exp"), [
    (0, 253402300799),  # exp in year 9999
    (0, MAX + 1),  # exp - iat over the maximum by a second
    (-2 * MAX, MAX + 10),  # issued long ago: exp - now over the maximum
    (None, 600),  # no iat: cannot be checked against revocations
], ids=["year-9999", "one-second-too-long", "exp-too-far-from-now", "no-iat"])
async def test_a_token_living_longer_than_the_maximum_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, iat: int | None, exp: int
) -> None:
    now = int(utc_now().timestamp()) - 1
    claims: dict[str, Any] = {"sub": tenant.users["admin"], "exp": exp if exp > 10**9 else now + exp}
    if iat is not None:
        claims["iat"] = now + iat
    assert_unauthenticated(await gql(client, _signed(**claims), VIEWER))


async def test_a_token_living_exactly_the_maximum_works(client: httpx.AsyncClient, tenant: Tenant) -> None:
    now = int(utc_now().timestamp()) - 1
    token = _signed(sub=tenant.users["admin"], iat=now, exp=now + MAX)
    assert await gql(client, token, VIEWER) == {"data": {"viewer": {"id": tenant.users["admin"]}}}


def test_the_maximum_is_the_setting() -> None:
    now = datetime.now(UTC)
    token = auth.issue_token(JWT_SECRET, "usr_x", "co_x", timedelta(seconds=61), now=now)
    assert auth.read_token(JWT_SECRET, token, 60, now) is None
    issued = int(now.timestamp())
    assert auth.read_token(JWT_SECRET, token, 61, now) == auth.TokenClaims("usr_x", issued, issued + 61)


async def cli_json(tmp_path: Path, *args: str, env: dict[str, str]) -> dict[str, object]:
    return await asyncio.to_thread(run_json, tmp_path, *args, env=env)


async def test_the_cli_takes_access_back_and_the_server_obeys(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, tmp_path: Path
) -> None:
    """`budgetbridge user disable|enable` and `token revoke` on the server's own database. (The commands run in
    a thread, so the server in this event loop goes on running meanwhile, as it would.)"""
    on_db = {"BUDGETBRIDGE_DATABASE_URL": db.url}
    user_id = await _colleague(tenant, "cli@example.com")
    first = (await cli_json(tmp_path, "token", "--user", user_id, env=on_db))["token"]
    assert isinstance(first, str)
    assert await gql(client, first, VIEWER) == {"data": {"viewer": {"id": user_id}}}

    disabled = await cli_json(tmp_path, "user", "disable", "--user", user_id, env=on_db)
    assert disabled["id"] == user_id and disabled["disabled"] is True and isinstance(disabled["disabledAt"], str)
    assert (await gql(client, first, VIEWER))["errors"][0]["message"] == "this account is disabled"
    no_token = await asyncio.to_thread(run, tmp_path, "token", "--user", user_id, **on_db)
    assert no_token.returncode == 2 and no_token.stdout == ""
    assert no_token.stderr == (
        f"budgetbridge: user {user_id} is disabled: `budgetbridge user enable --user {user_id}` first\n"
    )

    assert await cli_json(tmp_path, "user", "enable", "--user", user_id, env=on_db) == {
        "id": user_id, "disabled": False, "disabledAt": None,
    }
    assert await gql(client, first, VIEWER) == {"data": {"viewer": {"id": user_id}}}

    revoked = await cli_json(tmp_path, "token", "revoke", "--user", user_id, env=on_db)
    valid_after = datetime.fromisoformat(str(revoked["tokensValidAfter"]))
    assert revoked["user"] == user_id and valid_after.microsecond == 0
    assert_unauthenticated(await gql(client, first, VIEWER))
    second = (await cli_json(tmp_path, "token", "--user", user_id, env=on_db))["token"]
    assert isinstance(second, str) and _iat(second) >= valid_after.timestamp() > _iat(first)
    assert await gql(client, second, VIEWER) == {"data": {"viewer": {"id": user_id}}}
