"""The real `budgetbridge serve` with BUDGETBRIDGE_LOG_FORMAT=json: every line it writes is one JSON object,
its GraphQL access lines carry the request id a proxy sent, and the export worker running inside it shows
its jobs (they used to be hidden: only uvicorn's loggers were configured)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from persistence.database import Database
from tests.e2e.test_scale_out import serve_processes, server_env
from tests.erp.workflow import accept, add_line, lock_and_send
from tests.support import JWT_SECRET, make_services, make_tenant


async def test_serve_writes_json_lines_with_request_ids_and_the_workers_jobs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/serve.db"
    env = server_env(database_url=url, jwt_secret=JWT_SECRET, log_format="json", export_poll_seconds="0.1")
    async with serve_processes(env, tmp_path, 1) as (server,):  # it migrates the new database
        db = Database(url)
        services = make_services(db)
        try:
            tenant = await make_tenant(services)
            await add_line(tenant, "03-300", "L", "1200.00")
            request_id = await lock_and_send(tenant)
            await accept(tenant, request_id)  # commits in this process: the server's worker finds it by polling

            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(
                    server.http_url, json={"query": "query Me { viewer { id } }"},
                    headers={"authorization": f"Bearer {tenant.token('reader')}", "x-request-id": "proxy-42"},
                )
            assert response.headers["x-request-id"] == "proxy-42"
            assert server.drain is not None
            await server.drain.wait_for_line(f"export of {request_id} -> AWAITING_POSTING", timeout=30,
                                             what="the server's worker to export the request")
            await server.drain.wait_for_line('"request_id":"proxy-42"', timeout=10, what="the access line")
        finally:
            await services.connectors.aclose()
            await db.dispose()

    lines = [json.loads(line) for line in server.output().splitlines()]  # each line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    (access,) = [line for line in lines if line.get("request_id") == "proxy-42"]
    assert (access["operation"], access["outcome"], access["user_id"]) == ("Me", "ok", tenant.users["reader"])
    jobs = [line["message"].split(" in ")[0] for line in lines if line.get("erp_request_id") == request_id]
    assert jobs == [
        f"export of {request_id} started (attempt 1)", f"export of {request_id} -> AWAITING_POSTING (attempt 1)"
    ]
