"""People sign in with their company's OpenID Connect issuer (`budgetbridge company set-sso`).

An access token of that issuer (a JWT, RS256 or ES256) is checked with PyJWT against the issuer's published
keys: discovery (`/.well-known/openid-configuration`) and its JWKS are fetched with httpx (never blocking the
event loop), cached for BUDGETBRIDGE_OIDC_KEYS_CACHE_SECONDS, and fetched again when a token names a key id
the cache does not hold (a key rotation), at most once per BUDGETBRIDGE_OIDC_KEYS_REFETCH_SECONDS per issuer so
that forged key ids cannot make us hammer the issuer. Issuer, audience, expiry and not-before are checked,
the times with BUDGETBRIDGE_OIDC_CLOCK_SKEW_SECONDS of leeway.

Who the person is: the user an earlier sign-in linked to the token's `sub`, else the company's person whose
email equals the configured claim when `email_verified` is true (the link is then stored, so a later change
of email at the issuer keeps the same user). Nobody found: UNAUTHENTICATED with what an administrator can do,
or, with `--provision`, a new user without any permission.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from app.admin import AdminError
from app.auth import AuthenticationError, account_viewer
from domain.errors import ConcurrentChangeError
from persistence import api_tokens, sso
from persistence.database import Database
from persistence.reads import ReadStore
from persistence.sso import SsoConfigRecord
from resolvers.context import Viewer, utc_now

log = logging.getLogger("budgetbridge.oidc")

ALGORITHMS = ["RS256", "ES256"]
DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_SCOPE = "openid email offline_access"
MAX_DOCUMENT_BYTES = 512 * 1024
INVALID = "the sign-in token is not valid: sign in again"


class IssuerUnreachableError(AuthenticationError):
    def __init__(self) -> None:
        super().__init__("the company's identity provider cannot be reached just now: try again shortly")


def issuer_refusal(issuer: str) -> str | None:
    """Why an issuer URL cannot be trusted (None: it can): https, or http on this machine (tests, demos)."""
    parts = urlsplit(issuer)
    if not parts.hostname or parts.query or parts.fragment:
        return "--issuer must be the issuer's URL, e.g. https://login.example.com/realms/acme"
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
        return None
    return "--issuer must be an https URL (http only on 127.0.0.1 or localhost)"


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url, headers={"accept": "application/json"})
    if response.status_code != 200:
        raise ValueError(f"{url} answered HTTP {response.status_code}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = response.json()
    except ValueError:
        raise ValueError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's discovery document, which must name the issuer exactly (OpenID Connect Discovery 4.3)."""
    document = await _get_json(http, issuer.rstrip("/") + DISCOVERY_PATH)
    if document.get("issuer") != issuer:
        raise ValueError(f"the discovery document names issuer {document.get('issuer')!r}, not {issuer!r}")
    if not isinstance(document.get("jwks_uri"), str):
        raise ValueError("the discovery document has no jwks_uri")
    return document


