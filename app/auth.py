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
from persistence import reads
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


async def viewer_for(conn: AsyncConnection, user_id: str) -> Viewer | None:
    row = await reads.user_with_company(conn, user_id)
    if row is None:
        return None
    actor = Actor(
        user_id=row.id,
        company_id=row.company_id,
        is_company_admin=row.is_company_admin,
        is_accounting_approver=row.is_accounting_approver,
        erp_permission=PermissionLevel[row.erp_permission],
    )
    return Viewer(
        actor=actor,
        name=row.name,
        email=row.email,
        currency=row.currency,
        erp_connector=row.erp_connector,
        erp_settings=dict(row.erp_settings or {}),
    )


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
