"""The company's revision: one more for every write of data a query can read that appends no event.

Every change of the budget workflow appends an event (its sequence is the company's `event_sequence`); the
other writes a query can see (project grants, users, projects and their budgets, cost codes and types, the
company's ERP connection, a user's notification settings) bump `companies.revision` in the same transaction
instead, so the pair (event_sequence, revision) changes whenever any answer may (app.response_cache). They
are not events on purpose: the log is the audit trail and the live stream, and none of these belongs there.

Writes nobody can query (the outbox, export jobs, idempotency keys, a token's last use, SSO links, the
embedded ERP's ledger) do not bump it: that keeps the cache warm while workers run.
"""

from __future__ import annotations

from sqlalchemy import ScalarSelect, Update, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import companies, projects, users


def _bump(company: str | ScalarSelect[str]) -> Update:
    return update(companies).where(companies.c.id == company).values(revision=companies.c.revision + 1)


def of_company(company_id: str) -> Update:
    return _bump(company_id)


def of_users_company(user_id: str) -> Update:
    return _bump(select(users.c.company_id).where(users.c.id == user_id).scalar_subquery())


def of_projects_company(project_id: str) -> Update:
    return _bump(select(projects.c.company_id).where(projects.c.id == project_id).scalar_subquery())


async def bump(conn: AsyncConnection, company_id: str) -> None:
    """For the writes that run on a bare connection (the admin CLI's, API tokens', SSO provisioning's)."""
    await conn.execute(of_company(company_id))


async def bump_for_user(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(of_users_company(user_id))
