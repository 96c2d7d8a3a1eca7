"""Bearer tokens: HS256 JWTs naming the user. The user is re-read on every request, so a deleted user or
a changed permission takes effect at once, whatever the token says."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.permissions import Actor, PermissionLevel
from persistence import queries
from persistence.reads import ReadStore
from persistence.records import CompanyRecord, UserRecord
from persistence.tables import server_settings
from resolvers.context import Viewer

ISSUER = "budgetbridge"
DEFAULT_TTL = timedelta(days=30)
DEMO_SECRET_KEY = "demo_jwt_secret"


def issue_token(secret: str, user_id: str, company_id: str, expires_in: timedelta = DEFAULT_TTL) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user_id, "company": company_id, "iss": ISSUER, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def user_id_from_token(secret: str, token: str) -> str | None:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def viewer_of(user: UserRecord, company: CompanyRecord) -> Viewer:
    actor = Actor(
        user_id=user.id,
        company_id=user.company_id,
        is_company_admin=user.is_company_admin,
        is_accounting_approver=user.is_accounting_approver,
        erp_permission=PermissionLevel[user.erp_permission],
    )
    return Viewer(
        actor=actor,
        name=user.name,
        email=user.email,
        currency=company.currency,
        erp_connector=company.erp_connector,
        erp_settings=dict(company.erp_settings or {}),
    )


async def load_viewer(reads: ReadStore, user_id: str) -> Viewer | None:
    """The viewer a token names, read afresh (None: the user no longer exists)."""
    found = await reads.user_with_company(user_id)
    return viewer_of(*found) if found is not None else None


async def viewer_for(conn: AsyncConnection, user_id: str) -> Viewer | None:
    """`load_viewer` on a connection the caller holds (set-up code inside a unit of work)."""
    found = await queries.user_with_company(conn, user_id)
    return viewer_of(*found) if found is not None else None


async def demo_secret(conn: AsyncConnection) -> str:
    """The demo's signing secret: generated once per database and kept in it, so tokens survive restarts."""
    existing = (
        await conn.execute(select(server_settings.c.value).where(server_settings.c.key == DEMO_SECRET_KEY))
    ).scalar_one_or_none()
    if existing is not None:
        return str(existing)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(server_settings)
        .values(key=DEMO_SECRET_KEY, value=secrets.token_hex(32))
        .on_conflict_do_nothing()
    )
    return str(
        (
            await conn.execute(select(server_settings.c.value).where(server_settings.c.key == DEMO_SECRET_KEY))
        ).scalar_one()
    )
