"""Over HTTP, every read of one GraphQL request (authentication included) takes one pooled connection, and
gives it back before the response is sent, when the request fails too."""

from __future__ import annotations

from contextvars import ContextVar

import httpx

from tests.database_use import database_use
from tests.e2e.conftest import RunningApp, post_graphql
from tests.erp.workflow import add_line
from tests.support import Tenant

NESTED = """query { projects(first: 5) { totalCount edges { node { budget { lineItemCount
  lineItems(first: 10) { totalCount edges { node { id erpSynced costCode { code } } } }
  modifications { id } erpRequests { id } } } } } }"""

# Set around the test's own request: the app's background work (export worker, relay) has its own connections.
_OURS: ContextVar[bool] = ContextVar("ours", default=False)




async def request(client: httpx.AsyncClient, token: str, query: str) -> httpx.Response:
    token_of_ours = _OURS.set(True)
    try:
        return await post_graphql(client, token, query, {})
    finally:
        _OURS.reset(token_of_ours)


async def test_a_request_reads_on_one_connection_and_gives_it_back(
    running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for sub_job in ("A", "B"):
        await add_line(tenant, "03-300", "L", "10.00", sub_job)
    with database_use(running_app.runtime.services.db, counted=_OURS.get) as use:
        response = await request(client, tenant.token("admin"), NESTED)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    assert response.json()["data"]["projects"]["totalCount"] == 1
    assert (use.checkouts, use.checkins) == (1, 1)


async def test_a_failing_request_gives_its_connection_back(
    running_app: RunningApp, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    with database_use(running_app.runtime.services.db, counted=_OURS.get) as use:
        response = await request(client, tenant.token("admin"), "query { node(id: \"li_nope\") { id } nope }")
    assert response.status_code == 200 and response.json()["errors"]
    assert use.checkouts == use.checkins == 1  # the token was checked; validation refused the document
