"""The raw floor the benches compare BudgetBridge with: Starlette + asyncpg + orjson, no ORM, no GraphQL.

Each route does what the floor of the same API must do: check the bearer token (the same HS256 JWT as the
app), scope every statement to the token's company and the viewer's rights, and answer the same JSON as
BudgetBridge for the same request (nested_reads.py checks it byte for byte before timing):

  POST /nested        {"first": N}: every visible project's budget with its first N lines (cost code/type),
                      the shape of nested_reads.QUERY, in one statement (a LATERAL page per budget).
  POST /update-line   {"id": ..., "originalAmount": "..."}: updateBudgetLineItem's writes in one transaction
                      (the line, the budget's version, the company's event sequence, the event).
  POST /lock, /unlock {"budgetId": ...}: lockBudget / unlockBudget's writes likewise.

Served with `uvicorn bench.floor:create_floor_app --factory` (the benches start it, with the database URL and
JWT secret in BUDGETBRIDGE_DATABASE_URL / BUDGETBRIDGE_JWT_SECRET), or in process (`create_floor_app`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import jwt
import orjson
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ISSUER = "budgetbridge"  # app.auth's issuer: the floor accepts exactly the app's tokens

# The viewer sees every project of the company (admin, ERP user) or those they hold a Budget permission on:
# domain.permissions.can_view_project.
NESTED = """
WITH viewer AS (
  SELECT u.id, (u.is_company_admin OR u.erp_permission <> 'NONE') AS sees_all
  FROM users u WHERE u.id = $1 AND u.company_id = $2
)
SELECT p.id AS project_id, l.id, l.original_amount, l.modifications_amount, l.sub_job, l.description,
       cc.code AS cost_code, ct.code AS cost_type, l.synced
FROM viewer v
JOIN projects p ON p.company_id = $2 AND (v.sees_all OR EXISTS (
  SELECT 1 FROM project_permissions pp
  WHERE pp.user_id = v.id AND pp.project_id = p.id AND pp.budget_permission <> 'NONE'))
JOIN budgets b ON b.project_id = p.id
LEFT JOIN LATERAL (
  SELECT li.*,
         -- erpSynced: exported in a live request, and every live request carrying the line synced. The domain
         -- also compares the line with what was exported (domain.export.line_synced); the byte-for-byte
         -- check before timing shows both agree on the bench's data.
         EXISTS (SELECT 1 FROM export_entries e JOIN erp_requests r ON r.id = e.request_id
                 WHERE e.line_item_id = li.id AND r.status NOT IN ('REJECTED', 'RETRIEVED'))
         AND NOT EXISTS (SELECT 1 FROM export_entries e JOIN erp_requests r ON r.id = e.request_id
                         WHERE e.line_item_id = li.id AND r.status NOT IN ('SYNCED', 'REJECTED', 'RETRIEVED'))
         AS synced
  FROM budget_line_items li WHERE li.budget_id = b.id ORDER BY li.position, li.id LIMIT $3
) l ON true
JOIN cost_codes cc ON cc.id = l.cost_code_id
JOIN cost_types ct ON ct.id = l.cost_type_id
ORDER BY p.created_at, p.id, l.position, l.id
"""
# Projects without lines still answer an empty page: listed on their own (the LATERAL join above drops them).
PROJECTS = """
SELECT p.id FROM users u
JOIN projects p ON p.company_id = u.company_id AND ((u.is_company_admin OR u.erp_permission <> 'NONE') OR EXISTS (
  SELECT 1 FROM project_permissions pp
  WHERE pp.user_id = u.id AND pp.project_id = p.id AND pp.budget_permission <> 'NONE'))
WHERE u.id = $1 AND u.company_id = $2
ORDER BY p.created_at, p.id
"""

# A change of one line: allowed for Standard or Admin on the budget's project (or a company admin), on an
# unlocked budget with no export in progress; refused rows change nothing (no row comes back).
UPDATE_LINE = """
UPDATE budget_line_items li SET original_amount = $4
FROM budgets b, users u
WHERE li.id = $3 AND li.company_id = $2 AND b.id = li.budget_id AND NOT b.locked
  AND b.export_status NOT IN ('PENDING_ACCEPTANCE', 'EXPORTING', 'AWAITING_POSTING')
  AND u.id = $1 AND u.company_id = $2
  AND (u.is_company_admin OR EXISTS (SELECT 1 FROM project_permissions pp WHERE pp.user_id = u.id
       AND pp.project_id = b.project_id AND pp.budget_permission IN ('STANDARD', 'ADMIN')))
RETURNING li.id, li.original_amount, b.id AS budget_id, b.project_id, b.export_status
"""
# Lock: Admin on the project or the Lock Budget grant (or a company admin); unlock: Admin, and no export in
# progress or awaiting posting (domain.budget.lock_blockers / unlock_blockers).
LOCKING = """
UPDATE budgets b SET locked = $4, locked_at = $5, locked_by_id = $6, version = b.version + 1
FROM users u
WHERE b.id = $3 AND b.company_id = $2 AND b.locked <> $4 AND u.id = $1 AND u.company_id = $2
  AND ($4 OR b.export_status NOT IN ('PENDING_ACCEPTANCE', 'EXPORTING', 'AWAITING_POSTING'))
  AND (u.is_company_admin OR EXISTS (SELECT 1 FROM project_permissions pp WHERE pp.user_id = u.id
       AND pp.project_id = b.project_id AND (pp.budget_permission = 'ADMIN'
       OR ($4 AND pp.grants::jsonb ? 'LOCK_BUDGET'))))
