"""Single sign-on rows: the OpenID Connect issuer a company trusts, and an issuer's subjects linked to users
(app/oidc.py decides who is who; these functions only read and write)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence import revisions
from persistence.ids import new_id
from persistence.records import Record
from persistence.tables import company_sso, sso_links, users


@dataclass(frozen=True, slots=True)
class SsoConfigRecord(Record):
    company_id: str
    issuer: str
    audience: str
    email_claim: str
    provision: bool
    client_id: str | None
    updated_at: datetime


async def set_config(conn: AsyncConnection, config: SsoConfigRecord) -> None:
    await conn.execute(company_sso.delete().where(company_sso.c.company_id == config.company_id))
    await conn.execute(insert(company_sso).values(
        company_id=config.company_id, issuer=config.issuer, audience=config.audience,
        email_claim=config.email_claim, provision=config.provision, client_id=config.client_id,
        updated_at=config.updated_at,
    ))


async def configs_for_issuer(conn: AsyncConnection, issuer: str) -> list[SsoConfigRecord]:
    rows = await conn.execute(select(company_sso).where(company_sso.c.issuer == issuer))
    return [SsoConfigRecord.of(row) for row in rows]


async def trusted_issuers(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(company_sso.c.issuer).distinct())
    return [str(issuer) for issuer in rows.scalars()]


async def config_of_company(conn: AsyncConnection, company_id: str) -> SsoConfigRecord | None:
    row = (await conn.execute(select(company_sso).where(company_sso.c.company_id == company_id))).first()
    return SsoConfigRecord.of(row) if row is not None else None


async def configs_for_email_domain(conn: AsyncConnection, domain: str) -> list[SsoConfigRecord]:
    """Companies with single sign-on that have a person whose email is at `domain`."""
    people = select(users.c.company_id).where(users.c.kind == "person",
                                               func.lower(users.c.email).like(f"%@{domain.lower()}"))
    rows = await conn.execute(select(company_sso).where(company_sso.c.company_id.in_(people)))
    return [SsoConfigRecord.of(row) for row in rows]


async def linked_user(conn: AsyncConnection, issuer: str, subject: str, company_id: str) -> str | None:
    """The user of the company the issuer's subject was linked to, if any."""
    stmt = (
        select(sso_links.c.user_id)
        .join(users, users.c.id == sso_links.c.user_id)
        .where(sso_links.c.issuer == issuer, sso_links.c.subject == subject, users.c.company_id == company_id)
    )
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return str(found) if found is not None else None


async def person_by_email(conn: AsyncConnection, company_id: str, email: str) -> str | None:
    stmt = select(users.c.id).where(users.c.company_id == company_id, users.c.kind == "person",
                                    func.lower(users.c.email) == email.lower())
    found = (await conn.execute(stmt)).scalars().first()
    return str(found) if found is not None else None


async def link(conn: AsyncConnection, issuer: str, subject: str, user_id: str, now: datetime) -> None:
    await conn.execute(insert(sso_links).values(issuer=issuer, subject=subject, user_id=user_id, linked_at=now))


async def provision_person(conn: AsyncConnection, company_id: str, email: str, name: str, now: datetime) -> str:
    """A new person with no permissions at all (an admin grants them later)."""
    user_id = new_id("User")
    await conn.execute(insert(users).values(
        id=user_id, company_id=company_id, email=email.lower(), name=name or email, is_company_admin=False,
        is_accounting_approver=False, erp_permission="NONE", created_at=now, kind="person",
    ))
    await revisions.bump(conn, company_id)  # a new User a query can reach
    return user_id
