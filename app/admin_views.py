"""What the operator's list and show commands print: each returns the JSON payload (with --json) and the
text for a terminal. They read through the read store, across companies unless one is named; an ERP
connector's option values are never shown (a webhook's secret is one), only their names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.admin import AdminError
from domain.permissions import Actor, PermissionLevel, decide_refusal
from persistence.reads import ReadStore
from persistence.records import CompanyRecord, ErpRequestRecord, ExportJobRecord, UserRecord

View = tuple[dict[str, Any], str]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _short(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else "-"


async def _check_company(reads: ReadStore, company_id: str | None) -> None:
    if company_id is not None and not await reads.companies([company_id]):
        raise AdminError(f"no company {company_id}")


def _company(c: CompanyRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "currency": c.currency,
        "connector": c.erp_connector,
        "connectorOptions": sorted(c.erp_settings or {}),
        "createdAt": _time(c.created_at),
    }


async def company_list(reads: ReadStore) -> View:
    found = await reads.all_companies()
    lines = [f"{c.id}  {c.currency}  {c.erp_connector or 'none':<12}  {c.name}" for c in found]
    return {"companies": [_company(c) for c in found]}, "\n".join(lines) or "no companies"


def _user(u: UserRecord) -> dict[str, Any]:
    return {
        "id": u.id,
        "companyId": u.company_id,
        "email": u.email,
        "name": u.name,
        "companyAdmin": u.is_company_admin,
        "approver": u.is_accounting_approver,
        "erpPermission": u.erp_permission,
        "createdAt": _time(u.created_at),
    }


def _roles(u: UserRecord) -> str:
    roles = (["company admin"] if u.is_company_admin else []) + (["approver"] if u.is_accounting_approver else [])
    return ", ".join([*roles, f"ERP {u.erp_permission}"])


async def user_list(reads: ReadStore, company_id: str | None) -> View:
    await _check_company(reads, company_id)
    found = await reads.users_of(company_id)
    lines = [f"{u.id}  {u.company_id}  {u.email:<32}  {u.name}  ({_roles(u)})" for u in found]
    return {"users": [_user(u) for u in found]}, "\n".join(lines) or "no users"


async def user_show(reads: ReadStore, user_id: str) -> View:
    found = await reads.user_with_company(user_id)
    if found is None:
        raise AdminError(f"no user {user_id}")
    user, company = found
    actor = Actor(
        user.id,
        user.company_id,
        is_company_admin=user.is_company_admin,
        is_accounting_approver=user.is_accounting_approver,
        erp_permission=PermissionLevel[user.erp_permission],
    )
    cannot_decide = decide_refusal(actor)
    grants = await reads.grants_of_user(user.id)
    payload = {
        **_user(user),
        "companyName": company.name,
        "canDecideExports": cannot_decide is None,
        "projects": [
            {
                "projectId": g.project_id,
                "number": g.project_number,
                "name": g.project_name,
                "budgetPermission": g.budget_permission,
                "grants": sorted(g.grants or []),
            }
            for g in grants
        ],
    }
    decides = "yes" if cannot_decide is None else f"no ({cannot_decide.message})"
    lines = [
        f"user {user.id}  {user.name} <{user.email}>",
        f"company {company.id}  {company.name}",
        f"company admin: {'yes' if user.is_company_admin else 'no'}",
        f"accounting approver: {'yes' if user.is_accounting_approver else 'no'}",
        f"ERP Integrations: {user.erp_permission}",
        f"can decide exports: {decides}",
    ]
    if grants:
        lines.append("projects:")
    else:
        sees_all = " (a company admin sees every project)" if user.is_company_admin else ""
        lines.append("projects: none granted" + sees_all)
    lines += [
        f"  {g.project_number:<12} {g.budget_permission:<9} {', '.join(sorted(g.grants or [])) or '-':<30} "
        f"{g.project_name} ({g.project_id})"
        for g in grants
    ]
    return payload, "\n".join(lines)


def _request(r: ErpRequestRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "companyId": r.company_id,
        "projectId": r.project_id,
        "budgetId": r.budget_id,
        "sequence": r.sequence,
        "kind": r.kind,
        "status": r.status,
        "sentAt": _time(r.sent_at),
        "sentBy": r.sent_by_id,
        "decidedAt": _time(r.decided_at),
        "decidedBy": r.decided_by_id,
        "exportedAt": _time(r.exported_at),
        "postedAt": _time(r.posted_at),
        "exportAttempts": r.export_attempts,
        "erpReference": r.erp_reference,
        "failureMessage": r.failure_message,
    }


async def erp_requests(
    reads: ReadStore, statuses: Sequence[str] | None, company_id: str | None, limit: int
) -> View:
    await _check_company(reads, company_id)
    found = await reads.latest_requests(statuses, company_id, limit)
    lines = [
        f"{_short(r.sent_at)}  {r.status:<18} {r.kind:<13} {r.id}  {r.company_id}  attempts {r.export_attempts}"
        + (f"  ({r.failure_message})" if r.failure_message else "")
        for r in found
    ]
    return {"requests": [_request(r) for r in found]}, "\n".join(lines) or "no ERP requests"


def _job(j: ExportJobRecord) -> dict[str, Any]:
    return {
        "id": j.id,
        "companyId": j.company_id,
        "requestId": j.request_id,
        "state": j.status,
        "attempts": j.attempts,
        "dueAt": _time(j.next_attempt_at),
        "leaseUntil": _time(j.lease_until),
        "lastError": j.last_error,
        "createdAt": _time(j.created_at),
        "updatedAt": _time(j.updated_at),
    }


async def erp_jobs(reads: ReadStore, statuses: Sequence[str] | None, company_id: str | None, limit: int) -> View:
    await _check_company(reads, company_id)
    found = await reads.latest_export_jobs(statuses, company_id, limit)
    lines = [
        f"{j.id}  {j.request_id}  {j.status:<17} attempts {j.attempts}  due {_short(j.next_attempt_at)}"
        f"  lease {_short(j.lease_until)}" + (f"  ({j.last_error})" if j.last_error else "")
        for j in found
    ]
    return {"jobs": [_job(j) for j in found]}, "\n".join(lines) or "no export jobs"
