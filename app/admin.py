"""Administrative operations behind the CLI (companies, users, grants, projects, retries): outside GraphQL
because they create the very users and permissions GraphQL authenticates. They write through the unit of
work's repositories; where GraphQL has the same operation (a project, a retry) they run its resolver code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app import auth
from app.settings import Settings
from domain import access
from domain.errors import DomainError, DomainErrors
from domain.permissions import Actor, Grant, PermissionLevel, ProjectAccess, decide_refusal
from erp import embedded
from erp.base import ConnectorConfigError
from erp.registry import ConnectorRegistry, UnknownConnectorError, validate_options
from persistence import revisions
from persistence.database import Database, SqlUnitOfWork
from persistence.ids import new_id
from persistence.migrate import migrate
from persistence.records import CompanyRecord, UserRecord
from persistence.tables import users
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers import company_setup, erp_requests
from resolvers.context import Context, Services, utc_now
from resolvers.service import refusals, run_unit

# The CLI flag of each input field the shared resolver code names in its refusals.
FLAGS = {"name": "--name", "number": "--number", "erpJobId": "--erp-job-id", "erpRequestId": "--request"}


class AdminError(ValueError):
    """A refusal, shown as one line; `code` is the API's error code when the refusal is the API's own."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def refused(errors: list[DomainError]) -> AdminError:
    """The resolvers' refusals as one CLI line: `--flag: message`, the first one's code."""
    parts = []
    for error in errors:
        flag = FLAGS.get(error.field[-1], "") if error.field else ""
        parts.append(f"{flag}: {error.message}" if flag else error.message)
    return AdminError("; ".join(parts), errors[0].code.value)


@asynccontextmanager
async def admin_services(settings: Settings) -> AsyncIterator[Services]:
    """The services a command runs the service layer with (an SQLite database is migrated first)."""
    db = Database(settings.database_url)
    try:
        if db.is_sqlite:
            await migrate(db)
        services = Services(db=db, connectors=ConnectorRegistry(db))
        try:
            yield services
        finally:
            await services.connectors.aclose()
    finally:
        await db.dispose()


async def create_company(uow: AbstractUnitOfWork, name: str, currency: str, connector: str | None) -> str:
    name = name.strip()
    currency = currency.strip().upper()
    if not name:
        raise AdminError("--name must not be empty")
    if len(currency) != 3 or not currency.isalpha():
        raise AdminError("--currency must be a three-letter ISO 4217 code such as USD")
    company_id = new_id("Company")
    await uow.companies.add(
        CompanyRecord(
            id=company_id,
            name=name,
            currency=currency,
            erp_connector=connector,
            erp_settings={},
            event_sequence=0,
            created_at=datetime.now(UTC),
        )
    )
    return company_id


async def set_company_connector(
    uow: AbstractUnitOfWork, company_id: str, connector: str | None, options: dict[str, Any] | None = None
) -> None:
    """Connect a company to an ERP (or disconnect it with None). The options are checked by building the
    connector once, so an unknown option, a bad drop folder or URL is refused here rather than at the first
    export."""
    options = dict(options or {})
    if connector is not None:
        try:
            await validate_options(connector, options)
        except (ConnectorConfigError, UnknownConnectorError) as exc:
            raise AdminError(str(exc)) from None
    if await uow.companies.get(company_id) is None:
        raise AdminError(f"no company {company_id}")
    await uow.companies.set_erp(company_id, connector, options)


async def create_user(
    uow: AbstractUnitOfWork,
    company_id: str,
    email: str,
    name: str,
    *,
    company_admin: bool = False,
    approver: bool = False,
    erp_permission: PermissionLevel = PermissionLevel.NONE,
) -> str:
    if await uow.companies.get(company_id) is None:
        raise AdminError(f"no company {company_id}")
    email = email.strip().lower()
    if "@" not in email:
        raise AdminError("--email must be an email address")
    if await uow.users.email_taken(company_id, email):
        raise AdminError(f"{email} already exists in this company")
    user_id = new_id("User")
    await uow.users.add(
        UserRecord(
            id=user_id,
            company_id=company_id,
            email=email,
            name=name.strip() or email,
            is_company_admin=company_admin,
            is_accounting_approver=approver,
            erp_permission=erp_permission.name,
            created_at=datetime.now(UTC),
        )
    )
    return user_id


def approver_warning(approver: bool, erp_permission: PermissionLevel) -> str | None:
    """Why an accounting approver made with these rights could not decide exports (the domain's own rule),
    or None."""
    if not approver:
        return None
    refusal = decide_refusal(Actor("", "", is_accounting_approver=True, erp_permission=erp_permission))
    if refusal is None:
        return None
    return (
        f"this approver cannot decide exports until given ERP Integrations STANDARD or ADMIN "
        f"(--erp-permission); with {erp_permission.name} every decision is refused with FORBIDDEN"
    )


