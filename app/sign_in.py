"""`GET /auth/config?company=ID` or `?email=name@domain`: public, tells the dashboard which OpenID Connect
issuer and client id to sign a person in with (Authorization Code + PKCE, in the browser; the server never
sees a password). By email, the domain is matched against the people of companies that have single sign-on;
nothing else about a company is revealed, and an unknown or ambiguous domain gets the same answer as a
company without single sign-on."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.oidc import DEFAULT_SCOPE
from persistence import sso
from persistence.sso import SsoConfigRecord

if TYPE_CHECKING:
    from app.main import Runtime

log = logging.getLogger("budgetbridge.sign_in")

DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z0-9-]{1,63}$")
NOT_CONFIGURED = (
    "single sign-on is not set up for this company: sign in with a token, or ask an admin to run "
    "`budgetbridge company set-sso ... --client-id ...`"
)


async def _answer(runtime: Runtime, config: SsoConfigRecord) -> JSONResponse:
    verifier = runtime.auth.oidc
    assert verifier is not None  # the app always builds one
    try:
        metadata = await verifier.keys.metadata(config.issuer)
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("discovery of %s failed: %s", config.issuer, exc)
        return JSONResponse({"error": "the company's identity provider cannot be reached just now: try again "
                                      "shortly"}, status_code=503, headers={"retry-after": "30"})
    return JSONResponse(
        {"companyId": config.company_id, "issuer": config.issuer, "clientId": config.client_id,
         "audience": config.audience, "scope": DEFAULT_SCOPE,
         "authorizationEndpoint": metadata.get("authorization_endpoint"),
         "tokenEndpoint": metadata.get("token_endpoint")},
        headers={"cache-control": "no-store"},
    )


async def connect_origins(runtime: Runtime) -> list[str]:
    """Origins the dashboard's page may fetch from besides its own (its Content-Security-Policy): the token
    endpoints of the issuers companies trust, as far as their discovery is known to this process. (The
    dashboard asks /auth/config before it leaves for the issuer, so the page it comes back to has them.)"""
    verifier = runtime.auth.oidc
    if verifier is None:
        return []
    async with runtime.db.read() as conn:
        issuers = await sso.trusted_issuers(conn)
    origins = set()
    for issuer in issuers:
        metadata = verifier.keys.known_metadata(issuer)
        endpoint = metadata.get("token_endpoint") if metadata else None
        if isinstance(endpoint, str):
            parts = urlsplit(endpoint)
            if parts.scheme in ("https", "http") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)


async def auth_config(request: Request) -> JSONResponse:
    company = request.query_params.get("company", "").strip()
    email = request.query_params.get("email", "").strip().lower()
    if not company and not email:
        return JSONResponse({"error": "give ?company=<company id> or ?email=<your email>"}, status_code=400)
    domain = email.rpartition("@")[2] if email else ""
    if email and ("@" not in email or len(domain) > 253 or not DOMAIN.match(domain)):
        return JSONResponse({"error": "email must be an address such as pat@example.com"}, status_code=400)
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.read() as conn:
        if company:
            found = await sso.config_of_company(conn, company[:100])
            configs = [found] if found is not None else []
        else:
            configs = await sso.configs_for_email_domain(conn, domain)
    usable = [c for c in configs if c.client_id]
    if len(usable) != 1:
        return JSONResponse({"error": NOT_CONFIGURED}, status_code=404)
    return await _answer(runtime, usable[0])
