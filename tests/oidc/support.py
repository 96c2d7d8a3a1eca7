"""The real OpenID Connect provider of the sign-in tests (tests/oidc/provider.mjs on Node.js, npm's
`oidc-provider`), its signing keys, and a person's Authorization Code + PKCE sign-in through its login form
done with httpx (the browser test does the same in Chromium)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support import in_ci

PROVIDER_DIR = Path(__file__).parent
AUDIENCE = "https://api.budgetbridge.test"
CLIENT_ID = "budgetbridge-dashboard"
DEFAULT_REDIRECT = "http://127.0.0.1:9/callback"  # never called: the code is read from the redirect itself


def signing_key(alg: str = "RS256") -> dict[str, Any]:
    """A fresh private JWK (RS256 or ES256) with its own kid."""
    if alg == "ES256":
        jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return {**jwk, "alg": alg, "use": "sig", "kid": secrets.token_hex(8)}


async def _run(*args: str, cwd: Path, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*args, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, output.decode(errors="replace")


async def install_provider() -> Path:
    """npm-install oidc-provider into tests/oidc once (CI and local runs alike); fail under CI without Node."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if in_ci():
            pytest.fail("Node.js and npm are needed for the OpenID Connect tests (.ci/run installs them)")
        pytest.skip("Node.js and npm are needed for the OpenID Connect tests")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        code, output = await _run(npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                                  cwd=PROVIDER_DIR, timeout=300)
        if code != 0:
            pytest.fail(f"npm install of the OpenID Connect provider failed:\n{output[-2000:]}")
    return PROVIDER_DIR


@dataclass
class Provider:
    issuer: str
    keys: list[dict[str, Any]]
    port: int
    process: asyncio.subprocess.Process
    redirect_uris: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_provider(
    tmp_path: Path, keys: list[dict[str, Any]], *, port: int = 0, redirect_uris: list[str] | None = None,
    access_token_ttl: int = 300,
) -> AsyncIterator[Provider]:
    """Start the provider (on `port`, or any free one); stop it on leaving."""
    await install_provider()
    redirects = redirect_uris or [DEFAULT_REDIRECT]
    config = tmp_path / f"oidc-{secrets.token_hex(4)}.json"
    config.write_text(json.dumps({"port": port, "audience": AUDIENCE, "clientId": CLIENT_ID,
                                  "redirectUris": redirects, "keys": keys, "accessTokenTTL": access_token_ttl}))
    process = await asyncio.create_subprocess_exec(
        "node", "provider.mjs", str(config), cwd=PROVIDER_DIR, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            error = await process.stderr.read()
            raise AssertionError(f"the OpenID Connect provider did not start: {error.decode()[-2000:]}")
        issuer = json.loads(line)["issuer"]
        yield Provider(issuer=issuer, keys=keys, port=urlparse(issuer).port or 0, process=process,
                       redirect_uris=redirects)
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def sign_in(provider: Provider, login: str) -> dict[str, Any]:
    """A person's Authorization Code + PKCE sign-in through the provider's login and consent forms; returns
    the token response (access_token, refresh_token, id_token, expires_in)."""
    verifier, challenge = pkce_pair()
    redirect = provider.redirect_uris[0]
    query = urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect, "scope": "openid email",
        "code_challenge": challenge, "code_challenge_method": "S256", "state": secrets.token_hex(8),
    })
    async with httpx.AsyncClient(base_url=provider.issuer, timeout=10) as http:
        response = await http.get(f"/auth?{query}")
        for _ in range(10):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect):
                    code = parse_qs(urlparse(location).query)["code"][0]
                    break
                response = await http.get(location)
                continue
            assert response.status_code == 200, response.text
            action = urlparse(str(response.url)).path
            prompt = "login" if 'name="login"' in response.text else "consent"
            form = {"prompt": prompt, "login": login, "password": "any"} if prompt == "login" else {"prompt": prompt}
            response = await http.post(action, data=form)
        else:
            raise AssertionError("the sign-in did not come back to the redirect URI")
        token = await http.post("/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "client_id": CLIENT_ID,
            "code_verifier": verifier,
        })
        assert token.status_code == 200, token.text
        body: dict[str, Any] = token.json()
        return body
