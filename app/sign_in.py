"""`GET /auth/config?company=ID` or `?email=name@domain`: public, tells the dashboard which OpenID Connect
issuer and client id to sign a person in with (Authorization Code + PKCE, in the browser; the server never
sees a password). By email, the domain is matched against the people of companies that have single sign-on;
nothing else about a company is revealed, and an unknown or ambiguous domain gets the same answer as a
company without single sign-on."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.oidc import DEFAULT_SCOPE
from persistence import sso
from persistence.sso import SsoConfigRecord

DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z0-9-]{1,63}$")
NOT_CONFIGURED = (
    "single sign-on is not set up for this company: sign in with a token, or ask an admin to run "
    "`budgetbridge company set-sso ... --client-id ...`"
)


def _answer(config: SsoConfigRecord) -> JSONResponse:
    return JSONResponse(
        {"companyId": config.company_id, "issuer": config.issuer, "clientId": config.client_id,
         "audience": config.audience, "scope": DEFAULT_SCOPE},
        headers={"cache-control": "no-store"},
    )


async def auth_config(request: Request) -> JSONResponse:
    company = request.query_params.get("company", "").strip()
    email = request.query_params.get("email", "").strip().lower()
    if not company and not email:
        return JSONResponse({"error": "give ?company=<company id> or ?email=<your email>"}, status_code=400)
    domain = email.rpartition("@")[2] if email else ""
    if email and ("@" not in email or len(domain) > 253 or not DOMAIN.match(domain)):
        return JSONResponse({"error": "email must be an address such as pat@example.com"}, status_code=400)
    db = request.app.state.runtime.db
    async with db.read() as conn:
        if company:
            found = await sso.config_of_company(conn, company[:100])
            configs = [found] if found is not None else []
        else:
            configs = await sso.configs_for_email_domain(conn, domain)
    usable = [c for c in configs if c.client_id]
    if len(usable) != 1:
        return JSONResponse({"error": NOT_CONFIGURED}, status_code=404)
    return _answer(usable[0])