RETURNING b.id, b.project_id, b.export_status
"""
BUMP_BUDGET = "UPDATE budgets SET version = version + 1 WHERE id = $1"
NEXT_SEQUENCE = "UPDATE companies SET event_sequence = event_sequence + 1 WHERE id = $1 RETURNING event_sequence"
APPEND_EVENT = """
INSERT INTO events (company_id, sequence, occurred_at, type, actor_id, project_id, budget_id, previous_status,
                    status, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
"""


def _amount(value: Decimal) -> str:
    return f"{value:f}"  # domain.money.format_decimal: the wire form


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json; charset=utf-8")


class Floor:
    def __init__(self, database_url: str, jwt_secret: str,
                 on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> None:
        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._secret = jwt_secret
        self._on_connect = on_connect
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=10, init=self._on_connect)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def _viewer(self, request: Request) -> tuple[str, str] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER,
                                options={"require": ["exp", "sub"]})
        except jwt.PyJWTError:
            return None
        return str(claims["sub"]), str(claims["company"])

    async def nested(self, request: Request) -> Response:
        viewer = self._viewer(request)
        if viewer is None:
            return _json({"errors": [{"message": "authentication required"}]}, 401)
        first = int(orjson.loads(await request.body()).get("first", 100))
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(NESTED, *viewer, first)
            projects = [r["id"] for r in await conn.fetch(PROJECTS, *viewer)]
        lines: dict[str, list[dict[str, Any]]] = {p: [] for p in projects}
        for r in rows:
            lines[r["project_id"]].append({"node": {
                "id": r["id"],
                "originalAmount": _amount(r["original_amount"]),
                "revisedAmount": _amount(r["original_amount"] + r["modifications_amount"]),
                "subJob": r["sub_job"] or None,
                "description": r["description"],
                "erpSynced": r["synced"],
                "costCode": {"code": r["cost_code"]},
                "costType": {"code": r["cost_type"]},
            }})
        edges = [{"node": {"budget": {"lineItems": {"edges": lines[p]}}}} for p in projects]
        return _json({"data": {"projects": {"edges": edges}}})

    async def _change(self, request: Request, name: str,
                      write: Callable[[asyncpg.Connection, tuple[str, str], dict[str, Any], datetime],
                                      Awaitable[tuple[dict[str, Any], str, str, str, str, dict[str, Any]] | None]],
                      ) -> Response:
        """One transaction: the change, the company's next event sequence, the event; the payload."""
        viewer = self._viewer(request)
        if viewer is None:
            return _json({"errors": [{"message": "authentication required"}]}, 401)
        body = orjson.loads(await request.body())
        now = datetime.now(UTC)
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            done = await write(conn, viewer, body, now)
            if done is None:
                return _json({"data": {name: {"userErrors": [{"code": "FORBIDDEN"}]}}})
            payload, event_type, project_id, budget_id, status, data = done
            sequence = await conn.fetchval(NEXT_SEQUENCE, viewer[1])
            await conn.execute(APPEND_EVENT, viewer[1], sequence, now, event_type, viewer[0], project_id, budget_id,
                               status, orjson.dumps(data).decode())
        return _json({"data": {name: {**payload, "userErrors": []}}})

    async def update_line(self, request: Request) -> Response:
        async def write(conn: asyncpg.Connection, viewer: tuple[str, str], body: dict[str, Any], _now: datetime
                        ) -> tuple[dict[str, Any], str, str, str, str, dict[str, Any]] | None:
            row = await conn.fetchrow(UPDATE_LINE, *viewer, body["id"], Decimal(body["originalAmount"]))
            if row is None:
                return None
            await conn.execute(BUMP_BUDGET, row["budget_id"])
            line = {"lineItem": {"id": row["id"], "originalAmount": _amount(row["original_amount"])}}
            return (line, "LineItemUpdated", row["project_id"], row["budget_id"], row["export_status"],
                    {"lineItemId": row["id"]})

        return await self._change(request, "updateBudgetLineItem", write)

    async def _locking(self, request: Request, lock: bool) -> Response:
        async def write(conn: asyncpg.Connection, viewer: tuple[str, str], body: dict[str, Any], now: datetime
                        ) -> tuple[dict[str, Any], str, str, str, str, dict[str, Any]] | None:
            row = await conn.fetchrow(LOCKING, *viewer, body["budgetId"], lock, now if lock else None,
                                      viewer[0] if lock else None)
            if row is None:
                return None
            return ({"budget": {"id": row["id"], "locked": lock}}, "BudgetLocked" if lock else "BudgetUnlocked",
                    row["project_id"], row["id"], row["export_status"], {})

        return await self._change(request, "lockBudget" if lock else "unlockBudget", write)

    async def lock(self, request: Request) -> Response:
        return await self._locking(request, True)

    async def unlock(self, request: Request) -> Response:
        return await self._locking(request, False)


def floor_app(floor: Floor) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await floor.start()
        try:
            yield
        finally:
            await floor.stop()

    return Starlette(routes=[
        Route("/nested", floor.nested, methods=["POST"]),
        Route("/update-line", floor.update_line, methods=["POST"]),
        Route("/lock", floor.lock, methods=["POST"]),
        Route("/unlock", floor.unlock, methods=["POST"]),
    ], lifespan=lifespan)


def create_floor_app() -> Starlette:
    """uvicorn's factory: the database and secret from the app's own environment variables."""
    return floor_app(Floor(os.environ["BUDGETBRIDGE_DATABASE_URL"], os.environ["BUDGETBRIDGE_JWT_SECRET"]))
