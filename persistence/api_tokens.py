"""API tokens' rows: each token with the service-principal user it acts as (app/api_tokens.py decides).

Only the token's SHA-256 is stored; a lookup is by that hash. The principal is a `users` row of kind
"service", so events, `sentBy`, idempotency keys and rate limits name the token like any actor."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence import queries, revisions
from persistence.ids import new_id
from persistence.records import CompanyRecord, Record, UserRecord
from persistence.tables import api_tokens, companies, users


@dataclass(frozen=True, slots=True)
class ApiTokenRecord(Record):
    id: str
    company_id: str
    user_id: str
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class PrincipalRights:
    """The company-level rights the principal's user row gets (its scope is the ceiling above them)."""

    is_company_admin: bool = False
    is_accounting_approver: bool = False
    erp_permission: str = "NONE"


async def company_exists(conn: AsyncConnection, company_id: str) -> bool:
    return (await conn.execute(select(companies.c.id).where(companies.c.id == company_id))).first() is not None


async def create(
    conn: AsyncConnection,
    company_id: str,
    name: str,
    scope: str,
    token_hash: str,
    rights: PrincipalRights,
    now: datetime,
    expires_at: datetime | None,
) -> ApiTokenRecord:
    token_id = f"tok_{uuid.uuid4().hex}"
    user_id = new_id("User")
    await conn.execute(
        insert(users).values(
            id=user_id,
            company_id=company_id,
            # Unique per company like a person's email, and undeliverable (.invalid, RFC 2606).
            email=f"{token_id}@api-token.invalid",
            name=f"{name} (API token)",
            is_company_admin=rights.is_company_admin,
            is_accounting_approver=rights.is_accounting_approver,
            erp_permission=rights.erp_permission,
            created_at=now,
            kind="service",
        )
    )
    values = {
        "id": token_id, "company_id": company_id, "user_id": user_id, "name": name, "scope": scope,
        "token_hash": token_hash, "created_at": now, "expires_at": expires_at,
        "last_used_at": None, "revoked_at": None,
    }
    await conn.execute(insert(api_tokens).values(**values))
    await revisions.bump(conn, company_id)  # its principal is a User a query can reach
    return ApiTokenRecord.of(values)


async def of_company(conn: AsyncConnection, company_id: str) -> list[ApiTokenRecord]:
    rows = await conn.execute(
        select(api_tokens).where(api_tokens.c.company_id == company_id).order_by(api_tokens.c.created_at,
                                                                                   api_tokens.c.id)
    )
    return [ApiTokenRecord.of(row) for row in rows]


async def revoke(conn: AsyncConnection, token_id: str, now: datetime) -> ApiTokenRecord | None:
    """Revoke a token (a second revoke keeps the first time). None: no such token."""
    await conn.execute(
        update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
    if row is not None:
        # Nothing queryable changes (the token is refused at authentication), but a revocation is a change
        # of who may read: cached answers of the company are not served across it.
        await revisions.bump(conn, row.company_id)
    return ApiTokenRecord.of(row) if row is not None else None


async def by_hash(
    conn: AsyncConnection, token_hash: str
) -> tuple[ApiTokenRecord, UserRecord, CompanyRecord] | None:
    """The token with that hash, its principal and company (revoked or expired too: the caller decides)."""
    user_id = (
        await conn.execute(select(api_tokens.c.user_id).where(api_tokens.c.token_hash == token_hash))
    ).scalar_one_or_none()
    if user_id is None:
        return None
    found = await viewer_rows(conn, user_id)
    if found is None:
        return None
    user, company, token = found
    return (token, user, company) if token is not None else None


_TOKEN_PREFIX = "token__"


def _viewer_rows() -> Select[Any]:
    token_columns = [column.label(_TOKEN_PREFIX + column.name) for column in api_tokens.c]
    return (
        select(users, *(column.label(queries.COMPANY_PREFIX + column.name) for column in companies.c), *token_columns)
        .join(companies, companies.c.id == users.c.company_id)
        .outerjoin(api_tokens, api_tokens.c.user_id == users.c.id)
        .where(users.c.id == bindparam("user_id"))
    )


# Built once: every request reads its viewer with it (see persistence.decision_writes).
_VIEWER_ROWS = _viewer_rows()


async def viewer_rows(
    conn: AsyncConnection, user_id: str
) -> tuple[UserRecord, CompanyRecord, ApiTokenRecord | None] | None:
    """A user, their company and, for a service principal, its token: in one statement (every request's
    viewer is read with it, so a revoked token or a removed user stops working at once)."""
    row = (await conn.execute(_VIEWER_ROWS, {"user_id": user_id})).first()
    if row is None:
        return None
    mapping = row._mapping
    company = {column.name: mapping[queries.COMPANY_PREFIX + column.name] for column in companies.c}
    token = {column.name: mapping[_TOKEN_PREFIX + column.name] for column in api_tokens.c}
    if mapping["kind"] != "service":
        return UserRecord.of(mapping), CompanyRecord.of(company), None
    if token["id"] is None:
        return None  # a principal without its token authenticates as nobody
    return UserRecord.of(mapping), CompanyRecord.of(company), ApiTokenRecord.of(token)


async def touch(conn: AsyncConnection, token_id: str, now: datetime, every: timedelta) -> None:
    """Record a use, unless one was recorded less than `every` ago (one write per token per period)."""
    await conn.execute(
        update(api_tokens)
        .where(
            and_(
                api_tokens.c.id == token_id,
                or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < now - every),
            )
        )
        .values(last_used_at=now)
    )