async def grant(
    uow: AbstractUnitOfWork, user_id: str, project_id: str, level: PermissionLevel, grants: list[Grant]
) -> None:
    """Set the user's Budget tool permission on the project, replacing the one they had."""
    user = await uow.users.get(user_id)
    if user is None:
        raise AdminError(f"no user {user_id}")
    if await uow.projects.get(user.company_id, project_id) is None:
        raise AdminError(f"no project {project_id} in the user's company")
    await uow.access.revoke(user_id, project_id)
    await uow.access.grant(user_id, project_id, ProjectAccess(level, frozenset(grants)))


async def _user_access(conn: AsyncConnection, user_id: str) -> Any:
    """The user's company and what decides whether their tokens work, locked for this transaction where the
    engine can (so a disable and a revocation of one user never interleave)."""
    stmt = select(users.c.company_id, users.c.disabled_at, users.c.tokens_valid_after).where(users.c.id == user_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise AdminError(f"no user {user_id}")
    return row


async def set_user_disabled(conn: AsyncConnection, user_id: str, disabled: bool, now: datetime) -> datetime | None:
    """Disable a user (every token refused at once, no new ones issued) or enable them again (their tokens
    that were not revoked work again). Returns since when the user is disabled (None: enabled); disabling
    twice keeps the first time."""
    user = await _user_access(conn, user_id)
    disabled_at: datetime | None = (user.disabled_at or now) if disabled else None
    if disabled_at != user.disabled_at:
        await conn.execute(update(users).where(users.c.id == user_id).values(disabled_at=disabled_at))
        await revisions.bump(conn, user.company_id)  # who may read changed: no cached answer crosses it
    return disabled_at


async def revoke_tokens(conn: AsyncConnection, user_id: str, now: datetime) -> datetime:
    """Every token of the user issued before `now` stops working; returns the whole second from which tokens
    are valid (domain.access). A later revocation already recorded (a clock that went back) is kept."""
    user = await _user_access(conn, user_id)
    valid_after = access.tokens_valid_after_revocation(now)
    if user.tokens_valid_after is not None and user.tokens_valid_after > valid_after:
        valid_after = user.tokens_valid_after
    await conn.execute(update(users).where(users.c.id == user_id).values(tokens_valid_after=valid_after))
    await revisions.bump(conn, user.company_id)
    return valid_after


async def issue_user_token(
    conn: AsyncConnection,
    secret: str,
    user_id: str,
    expires_in: timedelta,
    *,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """A token for an enabled user. Within the second after a revocation it waits for the next whole second
    (domain.access), so the token it returns is never refused as revoked."""
    user = await _user_access(conn, user_id)
    if user.disabled_at is not None:
        raise AdminError(f"user {user_id} is disabled: `budgetbridge user enable --user {user_id}` first")
    now = clock()
    while (wait := access.seconds_until_issuable(now, user.tokens_valid_after)) > 0:
        await sleep(wait)
        now = clock()
    return auth.issue_token(secret, user_id, user.company_id, expires_in, now=now)


async def post_embedded_entries(uow: SqlUnitOfWork, request_id: str) -> int:
    """Post a request's entries in the embedded ledger, as an accountant posts in Job Cost. The worker's
    posting detection then moves the request to SYNCED. (The ledger lives in the same database, so this
    takes the SQL unit of work.)"""
    request = await uow.requests.get(None, request_id)
    company = await uow.companies.get(request.company_id) if request is not None else None
    if request is None or company is None:
        raise AdminError(f"no ERP request {request_id}")
    if company.erp_connector != "embedded":
        raise AdminError("only the embedded ERP keeps a ledger to post in; post in your ERP instead")
    posted = await embedded.post_batch(uow.connection, request.export_id)
    if posted == 0 and request.status != "AWAITING_POSTING":
        raise AdminError(f"the request is {request.status}: nothing exported to post")
    return posted


async def create_project(
    services: Services, company_id: str, number: str, name: str, erp_job_id: str | None
) -> str:
    """A project with its budget, refused as createProject refuses (no one is granted it: company admins
    see every project; `user grant` gives the others access)."""

    async def body(uow: AbstractUnitOfWork) -> str:
        if await uow.companies.get(company_id) is None:
            raise AdminError(f"no company {company_id}")
        return await company_setup.add_project(uow, company_id, name, number, erp_job_id, at=services.clock())

    try:
        return await run_unit(services, body)
    except (DomainError, DomainErrors) as exc:
        raise refused(refusals(exc)) from None


async def retry_export(services: Services, request_id: str, user_id: str) -> None:
    """retryExport as the user: the same checks (their permission, the request's status), the same event
    naming them, and the export queued again for the worker."""
    viewer = await auth.load_viewer(services.reads, user_id)
    if viewer is None:
        raise AdminError(f"no user {user_id}")
    outcome = await erp_requests.retry_export(Context(services=services, viewer_or_none=viewer), request_id, None)
    if outcome.errors:
        raise refused(outcome.errors)
