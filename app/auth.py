"""Bearer tokens, three kinds, told apart by their form:

- `bbt_...`: a scoped API token (app/api_tokens.py), looked up by its hash on every request, so a revoked
  token fails at once;
- an HS256 JWT of issuer "budgetbridge" naming the user (`budgetbridge token`, the demo, scripts);
- any other JWT: an access token of a company's OpenID Connect issuer (app/oidc.py).

The user is re-read on every request, so a deleted user or a changed permission takes effect at once,
whatever the token says."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app import api_tokens
from domain.permissions import Actor, PermissionLevel, TokenScope
from persistence import queries
from persistence.api_tokens import ApiTokenRecord
from persistence.reads import ReadStore
from persistence.records import CompanyRecord, UserRecord
from persistence.tables import server_settings
from resolvers.context import Viewer, utc_now

if TYPE_CHECKING:
    from app.oidc import OidcVerifier

ISSUER = "budgetbridge"
DEFAULT_TTL = timedelta(days=30)
DEMO_SECRET_KEY = "demo_jwt_secret"


def issue_token(secret: str, user_id: str, company_id: str, expires_in: timedelta = DEFAULT_TTL) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user_id, "company": company_id, "iss": ISSUER, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def verified_claims(secret: str, token: str) -> dict[str, Any] | None:
    """The claims of one of our HS256 tokens (None: not ours, forged or expired)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError:
        return None
    return claims


def user_id_from_token(secret: str, token: str) -> str | None:
    claims = verified_claims(secret, token)
    subject = claims.get("sub") if claims is not None else None
    return subject if isinstance(subject, str) else None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def viewer_of(user: UserRecord, company: CompanyRecord, token: ApiTokenRecord | None = None) -> Viewer:
    actor = Actor(
        user_id=user.id,
        company_id=user.company_id,
        is_company_admin=user.is_company_admin,
        is_accounting_approver=user.is_accounting_approver,
        erp_permission=PermissionLevel[user.erp_permission],
        scope=TokenScope(token.scope) if token is not None else None,
    )
    return Viewer(
        actor=actor,
        name=user.name,
        email=user.email,
        currency=company.currency,
        erp_connector=company.erp_connector,
        erp_settings=dict(company.erp_settings or {}),
    )


async def load_viewer(reads: ReadStore, user_id: str, now: datetime | None = None) -> Viewer | None:
    """The viewer a token names, read afresh (None: the user no longer exists, or is the principal of an API
    token that is revoked or expired). A principal keeps its token's scope however it is named."""
    found = await reads.viewer_rows(user_id)
    if found is None:
        return None
    user, company, token = found
    if token is not None and not api_tokens.is_usable(token, now or datetime.now(UTC)):
        return None
    return viewer_of(user, company, token)


async def still_valid(reads: ReadStore, viewer: Viewer, now: datetime | None = None) -> bool:
    """Is the credential behind this viewer still good? False once its token expired (any kind), the user is
    removed or the API token revoked. For long-lived connections: a WebSocket re-reads it periodically and
    closes when it no longer holds."""
    now = now or datetime.now(UTC)
    if viewer.credential_expires_at is not None and now >= viewer.credential_expires_at:
        return False
    return await load_viewer(reads, viewer.actor.user_id, now) is not None


def _expiring(viewer: Viewer, expires: object) -> Viewer:
    """The viewer with its token's `exp` (a JWT's NumericDate) as credential_expires_at."""
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        return dataclasses.replace(viewer, credential_expires_at=datetime.fromtimestamp(expires, UTC))
    return viewer


class AuthenticationError(Exception):
    """The bearer token does not authenticate anyone; the message says why where that helps the caller."""

    def __init__(self, message: str = "authentication required: send Authorization: Bearer <token>") -> None:
        super().__init__(message)
        self.message = message


class Authenticator:
    """Turns a bearer token of any kind into the viewer, or refuses it (AuthenticationError)."""

    def __init__(
        self,
        secret: str,
        reads: ReadStore,
        uses: api_tokens.UseRecorder | None = None,
        oidc: OidcVerifier | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.secret = secret
        self.reads = reads
        self.uses = uses
        self.oidc = oidc
        self.clock = clock

    async def authenticate(self, token: str) -> Viewer:
        if api_tokens.looks_like_api_token(token):
            return await self._api_token(token)
        if self.oidc is not None and self.oidc.is_for_issuer_token(token):
            return await self.oidc.viewer(token, self.reads)
        claims = verified_claims(self.secret, token)
        user_id = claims.get("sub") if claims is not None else None
        viewer = await load_viewer(self.reads, user_id, self.clock()) if isinstance(user_id, str) else None
        if viewer is None or claims is None:
            raise AuthenticationError()
        return _expiring(viewer, claims.get("exp"))

    async def viewer(self, token: str) -> Viewer | None:
        try:
            return await self.authenticate(token)
        except AuthenticationError:
            return None

    async def _api_token(self, token: str) -> Viewer:
        found = await self.reads.api_token(api_tokens.hash_of(token))
        now = self.clock()
        if found is None:
            raise AuthenticationError()
        record, user, company = found
        if record.revoked_at is not None:
            raise AuthenticationError("this API token was revoked: ask a company admin for a new one")
        if not api_tokens.is_usable(record, now):
            raise AuthenticationError("this API token has expired: ask a company admin for a new one")
        if self.uses is not None:
            await self.uses.used(record, now)
        return dataclasses.replace(viewer_of(user, company, record), credential_expires_at=record.expires_at)


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
