"""Bearer tokens, three kinds, told apart by their form:

- `bbt_...`: a scoped API token (app/api_tokens.py), looked up by its hash on every request, so a revoked
  token fails at once;
- an HS256 JWT of issuer "budgetbridge" naming the user, with `iat` and `exp` (`budgetbridge token`, the demo,
  scripts); it may live at most BUDGETBRIDGE_MAX_TOKEN_SECONDS;
- any other JWT: an access token of a company's OpenID Connect issuer (app/oidc.py).

Whatever the kind, the account is re-read on every request (and at each re-read of a live WebSocket), so a
deleted or disabled user, a revocation (`budgetbridge token revoke`) or a changed permission takes effect at
once, whatever the token says; domain.access decides."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app import api_tokens
from domain import access
from domain.access import AccessRefusal
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
GENERIC_MESSAGE = "authentication required: send Authorization: Bearer <token>"
# The one thing a refused caller learns about the account, so a person knows to ask an administrator.
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


@dataclasses.dataclass(frozen=True)
class TokenClaims:
    """What a valid token of ours says: whose it is, when it was issued and when it expires (whole seconds
    since the epoch)."""

    user_id: str
    issued_at: int
    expires_at: int


def _seconds(value: object) -> int | None:
    """A NumericDate claim as whole seconds (None: not a number)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_token(secret: str, token: str, max_seconds: int, now: datetime | None = None) -> TokenClaims | None:
    """The claims of a correctly signed, unexpired token of ours that lives no longer than `max_seconds`;
    None for anything else."""
    try:
        # Expiry is checked below against our clock (the one the server runs on, injectable), not PyJWT's.
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"], "verify_exp": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return None
    subject, issued_at, expires_at = claims.get("sub"), _seconds(claims.get("iat")), _seconds(claims.get("exp"))
    if not isinstance(subject, str) or issued_at is None or expires_at is None:
        return None
    current = access.whole_seconds(now or utc_now())
    if expires_at <= current or access.lives_too_long(issued_at, expires_at, current, max_seconds):
        return None
    return TokenClaims(user_id=subject, issued_at=issued_at, expires_at=expires_at)


def account_access(user: UserRecord) -> access.AccountAccess:
    return access.AccountAccess(disabled_at=user.disabled_at, tokens_valid_after=user.tokens_valid_after)


class AuthenticationError(Exception):
    """The bearer token opens nothing; the message says why where that helps the caller (a disabled account,
    a revoked API token, an unknown person at an identity provider) and is generic otherwise."""

    def __init__(self, message: str = GENERIC_MESSAGE, refusal: AccessRefusal | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.refusal = refusal


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


async def account_viewer(reads: ReadStore, user_id: str, now: datetime, issued_at: int | None) -> Viewer:
    """The viewer of the account a credential names, read afresh, or AuthenticationError when the account no
    longer opens: deleted, disabled, its tokens revoked since `issued_at` (None: a credential without an issue
    time, an API token, which is revoked on its own), or the principal of an API token revoked or expired."""
    found = await reads.viewer_rows(user_id)
    if found is None:
        raise AuthenticationError(refusal=AccessRefusal.NO_SUCH_USER)
    user, company, token = found
    if token is not None and not api_tokens.is_usable(token, now):
        raise AuthenticationError()
    account = account_access(user)
    refusal = (
        access.token_refusal(account, issued_at)
        if issued_at is not None
        else (AccessRefusal.DISABLED if account.disabled else None)
    )
    if refusal is AccessRefusal.DISABLED:
        raise AuthenticationError(DISABLED_MESSAGE, refusal)
    if refusal is not None:  # a revoked token or a deleted user reads like any invalid token
        raise AuthenticationError(refusal=refusal)
    return viewer_of(user, company, token)


class Authenticator:
    """Turns a bearer token of any kind into the viewer, or refuses it (AuthenticationError). A live WebSocket
    calls `authenticate` again with its token at each re-read, so the same checks end it."""

    def __init__(
        self,
        secret: str,
        reads: ReadStore,
        max_token_seconds: int,
        uses: api_tokens.UseRecorder | None = None,
        oidc: OidcVerifier | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.secret = secret
        self.reads = reads
        self.max_token_seconds = max_token_seconds
        self.uses = uses
        self.oidc = oidc
        self.clock = clock

    async def authenticate(self, token: str) -> Viewer:
        if api_tokens.looks_like_api_token(token):
            return await self._api_token(token)
        if self.oidc is not None and self.oidc.is_for_issuer_token(token):
            return await self.oidc.viewer(token, self.reads)
        now = self.clock()
        claims = read_token(self.secret, token, self.max_token_seconds, now)
        if claims is None:
            raise AuthenticationError()
        viewer = await account_viewer(self.reads, claims.user_id, now, claims.issued_at)
        return dataclasses.replace(viewer, credential_expires_at=datetime.fromtimestamp(claims.expires_at, UTC))

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
        if user.disabled_at is not None:
            raise AuthenticationError(DISABLED_MESSAGE, AccessRefusal.DISABLED)
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
