"""Test support: database selection, company factories, GraphQL execution and "nothing changed" snapshots."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app import admin, auth
from app.export_worker import ExportWorker
from domain.permissions import Grant, PermissionLevel
from erp.registry import ConnectorRegistry
from persistence import tables
from persistence.database import Database
from persistence.migrate import migrate
from resolvers.context import Context, Services
from schema.build import schema

JWT_SECRET = "test-secret-" + "x" * 40
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def suite_database_url() -> str:
    """BUDGETBRIDGE_TEST_DATABASE_URL picks the engine the whole suite runs on (CI runs it twice)."""
    url = os.environ.get("BUDGETBRIDGE_TEST_DATABASE_URL")
    if url:
        return url
    path = os.path.join(tempfile.mkdtemp(prefix="budgetbridge-test-"), "test.db")
    return f"sqlite+aiosqlite:///{path}"


def postgres_url() -> str:
    return os.environ.get("BUDGETBRIDGE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_server_url(database: str | None = None) -> URL:
    """The test PostgreSQL server's URL (asyncpg), on `database` when given."""
    url = make_url(postgres_url()).set(drivername="postgresql+asyncpg")
    return url if database is None else url.set(database=database)


async def on_maintenance_db(statement: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server's maintenance database, outside a transaction."""
    engine = create_async_engine(postgres_server_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def fresh_database(url: str) -> Database:
    """A migrated, empty database. PostgreSQL's public schema is dropped first: tests own that database."""
    db = Database(url)
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await migrate(db)
    return db


def make_services(db: Database) -> Services:
    return Services(db=db, connectors=ConnectorRegistry(db))


def make_worker(services: Services) -> ExportWorker:
    return ExportWorker(services, poll_seconds=0.05, timeout_seconds=5)


@dataclass
class Tenant:
    """A company with one user per role, a project and its budget, ready for the workflow."""

    services: Services
    company_id: str
    users: dict[str, str] = field(default_factory=dict)  # role -> user id
    project_id: str = ""
    budget_id: str = ""
    cost_codes: dict[str, str] = field(default_factory=dict)  # code -> id
    cost_types: dict[str, str] = field(default_factory=dict)

    def token(self, role: str) -> str:
        return auth.issue_token(JWT_SECRET, self.users[role], self.company_id)

    async def context(self, role: str | None) -> Context:
        if role is None:
            return Context(services=self.services, viewer_or_none=None)
        viewer = await auth.load_viewer(self.services.reads, self.users[role])
        return Context(services=self.services, viewer_or_none=viewer)

    async def execute(self, role: str | None, query: str, **variables: Any) -> Any:
        return await schema.execute(query, variable_values=variables, context_value=await self.context(role))

    async def ok(self, role: str | None, query: str, **variables: Any) -> dict[str, Any]:
        """Execute and insist on no top-level errors and no userErrors in any payload."""
        result = await self.execute(role, query, **variables)
        assert result.errors is None, result.errors
        data = result.data or {}
        for value in data.values():
            if isinstance(value, dict) and "userErrors" in value:
                assert value["userErrors"] == [], value["userErrors"]
        return data


ROLES: dict[str, dict[str, Any]] = {
    # role: (company admin, approver, erp permission, budget permission on the project, grants)
    "admin": {"company_admin": True, "budget": PermissionLevel.ADMIN},
    "standard": {"budget": PermissionLevel.STANDARD},
    "locker": {"budget": PermissionLevel.STANDARD, "grants": [Grant.LOCK_BUDGET]},
    "sender": {"budget": PermissionLevel.STANDARD, "grants": [Grant.SEND_AND_RETRIEVE]},
    "reader": {"budget": PermissionLevel.READ_ONLY},
    "outsider": {"budget": PermissionLevel.NONE},
    "approver": {"approver": True, "erp": PermissionLevel.STANDARD, "budget": PermissionLevel.READ_ONLY},
    "integrator": {"erp": PermissionLevel.ADMIN},
    "erp_reader": {"approver": True, "erp": PermissionLevel.READ_ONLY},
}


async def make_tenant(
    services: Services,
    *,
    connector: str | None = "embedded",
    codes: tuple[str, ...] = ("03-300", "05-120", "09-900"),
    types: tuple[str, ...] = ("L", "M", "S"),
) -> Tenant:
    db = services.db
    async with db.unit_of_work() as uow:
        company_id = await admin.create_company(uow, "Test Builders", "USD", connector)
        tenant = Tenant(services=services, company_id=company_id)
        for role, spec in ROLES.items():
            tenant.users[role] = await admin.create_user(
                uow,
                company_id,
                f"{role}@example.com",
                role.title(),
                company_admin=spec.get("company_admin", False),
                approver=spec.get("approver", False),
                erp_permission=spec.get("erp", PermissionLevel.NONE),
            )
        await uow.commit()
    data = await tenant.ok(
        "admin",
        "mutation($i: CreateProjectInput!) { createProject(input: $i) "
        "{ project { id budget { id } } userErrors { code } } }",
        i={"name": "Riverside MOB", "number": f"P-{company_id[-6:]}"},
    )
    tenant.project_id = data["createProject"]["project"]["id"]
    tenant.budget_id = data["createProject"]["project"]["budget"]["id"]
    for code in codes:
        d = await tenant.ok(
            "admin",
            "mutation($i: CreateCostCodeInput!) { createCostCode(input: $i) { costCode { id } userErrors { code } } }",
            i={"code": code, "description": f"Cost code {code}"},
        )
        tenant.cost_codes[code] = d["createCostCode"]["costCode"]["id"]
    for code in types:
        d = await tenant.ok(
            "admin",
            "mutation($i: CreateCostTypeInput!) { createCostType(input: $i) { costType { id } userErrors { code } } }",
            i={"code": code, "name": f"Type {code}"},
        )
        tenant.cost_types[code] = d["createCostType"]["costType"]["id"]
    async with db.unit_of_work() as uow:
        for role, spec in ROLES.items():
            if role != "admin":
                await admin.grant(
                    uow,
                    tenant.users[role],
                    tenant.project_id,
                    spec.get("budget", PermissionLevel.NONE),
                    spec.get("grants", []),
                )
        await uow.commit()
    return tenant


COMPANY_TABLES = [
    tables.companies,
    tables.users,
    tables.projects,
    tables.cost_codes,
    tables.cost_types,
    tables.budgets,
    tables.line_items,
    tables.modifications,
    tables.erp_requests,
    tables.events,
]


async def snapshot(db: Database, company_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the company owns, to prove a refused call changed nothing at all."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as conn:
        for table in COMPANY_TABLES:
            column = table.c.id if table is tables.companies else table.c.company_id
            rows = (await conn.execute(select(table).where(column == company_id))).all()
            result[table.name] = sorted((tuple(r) for r in rows), key=repr)
        budget_ids = select(tables.budgets.c.id).where(tables.budgets.c.company_id == company_id)
        for table in (tables.export_entries,):
            rows = (await conn.execute(select(table).where(table.c.budget_id.in_(budget_ids)))).all()
            result[table.name] = sorted((tuple(r) for r in rows), key=repr)
        user_ids = select(tables.users.c.id).where(tables.users.c.company_id == company_id)
        rows = (
            await conn.execute(select(tables.idempotency_keys).where(tables.idempotency_keys.c.user_id.in_(user_ids)))
        ).all()
        result["idempotency_keys"] = sorted((tuple(r) for r in rows), key=repr)
    return result


def now() -> datetime:
    return datetime.now(UTC)
