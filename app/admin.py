"""Administrative operations behind the CLI (companies, users, grants): outside GraphQL because they
create the very users and permissions GraphQL authenticates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app import auth
from domain import access
from domain.permissions import Grant, PermissionLevel
from erp.base import ConnectorConfigError
from erp.embedded import EmbeddedConnector
from erp.registry import UnknownConnectorError, validate_options
from persistence.ids import new_id
from persistence.tables import companies, erp_job_cost_entries, erp_requests, project_permissions, projects, users
from resolvers.context import utc_now


class AdminError(ValueError):
    pass


async def create_company(conn: AsyncConnection, name: str, currency: str, connector: str | None) -> str:
    name = name.strip()
    currency = currency.strip().upper()
    if not name:
        raise AdminError("--name must not be empty")
    if len(currency) != 3 or not currency.isalpha():
        raise AdminError("--currency must be a three-letter ISO 4217 code such as USD")
    company_id = new_id("Company")
    await conn.execute(
        insert(companies).values(
            id=company_id,
            name=name,
            currency=currency,
            erp_connector=connector,
            erp_settings={},
            created_at=datetime.now(UTC),
        )
    )
    return company_id


async def set_company_connector(
    conn: AsyncConnection, company_id: str, connector: str | None, options: dict[str, Any] | None = None
) -> None:
    """Connect a company to an ERP (or disconnect it with None). The options are checked by building the
    connector once, so a bad drop folder or URL is refused here rather than at the first export."""
    options = dict(options or {})
    if connector is not None:
        try:
            await validate_options(connector, options)
        except (ConnectorConfigError, UnknownConnectorError) as exc:
            raise AdminError(str(exc)) from None
    result = await conn.execute(
        update(companies).where(companies.c.id == company_id).values(erp_connector=connector, erp_settings=options)
    )
    if result.rowcount != 1:
        raise AdminError(f"no company {company_id}")


async def create_user(
    conn: AsyncConnection,
    company_id: str,
    email: str,
    name: str,
    *,
    company_admin: bool = False,
    approver: bool = False,
    erp_permission: PermissionLevel = PermissionLevel.NONE,
) -> str:
    if (await conn.execute(select(companies.c.id).where(companies.c.id == company_id))).first() is None:
        raise AdminError(f"no company {company_id}")
    email = email.strip().lower()
    if "@" not in email:
        raise AdminError("--email must be an email address")
    taken = await conn.execute(select(users.c.id).where(users.c.company_id == company_id, users.c.email == email))
    if taken.first() is not None:
        raise AdminError(f"{email} already exists in this company")
    user_id = new_id("User")
    await conn.execute(
        insert(users).values(
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


async def grant(
    conn: AsyncConnection, user_id: str, project_id: str, level: PermissionLevel, grants: list[Grant]
) -> None:
    user = (await conn.execute(select(users.c.company_id).where(users.c.id == user_id))).first()
    project = (await conn.execute(select(projects.c.company_id).where(projects.c.id == project_id))).first()
    if user is None:
        raise AdminError(f"no user {user_id}")
    if project is None or project.company_id != user.company_id:
        raise AdminError(f"no project {project_id} in the user's company")
    await conn.execute(
        project_permissions.delete().where(
            project_permissions.c.user_id == user_id, project_permissions.c.project_id == project_id
        )
    )
    await conn.execute(
        insert(project_permissions).values(
            user_id=user_id, project_id=project_id, budget_permission=level.name, grants=sorted(g.value for g in grants)
        )
    )


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
    return disabled_at


async def revoke_tokens(conn: AsyncConnection, user_id: str, now: datetime) -> datetime:
    """Every token of the user issued before `now` stops working; returns the whole second from which tokens
    are valid (domain.access). A later revocation already recorded (a clock that went back) is kept."""
    user = await _user_access(conn, user_id)
    valid_after = access.tokens_valid_after_revocation(now)
    if user.tokens_valid_after is not None and user.tokens_valid_after > valid_after:
        valid_after = user.tokens_valid_after
    await conn.execute(update(users).where(users.c.id == user_id).values(tokens_valid_after=valid_after))
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


async def post_embedded_entries(conn: AsyncConnection, request_id: str) -> int:
    """Post a request's entries in the embedded ledger, as an accountant posts in Job Cost. The worker's
    posting detection then moves the request to SYNCED."""
    request = (
        await conn.execute(
            select(erp_requests.c.export_id, erp_requests.c.status, companies.c.erp_connector)
            .join(companies, companies.c.id == erp_requests.c.company_id)
            .where(erp_requests.c.id == request_id)
        )
    ).first()
    if request is None:
        raise AdminError(f"no ERP request {request_id}")
    if request.erp_connector != "embedded":
        raise AdminError("only the embedded ERP keeps a ledger to post in; post in your ERP instead")
    result = await conn.execute(
        update(erp_job_cost_entries)
        .where(
            erp_job_cost_entries.c.batch == EmbeddedConnector.reference(request.export_id),
            erp_job_cost_entries.c.posted.is_(False),
        )
        .values(posted=True, posted_at=datetime.now(UTC))
    )
    if result.rowcount == 0 and request.status != "AWAITING_POSTING":
        raise AdminError(f"the request is {request.status}: nothing exported to post")
    return int(result.rowcount)
