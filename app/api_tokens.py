"""Scoped API tokens for integrators and scripts: `bbt_` and 43 random URL-safe characters (256 bits), shown
once at creation; the database keeps only their SHA-256 (a token is random enough that a plain hash cannot
be reversed, and it makes the lookup one indexed equality).

A token acts as its own service principal (a `users` row of kind "service"), never as a person. Its scope
(domain.permissions.TokenScope) caps what it may do; the principal's company-level rights are set from the
scope at creation so that what the scope allows is possible at all: every scope reads the whole company
(ERP Integrations Read-only), `erp-callback` confirms posting (ERP Integrations Admin). Budget mutations
also need project access: grant it to the principal with `budgetbridge user grant --user <principal>`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.permissions import TokenScope
from persistence import api_tokens as store
from persistence.api_tokens import ApiTokenRecord, PrincipalRights
from persistence.database import Database

PREFIX = "bbt_"
MAX_NAME_LENGTH = 200
# A token's last use is written at most this often (reads stay reads between).
TOUCH_EVERY = timedelta(minutes=1)

RIGHTS = {
    TokenScope.READ: PrincipalRights(erp_permission="READ_ONLY"),
    TokenScope.WORKFLOW: PrincipalRights(erp_permission="READ_ONLY"),
    TokenScope.ERP_CALLBACK: PrincipalRights(erp_permission="ADMIN"),
}


class ApiTokenError(ValueError):
    """A one-line refusal of the CLI (bad name, unknown company or token)."""


def looks_like_api_token(token: str) -> bool:
    return token.startswith(PREFIX)


def hash_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def is_usable(token: ApiTokenRecord, now: datetime) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


async def create(
    conn: AsyncConnection, company_id: str, name: str, scope: str, now: datetime, expires_in: timedelta | None
) -> tuple[str, ApiTokenRecord]:
    """A new token (its text, shown once) and its row."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ApiTokenError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")
    try:
        chosen = TokenScope(scope)
    except ValueError:
        raise ApiTokenError(f"--scope must be one of {', '.join(s.value for s in TokenScope)}") from None
    if expires_in is not None and expires_in <= timedelta(0):
        raise ApiTokenError("--expires-in must be a positive number of seconds")
    if not await store.company_exists(conn, company_id):
        raise ApiTokenError(f"no company {company_id}")
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = now + expires_in if expires_in is not None else None
    record = await store.create(conn, company_id, name, chosen.value, hash_of(token), RIGHTS[chosen], now, expires_at)
    return token, record


async def listing(conn: AsyncConnection, company_id: str) -> list[ApiTokenRecord]:
    if not await store.company_exists(conn, company_id):
        raise ApiTokenError(f"no company {company_id}")
    return await store.of_company(conn, company_id)


async def revoke(conn: AsyncConnection, token_id: str, now: datetime) -> ApiTokenRecord:
    record = await store.revoke(conn, token_id, now)
    if record is None:
        raise ApiTokenError(f"no API token {token_id}")
    return record


def as_json(token: ApiTokenRecord) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": token.id, "companyId": token.company_id, "principalUserId": token.user_id, "name": token.name,
        "scope": token.scope, "createdAt": when(token.created_at), "lastUsedAt": when(token.last_used_at),
        "expiresAt": when(token.expires_at), "revokedAt": when(token.revoked_at),
    }


class UseRecorder:
    """Writes a token's last use at most once per TOUCH_EVERY per process (the UPDATE's own condition keeps
    several processes to about one write per period too)."""

    def __init__(self, db: Database, every: timedelta = TOUCH_EVERY) -> None:
        self.db = db
        self.every = every
        self._written: dict[str, datetime] = {}

    async def used(self, token: ApiTokenRecord, now: datetime) -> None:
        last = self._written.get(token.id) or token.last_used_at
        if last is not None and now - last < self.every:
            return
        self._written[token.id] = now
        async with self.db.unit_of_work() as uow:
            await store.touch(uow.connection, token.id, now, self.every)
            await uow.commit()
