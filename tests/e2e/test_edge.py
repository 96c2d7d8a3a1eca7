"""The request edge over HTTP: bounded bodies, authentication before parsing, rate limits, trusted
documents, GraphQL-over-HTTP media types, one log line per client error and error ids."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app import auth
from app.main import create_app
from app.settings import Settings, SettingsError
from app.trusted_documents import sha256_id
from persistence.database import Database
from resolvers import queries
from resolvers.context import Services
from tests.e2e.conftest import GENEROUS_RATE_LIMITS, LOCK, assert_no_leak, gql
from tests.support import JWT_SECRET, Tenant, make_tenant, snapshot

GR_JSON = "application/graphql-response+json"
VIEWER = "{ viewer { id } }"


@contextlib.asynccontextmanager
async def edge_client(db: Database, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, Any] = {**GENEROUS_RATE_LIMITS, **overrides}
    settings = Settings(database_url=db.url, jwt_secret=JWT_SECRET, run_export_worker=False, **values)
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_of(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


# --- bounded bodies -------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(db: Database, tenant: Tenant) -> None:
    async with edge_client(db, max_body_bytes=2048) as client:
        padding = "x" * 4096
        response = await client.post("/graphql", json={"query": VIEWER, "variables": {"p": padding}},
                                     headers=bearer(tenant.token("reader")))
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/json")
        assert code_of(response.json()) == ["PAYLOAD_TOO_LARGE"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while it streams in
            yield b'{"query": "{ viewer { id } }", "variables": {"p": "'
            for _ in range(100):
                yield b"y" * 1000
            yield b'"}}'

        streamed = await client.post("/graphql", content=chunks(), headers={
            **bearer(tenant.token("reader")), "content-type": "application/json"})
        assert streamed.status_code == 413
        assert code_of(streamed.json()) == ["PAYLOAD_TOO_LARGE"]
        anonymous = await client.post("/graphql", content=b"{" + b" " * 5000 + b"}",
                                      headers={"content-type": "application/json"})
        assert anonymous.status_code == 413

        fits = await client.post("/graphql", json={"query": VIEWER}, headers=bearer(tenant.token("reader")))
        assert fits.json() == {"data": {"viewer": {"id": tenant.users["reader"]}}}


# --- anonymous callers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name fields { name } } } }",
        '{ __type(name: "Budget") { fields { name } } }',
        "{ viewr { id } }",  # would be "Did you mean viewer?"
        "{ projects(frist: 1) { totalCount } }",
        "{ this is not graphql",
        "mutation { lockBudget(input: {}) { budget { id } } }",
    ],
)
async def test_anonymous_callers_learn_only_that_they_must_authenticate(
    client: httpx.AsyncClient, query: str
) -> None:
    for accept, status in (("application/json", 200), (GR_JSON, 401)):
        response = await client.post("/graphql", json={"query": query}, headers={"accept": accept})
        assert response.status_code == status
        assert response.headers["content-type"].startswith(accept)
        body = response.json()
        assert set(body) == {"errors"} and code_of(body) == ["UNAUTHENTICATED"], body
        assert "Did you mean" not in response.text and "Syntax" not in response.text
        assert "Budget" not in response.text and "viewer" not in response.text.replace("viewer {", "")
    get = await client.get("/graphql", params={"query": query})
    assert code_of(get.json()) == ["UNAUTHENTICATED"]


async def test_a_signed_in_caller_still_gets_suggestions_and_introspection(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = await gql(client, tenant.token("reader"), "{ viewr { id } }")
    assert "Did you mean" in body["errors"][0]["message"]
    body = await gql(client, tenant.token("reader"), '{ __type(name: "Budget") { name } }')
    assert body == {"data": {"__type": {"name": "Budget"}}}


# --- rate limits ----------------------------------------------------------------------------------------


async def test_failed_authentications_are_limited_per_client_address(db: Database, tenant: Tenant) -> None:
    async with edge_client(db, rate_limit_failed_auth="3/minute") as client:
        forged = auth.issue_token("another-secret-" + "y" * 40, tenant.users["admin"], tenant.company_id)
        for _ in range(3):
            response = await client.post("/graphql", json={"query": VIEWER}, headers=bearer(forged))
            assert code_of(response.json()) == ["UNAUTHENTICATED"]
        for headers in (bearer(forged), bearer(tenant.token("reader"))):  # a valid token waits too
            response = await client.post("/graphql", json={"query": VIEWER},
                                         headers={**headers, "accept": GR_JSON})
            assert response.status_code == 429
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert code_of(response.json()) == ["RATE_LIMITED"]
        # Anonymous requests without a token are refused cheaply and not counted (nor blocked).
        response = await client.post("/graphql", json={"query": VIEWER})
        assert code_of(response.json()) == ["UNAUTHENTICATED"]


async def test_operations_are_limited_per_user(db: Database, services: Services) -> None:
    tenant = await make_tenant(services)
    async with edge_client(db, rate_limit_operations="2/minute") as client:
        for _ in range(2):
            assert (await gql(client, tenant.token("reader"), VIEWER))["data"]
        before = await snapshot(db, tenant.company_id)
        response = await client.post("/graphql", json={"query": LOCK, "variables": {"i": {
            "budgetId": tenant.budget_id}}}, headers=bearer(tenant.token("reader")))
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        body = response.json()
        assert code_of(body) == ["RATE_LIMITED"] and body["errors"][0]["extensions"]["retryAfter"] >= 1
        assert await snapshot(db, tenant.company_id) == before
        # Another user of the same company is not affected.
        assert (await gql(client, tenant.token("admin"), VIEWER))["data"]


# --- trusted documents ----------------------------------------------------------------------------------


def manifest(tmp_path: Path, *documents: str) -> tuple[str, dict[str, str]]:
    ids = {document: sha256_id(document) for document in documents}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({ids[d]: d for d in documents}))
    return str(path), ids


async def test_require_mode_runs_only_trusted_documents(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    path, ids = manifest(tmp_path, VIEWER, "query Budget($id: ID!) { budget(id: $id) { id } }")
    token = tenant.token("reader")
    expected = {"data": {"viewer": {"id": tenant.users["reader"]}}}
    async with edge_client(db, trusted_documents=path, trusted_documents_mode="require") as client:
        by_id = await client.post("/graphql", json={"documentId": ids[VIEWER]}, headers=bearer(token))
        assert by_id.json() == expected
        prefixed = await client.post("/graphql", json={"documentId": f"sha256:{ids[VIEWER]}"}, headers=bearer(token))
        assert prefixed.json() == expected
        via_get = await client.get("/graphql", params={"documentId": ids[VIEWER]}, headers=bearer(token))
        assert via_get.json() == expected
        apq = await client.post("/graphql", json={"extensions": {"persistedQuery": {
            "version": 1, "sha256Hash": ids[VIEWER]}}}, headers=bearer(token))
        assert apq.json() == expected
        with_variables = await client.post("/graphql", json={
            "documentId": ids["query Budget($id: ID!) { budget(id: $id) { id } }"],
            "variables": {"id": tenant.budget_id}}, headers=bearer(token))
        assert with_variables.json() == {"data": {"budget": {"id": tenant.budget_id}}}
        same_text = await client.post("/graphql", json={"query": VIEWER}, headers=bearer(token))
        assert same_text.json() == expected

        arbitrary = await client.post("/graphql", json={"query": "{ viewer { id name } }"},
                                      headers={**bearer(token), "accept": GR_JSON})
        assert arbitrary.status_code == 400
        assert code_of(arbitrary.json()) == ["PERSISTED_QUERY_REQUIRED"]
        unknown = await client.post("/graphql", json={"documentId": "0" * 64}, headers=bearer(token))
        assert unknown.status_code == 200 and code_of(unknown.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_allow_mode_also_runs_arbitrary_documents(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    path, ids = manifest(tmp_path, VIEWER)
    async with edge_client(db, trusted_documents=path) as client:
        token = tenant.token("reader")
        assert (await client.post("/graphql", json={"documentId": ids[VIEWER]}, headers=bearer(token))).json()[
            "data"]
        assert (await gql(client, token, "{ viewer { name } }"))["data"]
        unknown = await client.post("/graphql", json={"documentId": "f" * 64}, headers=bearer(token))
        assert code_of(unknown.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_an_invalid_manifest_stops_the_start(db: Database, tmp_path: Path) -> None:
    path, _ = manifest(tmp_path, "{ viewer { nope } }")
    with pytest.raises(SettingsError, match="not valid"):
        create_app(Settings(database_url=db.url, jwt_secret=JWT_SECRET, trusted_documents=path))
    with pytest.raises(SettingsError, match="require needs"):
        Settings.from_env({"BUDGETBRIDGE_TRUSTED_DOCUMENTS_MODE": "require"})


# --- limits on what an operation asks for --------------------------------------------------------------


async def test_more_mutations_than_allowed_in_one_request_change_nothing(
    db: Database, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    fields = " ".join(
        f'm{i}: createCostCode(input: {{code: "X-{i}", description: "x"}}) {{ costCode {{ id }} }}'
        for i in range(11)
    )
    before = await snapshot(db, tenant.company_id)
    body = await gql(client, tenant.token("admin"), f"mutation {{ {fields} }}")
    assert code_of(body) == ["BAD_USER_INPUT"] and "at most 10 mutations" in body["errors"][0]["message"]
    assert "data" not in body
    assert await snapshot(db, tenant.company_id) == before


async def test_aliases_of_cost_codes_are_refused_before_execution(client: httpx.AsyncClient, tenant: Tenant) -> None:
    aliases = " ".join(f"a{i}: costCodes {{ id code }}" for i in range(200))
    body = await gql(client, tenant.token("reader"), f"{{ {aliases} }}")
    assert code_of(body) == ["BAD_USER_INPUT"] and "too many objects" in body["errors"][0]["message"]


# --- GraphQL-over-HTTP ----------------------------------------------------------------------------------


async def test_graphql_response_json_status_codes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**bearer(tenant.token("reader")), "accept": GR_JSON}

    async def post(payload: Any, **extra: str) -> httpx.Response:
        return await client.post("/graphql", json=payload, headers={**headers, **extra})

    ok = await post({"query": VIEWER})
    assert ok.status_code == 200 and ok.headers["content-type"] == f"{GR_JSON}; charset=utf-8"
    for bad in ({"query": "{ viewer { nope } }"}, {"query": "{"},
                {"query": "query($n: Int!) { projects(first: $n) { totalCount } }", "variables": {"n": "x"}}):
        response = await post(bad)
        assert response.status_code == 400, response.text
        assert "data" not in response.json()
        legacy = await client.post("/graphql", json=bad, headers=bearer(tenant.token("reader")))
        assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
    not_json = await client.post("/graphql", content=b"{not json", headers={**headers, "content-type":
                                                                          "application/json"})
    assert not_json.status_code == 400
    unsupported = await client.post("/graphql", content=b"query=x", headers={
        **headers, "content-type": "application/x-www-form-urlencoded"})
    assert unsupported.status_code == 415
    mutation_by_get = await client.get("/graphql", params={"query": "mutation { __typename }"}, headers=headers)
    assert mutation_by_get.status_code == 405 and mutation_by_get.headers["allow"] == "POST"
    refused = await client.post("/graphql", json={"query": VIEWER}, headers={**headers, "accept": "text/plain"})
    assert refused.status_code == 406
    # Execution errors keep 200 with `data`.
    partial = await post({"query": '{ viewer { id } budget(id: "x") { id } }'})
    assert partial.status_code == 200 and partial.json()["data"]["viewer"]


# --- logs -----------------------------------------------------------------------------------------------


async def test_client_errors_log_one_info_line_and_unexpected_ones_a_traceback_with_an_error_id(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="budgetbridge")
    await gql(client, tenant.token("reader"), "{ viewr { id } }")
    await gql(client, None, VIEWER)
    # The access log's lines: an export worker of the app may log its own (a job another test left queued)
    client_records = [r for r in caplog.records if r.name == "budgetbridge.access"]
    assert len(client_records) == 2, [r.getMessage() for r in client_records]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in client_records)
    assert not [r for r in caplog.records if r.exc_info is not None]

    caplog.clear()

    async def broken(ctx: Any) -> Any:
        raise RuntimeError("secret internals: SELECT * FROM users")

    monkeypatch.setattr(queries, "cost_codes", broken)
    response = await client.post("/graphql", json={"query": "{ costCodes { id } }"},
                                 headers=bearer(tenant.token("reader")))
    assert_no_leak(response.text)
    assert "secret internals" not in response.text
    (error,) = response.json()["errors"]
    assert error["message"] == "Unexpected error."
    error_id = error["extensions"]["errorId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert len(logged) == 1 and error_id in logged[0].getMessage()
    assert logged[0].levelno == logging.ERROR


async def test_an_outage_during_execution_is_503_service_unavailable_too(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(ctx: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    monkeypatch.setattr(queries, "cost_codes", unreachable)
    response = await client.post("/graphql", json={"query": "{ viewer { id } costCodes { id } }"},
                                 headers=bearer(tenant.token("reader")))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert code_of(response.json()) == ["SERVICE_UNAVAILABLE"]
    assert "5432" not in response.text


async def test_rate_limits_in_redis_are_shared_between_processes(db: Database, services: Services) -> None:
    from tests.e2e.test_scale_out import REDIS_URL, host_port, redis_alive
    from tests.support import in_ci

    if not await redis_alive(*host_port(REDIS_URL)):
        if in_ci():
            pytest.fail(f"Redis is needed at {REDIS_URL}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    tenant = await make_tenant(services)  # a new user: its counter starts at zero, in any shared Redis
    shared = {"rate_limit_storage": REDIS_URL, "rate_limit_operations": "3/minute"}
    async with edge_client(db, **shared) as first, edge_client(db, **shared) as second:
        token = tenant.token("reader")
        assert (await gql(first, token, VIEWER))["data"]
        assert (await gql(second, token, VIEWER))["data"]
        assert (await gql(first, token, VIEWER))["data"]
        response = await second.post("/graphql", json={"query": VIEWER}, headers=bearer(token))
        assert response.status_code == 429 and code_of(response.json()) == ["RATE_LIMITED"]


async def test_rate_limits_close_their_redis_connections_at_shutdown() -> None:
    """limits has no close of its own: RateLimits.aclose closes the redis-py pool its storage holds, so no
    connection is left to the garbage collector (whose ResourceWarning once failed an unrelated test)."""
    from app.rate_limits import RateLimits, storage_url
    from tests.e2e.test_scale_out import REDIS_URL, host_port, redis_alive
    from tests.support import in_ci

    if not await redis_alive(*host_port(REDIS_URL)):
        if in_ci():
            pytest.fail(f"Redis is needed at {REDIS_URL}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    limits = RateLimits(storage_url(REDIS_URL, "memory://"), "5/minute", "5/minute", namespace="aclose-test")
    assert await limits.operation("someone") is None  # a round trip: the pool now holds a connection
    pool = limits.storage.bridge.storage.connection_pool  # type: ignore[union-attr]
    held = [*pool._available_connections, *pool._in_use_connections]
    assert held and any(connection.is_connected for connection in held)
    await limits.aclose()
    assert not any(connection.is_connected for connection in held)


async def test_rate_limits_in_memory_close_as_a_no_op() -> None:
    from app.rate_limits import RateLimits, storage_url

    limits = RateLimits(storage_url("", "memory://"), "5/minute", "1/minute")
    assert await limits.operation("someone") is None
    await limits.aclose()
    assert await limits.operation("someone") is not None  # still counting: nothing was torn down
