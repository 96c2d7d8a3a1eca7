"""Deciding notifications inside a unit of work and writing them to the outbox with the change that causes them.

`plan_for_events` runs in `service.run_unit` for every unit of work, right before its commit: it takes the
events the unit appended (`uow.events.take_appended()`), asks the domain who is told what
(`domain.notifications.for_event`) and writes the outbox rows in the same transaction. No writer calls it
by hand, so none can forget it, and a notification exists if and only if its event committed.

The reminder and digest schedules (`reminders_in`, `digests_in`) are run by the worker in units of their
own; their rows carry de-duplication keys (one per request and period, per approver and day), so a schedule
that runs twice, in two processes or after a restart, writes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from domain import notifications as nt
from domain.permissions import PermissionLevel
from domain.status import ExportStatus
from persistence.ids import new_id
from persistence.notification_records import RecipientRecord
from persistence.records import CompanyRecord, ErpRequestRecord
from persistence.unit_of_work import AbstractUnitOfWork, NewNotification

WAITING_STATUSES = [s.value for s in nt.WAITING]


def person(record: RecipientRecord) -> nt.Person:
    known = {k.value: k for k in nt.NotificationKind}
    return nt.Person(
        user_id=record.id,
        name=record.name,
        email=record.email,
        is_accounting_approver=record.is_accounting_approver,
        erp_permission=PermissionLevel[record.erp_permission],
        opted_out=frozenset(known[k] for k in record.opted_out if k in known),
    )


class _Company:
    """What planning reads once per company and unit of work: the company, its people, its chat channel."""

    def __init__(self, company: CompanyRecord, people: list[nt.Person], chat: bool) -> None:
        self.company = company
        self.people = people
        self.by_id = {p.user_id: p for p in people}
        self.chat = chat


async def _company(uow: AbstractUnitOfWork, company_id: str, cache: dict[str, _Company]) -> _Company | None:
    if company_id not in cache:
        company = await uow.companies.get(company_id)
        if company is None:
            return None
        people = [person(r) for r in await uow.notification_context.people(company_id)]
        chat = await uow.notification_context.chat_webhook(company_id) is not None
        cache[company_id] = _Company(company, people, chat)
    return cache[company_id]


async def request_facts(uow: AbstractUnitOfWork, request: ErpRequestRecord, company: _Company) -> nt.RequestFacts:
    project = await uow.projects.get(request.company_id, request.project_id)
    lines = await uow.notification_context.request_lines(request.id)
    count, original, changes = nt.request_totals((line.original_budget, line.budget_changes) for line in lines)
    sender = company.by_id.get(request.sent_by_id)
    return nt.RequestFacts(
        request_id=request.id,
        budget_id=request.budget_id,
        company_name=company.company.name,
        currency=company.company.currency,
        project_name=project.name if project is not None else "",
        project_number=project.number if project is not None else "",
        sender_name=sender.name if sender is not None else "",
        kind=request.kind,
        sequence=request.sequence,
        status=ExportStatus(request.status),
        line_count=count,
        total_original=original,
        total_changes=changes,
        sent_at=request.sent_at,
        exported_at=request.exported_at,
        erp_reference=request.erp_reference,
    )


def outbox_rows(company_id: str, found: Sequence[nt.Notification], at: datetime) -> list[NewNotification]:
    return [
        NewNotification(
            id=new_id("Notification"),
            company_id=company_id,
            kind=n.kind.value,
            channel=n.channel.value,
            recipient_id=n.recipient.user_id if n.recipient is not None else None,
            address=n.recipient.email if n.recipient is not None else None,
            erp_request_id=n.request.request_id if n.request is not None else None,
            dedupe_key=n.key,
            payload=n.as_payload(),
            created_at=at,
        )
        for n in found
    ]


async def plan_for_events(uow: AbstractUnitOfWork, wake_delivery: Callable[[], None]) -> int:
    """Write the notifications of the events appended in `uow` since the last call; wake the delivery after
    the commit when there are any. Returns how many rows were written."""
    appended = uow.events.take_appended()
    if not any(nt.kind_of(a.event) is not None for a in appended):
        return 0
    companies: dict[str, _Company] = {}
    rows: list[NewNotification] = []
    for item in appended:
        request_id = item.event.erp_request_id
        if nt.kind_of(item.event) is None or request_id is None:
            continue
        company = await _company(uow, item.company_id, companies)
        request = await uow.requests.get(item.company_id, request_id)
        if company is None or request is None:
            continue
        facts = await request_facts(uow, request, company)
        sender = company.by_id.get(request.sent_by_id)
        found = nt.for_event(item.event, item.sequence, facts, sender, company.people, chat=company.chat)
        rows += outbox_rows(item.company_id, found, item.at)
    if rows:
        await uow.notifications.add_many(rows)
        uow.after_commit(wake_delivery)
    return len(rows)


async def _write_new(uow: AbstractUnitOfWork, company_id: str, found: list[nt.Notification], at: datetime) -> int:
    taken = await uow.notifications.taken_keys([n.key for n in found])
    fresh = [n for n in found if n.key not in taken]
    await uow.notifications.add_many(outbox_rows(company_id, fresh, at))
    return len(fresh)


def _by_company(requests: list[ErpRequestRecord]) -> dict[str, list[ErpRequestRecord]]:
    grouped: dict[str, list[ErpRequestRecord]] = {}
    for request in requests:
        grouped.setdefault(request.company_id, []).append(request)
    return grouped


async def reminders_in(
    uow: AbstractUnitOfWork, now: datetime, every: timedelta, company_id: str | None = None
) -> int:
    """Posting reminders due at `now` that were not written before; returns how many rows were written."""
    awaiting = await uow.notification_context.requests_in(
        [ExportStatus.AWAITING_POSTING.value], company_id, exported_before=now - every
    )
    written = 0
    cache: dict[str, _Company] = {}
    for owner, requests in _by_company(awaiting).items():
        company = await _company(uow, owner, cache)
        if company is None:
            continue
        facts = [await request_facts(uow, r, company) for r in requests]
        written += await _write_new(uow, owner, nt.reminders(now, every, facts, company.people, chat=company.chat), now)
    return written


async def digests_in(uow: AbstractUnitOfWork, day: date, now: datetime, company_id: str | None = None) -> int:
    """The digests of `day` for every approver of a company where something waits, unless written before."""
    waiting = await uow.notification_context.requests_in(WAITING_STATUSES, company_id)
    written = 0
    cache: dict[str, _Company] = {}
    for owner, requests in _by_company(waiting).items():
        company = await _company(uow, owner, cache)
        if company is None:
            continue
        facts = [await request_facts(uow, r, company) for r in requests]
        written += await _write_new(uow, owner, nt.digests(day, facts, company.people), now)
    return written
