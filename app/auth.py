"""Bearer tokens: HS256 JWTs naming the user, with `iat` and `exp`. The user is re-read on every request, so
a deleted or disabled user, a revocation or a changed permission takes effect at once, whatever the token
says (domain.access decides); a token may live at most BUDGETBRIDGE_MAX_TOKEN_SECONDS."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import access
from domain.access import AccessRefusal
from domain.permissions import Actor, PermissionLevel
from persistence import queries
from persistence.reads import ReadStore
from persistence.records import CompanyRecord, UserRecord
from persistence.tables import server_settings
from resolvers.context import Viewer, utc_now

ISSUER = "budgetbridge"
DEFAULT_TTL = timedelta(days=30)
DEMO_SECRET_KEY = "demo_jwt_secret"
# The one thing a refused caller learns beyond UNAUTHENTICATED, so a person knows to ask an administrator.
DISABLED_MESSAGE = "this account is disabled"


def issue_token(
    secret: str, user_id: str, company_id: str, expires_in: timedelta = DEFAULT_TTL, *, now: datetime | None = None
) -> str:
    """A signed token. `iat` is whole seconds (as JWT counts them); issuing for a user whose tokens may have
    been revoked goes through app.admin.issue_user_token, which keeps the revocation exact."""
    issued_at = access.whole_seconds(now or datetime.now(UTC))
    claims = {
        "sub": user_id,
        "company": company_id,
        "iss": ISSUER,
        "iat": issued_at,
        "exp": issued_at + int(expires_in.total_seconds()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: whose it is and when it was issued (whole seconds since the epoch)."""

    user_id: str
    issued_at: int


def _seconds(value: object) -> int | None:
    """A NumericDate claim as whole seconds (None: not a number)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_token(secret: str, token: str, max_seconds: int, now: datetime | None = None) -> TokenClaims | None:
    """The claims of a correctly signed, unexpired token of ours that lives no longer than `max_seconds`;
    None for anything else."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "iat", "sub"]}
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return None
    subject, issued_at, expires_at = claims.get("sub"), _seconds(claims.get("iat")), _seconds(claims.get("exp"))
    if not isinstance(subject, str) or issued_at is None or expires_at is None:
        return None
    if access.lives_too_long(issued_at, expires_at, access.whole_seconds(now or utc_now()), max_seconds):
        return None
    return TokenClaims(user_id=subject, issued_at=issued_at)


def account_access(user: UserRecord) -> access.AccountAccess:
    return access.AccountAccess(disabled_at=user.disabled_at, tokens_valid_after=user.tokens_valid_after)


class Authenticator:
    """Turns a bearer token into the viewer it opens, or the reason it opens nothing."""

    def __init__(self, reads: ReadStore, secret: str, max_token_seconds: int) -> None:
        self._reads = reads
        self._secret = secret
        self._max_token_seconds = max_token_seconds

    def claims(self, token: str) -> TokenClaims | None:
        return read_token(self._secret, token, self._max_token_seconds)

    async def viewer(self, claims: TokenClaims) -> Viewer | AccessRefusal:
        """The viewer the claims name, read afresh, or why the token no longer opens the account."""
        found = await self._reads.user_with_company(claims.user_id)
        if found is None:
            return AccessRefusal.NO_SUCH_USER
        refusal = access.token_refusal(account_access(found[0]), claims.issued_at)
        return refusal if refusal is not None else viewer_of(*found)

    async def authenticate(self, token: str) -> Viewer | AccessRefusal | None:
        """The viewer, why a valid token is refused, or None for a token that is not valid at all."""
        claims = self.claims(token)
        return None if claims is None else await self.viewer(claims)


def refusal_message(outcome: AccessRefusal | None) -> str | None:
    """What a refused caller is told instead of the generic message (None: the generic one). Only a disabled
    account says so; a revoked token or a deleted user reads like any invalid token."""
    return DISABLED_MESSAGE if outcome is AccessRefusal.DISABLED else None


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
    """A user's viewer, read afresh, with no token involved (None: no such user): for code that acts as a user
    it already trusts. Requests authenticate through `Authenticator`."""
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