@dataclass
class _IssuerKeys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IssuerKeys:
    """The signing keys each issuer publishes, cached; an unknown key id fetches them again, rate limited."""

    def __init__(
        self,
        cache_seconds: float = 600.0,
        refetch_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self.clock = clock
        self._http = http
        self._issuers: dict[str, _IssuerKeys] = {}
        self._documents: dict[str, tuple[dict[str, Any], float]] = {}
        self.fetches = 0  # how often the JWKS was fetched (tests read it)

    async def metadata(self, issuer: str, *, max_age: float | None = None) -> dict[str, Any]:
        """The issuer's discovery document, cached like the keys (raises ValueError or httpx.HTTPError)."""
        cached = self._documents.get(issuer)
        limit = self.cache_seconds if max_age is None else max_age
        if cached is not None and self.clock() - cached[1] < limit:
            return cached[0]
        document = await discover(self._client(), issuer)
        self._documents[issuer] = (document, self.clock())
        return document

    def known_metadata(self, issuer: str) -> dict[str, Any] | None:
        """The discovery document if cached (never fetches)."""
        cached = self._documents.get(issuer)
        return cached[0] if cached is not None else None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def key(self, issuer: str, kid: str | None) -> jwt.PyJWK:
        entry = self._issuers.setdefault(issuer, _IssuerKeys())
        if self.clock() - entry.fetched_at >= self.cache_seconds:
            await self._refresh(issuer, entry, min_age=self.cache_seconds)
        found = self._find(entry, kid)
        if found is None:
            # Perhaps the issuer rotated its keys: fetch again, unless we did so very recently.
            await self._refresh(issuer, entry, min_age=self.refetch_seconds)
            found = self._find(entry, kid)
        if found is None:
            raise AuthenticationError(INVALID)
        return found

    @staticmethod
    def _find(entry: _IssuerKeys, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return entry.keys.get(kid)
        return next(iter(entry.keys.values())) if len(entry.keys) == 1 else None

    async def _refresh(self, issuer: str, entry: _IssuerKeys, *, min_age: float) -> None:
        async with entry.lock:  # concurrent requests wait for one fetch
            if self.clock() - entry.fetched_at < min_age:
                return  # fetched meanwhile (or too recently to fetch again)
            try:
                document = await self.metadata(issuer, max_age=min_age)
                jwks = await _get_json(self._client(), document["jwks_uri"])
                keys = {}
                for data in jwks.get("keys", []):
                    if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                        continue
                    try:
                        key = jwt.PyJWK(data)
                    except jwt.PyJWTError:
                        continue  # a key type or algorithm we do not use
                    keys[str(data.get("kid", ""))] = key
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot fetch the signing keys of %s: %s", issuer, exc)
                entry.fetched_at = self.clock()  # the rate limit applies to failures too
                if not entry.keys:
                    raise IssuerUnreachableError() from None
                return  # keep the keys we have
            self.fetches += 1
            entry.keys, entry.fetched_at = keys, self.clock()


def looks_like_issuer_token(token: str) -> bool:
    """An asymmetrically signed JWT (ours are HS256)."""
    try:
        return jwt.get_unverified_header(token).get("alg") in ALGORITHMS
    except jwt.PyJWTError:
        return False


class OidcVerifier:
    def __init__(
        self,
        db: Database,
        keys: IssuerKeys,
        clock: Callable[[], datetime] = utc_now,
        skew: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.keys = keys
        self.clock = clock
        self.skew = skew

    def is_for_issuer_token(self, token: str) -> bool:
        return looks_like_issuer_token(token)

    async def viewer(self, token: str, reads: ReadStore) -> Viewer:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError(INVALID) from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            raise AuthenticationError(INVALID)
        async with self.db.read() as conn:
            configs = await sso.configs_for_issuer(conn, issuer)
        if not configs:
            raise AuthenticationError(
                "no company here trusts this token's issuer: a company admin connects it with "
                "`budgetbridge company set-sso`"
            )
        key = await self.keys.key(issuer, header.get("kid"))
        if key.algorithm_name != header.get("alg"):
            raise AuthenticationError(INVALID)
        claims = self._verified(token, key, issuer, [c.audience for c in configs])
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        matching = [c for c in configs if c.audience in audiences]
        if len(matching) != 1:
            raise AuthenticationError(INVALID)
        user_id = await self._user_for(matching[0], claims)
        issued_at = claims.get("iat")
        viewer = await account_viewer(  # disabled or revoked (`token revoke`) people too
            reads, user_id, self.clock(), int(issued_at) if isinstance(issued_at, int | float) else None
        )
        if viewer.actor.scope is not None:
            raise AuthenticationError(INVALID)
        # The skew allowed at sign-in applies to the end of a live connection too.
        return dataclasses.replace(
            viewer, credential_expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC) + self.skew
        )

    def _verified(self, token: str, key: jwt.PyJWK, issuer: str, audiences: list[str]) -> dict[str, Any]:
        try:
            # Times are checked below against our own clock (with the skew); PyJWT checks the signature,
            # the algorithm, the issuer and the audience.
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=audiences, issuer=issuer,
                options={"require": ["iss", "aud", "exp", "sub"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            raise AuthenticationError(
                "the sign-in token is meant for another application (its audience is not this API's): "
                "check the audience given to `budgetbridge company set-sso`"
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationError(INVALID) from None
        now = self.clock().timestamp()
        leeway = self.skew.total_seconds()
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if not isinstance(expires, int | float) or now > expires + leeway:
            raise AuthenticationError("the sign-in token has expired: sign in again")
        if not_before is not None and (not isinstance(not_before, int | float) or now < not_before - leeway):
            raise AuthenticationError(INVALID)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthenticationError(INVALID)
        return claims

    async def _user_for(self, config: SsoConfigRecord, claims: dict[str, Any]) -> str:
        issuer, subject = config.issuer, str(claims["sub"])
        async with self.db.read() as conn:
            linked = await sso.linked_user(conn, issuer, subject, config.company_id)
        if linked is not None:
            return linked
        email = claims.get(config.email_claim)
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is not True:
            raise AuthenticationError(
                f"the sign-in token carries no verified email (claim {config.email_claim!r} with "
                "email_verified true), so it cannot be matched to a user: ask your identity provider's "
                "administrator to release it"
            )
        try:
            async with self.db.unit_of_work() as uow:
                user_id = await self._person(uow.connection, config, email, claims)
                await sso.link(uow.connection, issuer, subject, user_id, self.clock())
                await uow.commit()
        except ConcurrentChangeError:
            # A parallel first sign-in of the same person linked them (or provisioned the same email).
            async with self.db.read() as conn:
                linked = await sso.linked_user(conn, issuer, subject, config.company_id)
            if linked is None:
                raise AuthenticationError(INVALID) from None
            return linked
        return user_id

    async def _person(self, conn: AsyncConnection, config: SsoConfigRecord, email: str, claims: dict[str, Any]) -> str:
        found = await sso.person_by_email(conn, config.company_id, email)
        if found is not None:
            return found
        if config.provision:
            name = claims.get("name")
            return await sso.provision_person(conn, config.company_id, email,
                                              name if isinstance(name, str) else email, self.clock())
        raise AuthenticationError(
            f"{email} is not a user of this company yet: a company admin adds them with `budgetbridge user "
            f"create --company {config.company_id} --email {email} --name ...` (or turns on `--provision` in "
            "`budgetbridge company set-sso`)"
        )


async def set_sso(
    conn: AsyncConnection, company_id: str, issuer: str, audience: str, *, email_claim: str = "email",
    provision: bool = False, client_id: str | None = None, now: datetime | None = None,
) -> SsoConfigRecord:
    """Trust an issuer for a company's people (the CLI checked that the issuer answers discovery)."""
    issuer = issuer.strip()
    refusal = issuer_refusal(issuer)
    if refusal is not None:
        raise AdminError(refusal)
    if not audience.strip() or not email_claim.strip():
        raise AdminError("--audience and --claim must not be empty")
    if not await api_tokens.company_exists(conn, company_id):
        raise AdminError(f"no company {company_id}")
    config = SsoConfigRecord(
        company_id=company_id, issuer=issuer, audience=audience.strip(), email_claim=email_claim.strip(),
        provision=provision, client_id=(client_id or "").strip() or None, updated_at=now or datetime.now(UTC),
    )
    await sso.set_config(conn, config)
    return config
