"""Who is told what, and when: pure decisions over an event (or the clock) and the people of a company.

An event of the request workflow may cause notifications: a request arrives in the ERP Integrations queue
(every accounting approver with ERP Integrations Standard or higher), it is rejected (its sender, with the
reason), its export failed (the sender and the approvers, with the connector's message), it is synced (the
sender). The clock causes the others: a reminder to the approvers while an export awaits posting for too
long (once per request per period), and a daily digest per approver of what waits (only when something
does). Each person may turn each kind off; a company's chat channel (an incoming webhook) hears the same
events, except the digest, which is personal.

Every notification carries a de-duplication `key`: one notification per cause (event, reminder period,
digest day) and recipient. The outbox refuses a second row with the same key, so a scheduler that runs twice
(two worker processes, a restart) never notifies twice.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from domain import events as ev
from domain.permissions import PermissionLevel
from domain.status import ExportStatus


class NotificationKind(enum.Enum):
    REQUEST_ARRIVED = "REQUEST_ARRIVED"
    REQUEST_REJECTED = "REQUEST_REJECTED"
    EXPORT_FAILED = "EXPORT_FAILED"
    POSTING_REMINDER = "POSTING_REMINDER"
    REQUEST_SYNCED = "REQUEST_SYNCED"
    DAILY_DIGEST = "DAILY_DIGEST"


class Channel(enum.Enum):
    EMAIL = "EMAIL"
    CHAT = "CHAT"


# The kinds each person can turn off, in the order settings list them.
KINDS: tuple[NotificationKind, ...] = tuple(NotificationKind)

# What an approver's digest lists: requests that wait for someone to act.
WAITING = (ExportStatus.PENDING_ACCEPTANCE, ExportStatus.EXPORT_FAILED, ExportStatus.AWAITING_POSTING)


@dataclass(frozen=True)
class Person:
    """A user of the company as notifications see them: who they are, their rights, what they turned off."""

    user_id: str
    name: str
    email: str
    is_accounting_approver: bool = False
    erp_permission: PermissionLevel = PermissionLevel.NONE
    opted_out: frozenset[NotificationKind] = frozenset()

    @property
    def is_approver(self) -> bool:
        """An accounting approver who may decide exports (ERP Integrations Standard or higher)."""
        return self.is_accounting_approver and self.erp_permission >= PermissionLevel.STANDARD

    def wants(self, kind: NotificationKind) -> bool:
        return kind not in self.opted_out and "@" in self.email


@dataclass(frozen=True)
class RequestFacts:
    """What a message says about one ERP request, as it stood when the notification was decided."""

    request_id: str
    budget_id: str
    company_name: str
    currency: str
    project_name: str
    project_number: str
    sender_name: str
    kind: str  # CREATE_BUDGET / UPDATE_BUDGET
    sequence: int
    status: ExportStatus
    line_count: int
    total_original: Decimal
    total_changes: Decimal
    sent_at: datetime
    exported_at: datetime | None = None
    erp_reference: str | None = None

    @property
    def total_revised(self) -> Decimal:
        return self.total_original + self.total_changes

    def as_payload(self) -> dict[str, Any]:
        """JSON-safe (strings and ints): amounts as exact decimal strings, times in ISO 8601."""
        return {
            "requestId": self.request_id,
            "budgetId": self.budget_id,
            "companyName": self.company_name,
            "currency": self.currency,
            "projectName": self.project_name,
            "projectNumber": self.project_number,
            "senderName": self.sender_name,
            "kind": self.kind,
            "sequence": self.sequence,
            "status": self.status.value,
            "lineCount": self.line_count,
            "totalOriginal": f"{self.total_original:f}",
            "totalChanges": f"{self.total_changes:f}",
            "sentAt": self.sent_at.isoformat(),
            "exportedAt": self.exported_at.isoformat() if self.exported_at else None,
            "erpReference": self.erp_reference,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> RequestFacts:
        exported = data.get("exportedAt")
        return cls(
            request_id=str(data["requestId"]),
            budget_id=str(data["budgetId"]),
            company_name=str(data["companyName"]),
            currency=str(data["currency"]),
            project_name=str(data["projectName"]),
            project_number=str(data["projectNumber"]),
            sender_name=str(data["senderName"]),
            kind=str(data["kind"]),
            sequence=int(data["sequence"]),
            status=ExportStatus(data["status"]),
            line_count=int(data["lineCount"]),
            total_original=Decimal(str(data["totalOriginal"])),
            total_changes=Decimal(str(data["totalChanges"])),
            sent_at=datetime.fromisoformat(str(data["sentAt"])),
            exported_at=datetime.fromisoformat(str(exported)) if exported else None,
            erp_reference=data.get("erpReference"),
        )


def request_totals(lines: Iterable[tuple[Decimal, Decimal]]) -> tuple[int, Decimal, Decimal]:
    """(line count, total original budget, total budget changes) of a request's (original, changes) lines."""
    count, original, changes = 0, Decimal("0.00"), Decimal("0.00")
    for line_original, line_changes in lines:
        count += 1
        original += line_original
        changes += line_changes
    return count, original, changes


@dataclass(frozen=True)
class Notification:
    """One message to one recipient (a person by email, or the company's chat channel when `recipient` is None).

    `request` is what it is about; a digest lists `waiting` instead. `reason` is the approver's rejection
    reason or the connector's failure message. `waiting_since` is how long a reminded export has waited."""

    kind: NotificationKind
    channel: Channel
    key: str
    recipient: Person | None = None
    request: RequestFacts | None = None
    reason: str | None = None
    waiting: tuple[RequestFacts, ...] = ()
    day: date | None = None
    waiting_since: timedelta | None = None
    actor_name: str | None = None  # who caused it (the approver who rejected), when a person did

    def as_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.request is not None:
            payload["request"] = self.request.as_payload()
        if self.reason is not None:
            payload["reason"] = self.reason
        if self.waiting:
            payload["waiting"] = [r.as_payload() for r in self.waiting]
        if self.day is not None:
            payload["day"] = self.day.isoformat()
        if self.waiting_since is not None:
            payload["waitingSeconds"] = int(self.waiting_since.total_seconds())
        if self.recipient is not None:
            payload["recipientName"] = self.recipient.name
        if self.actor_name is not None:
            payload["actorName"] = self.actor_name
        return payload


@dataclass(frozen=True)
class Content:
    """What a stored notification says, read back from its payload for rendering."""

    kind: NotificationKind
    request: RequestFacts | None = None
    reason: str | None = None
    waiting: tuple[RequestFacts, ...] = ()
    day: date | None = None
    waiting_since: timedelta | None = None
    recipient_name: str | None = None
    actor_name: str | None = None

    @classmethod
    def of(cls, kind: NotificationKind, payload: Mapping[str, Any]) -> Content:
        request = payload.get("request")
        day = payload.get("day")
        seconds = payload.get("waitingSeconds")
        return cls(
            kind=kind,
            request=RequestFacts.from_payload(request) if request else None,
            reason=payload.get("reason"),
            waiting=tuple(RequestFacts.from_payload(r) for r in payload.get("waiting", [])),
            day=date.fromisoformat(day) if day else None,
            waiting_since=timedelta(seconds=int(seconds)) if seconds is not None else None,
            recipient_name=payload.get("recipientName"),
            actor_name=payload.get("actorName"),
        )


# --- decisions -----------------------------------------------------------------------------------------

_EVENT_KINDS: dict[type[ev.BudgetEvent], NotificationKind] = {
    ev.BudgetSentToErp: NotificationKind.REQUEST_ARRIVED,
    ev.ExportRejected: NotificationKind.REQUEST_REJECTED,
    ev.ExportFailed: NotificationKind.EXPORT_FAILED,
    ev.ExportPosted: NotificationKind.REQUEST_SYNCED,  # exported to an ERP that posts at once
    ev.JobCostPosted: NotificationKind.REQUEST_SYNCED,
}


def kind_of(event: ev.BudgetEvent) -> NotificationKind | None:
    """The notification an event causes, if any (only request events of a request do)."""
    if event.erp_request_id is None:
        return None
    return _EVENT_KINDS.get(type(event))


def _audience(kind: NotificationKind, sender: Person | None, people: Sequence[Person]) -> list[Person]:
    approvers = [p for p in people if p.is_approver]
    senders = [sender] if sender is not None else []
    chosen = {
        NotificationKind.REQUEST_ARRIVED: approvers,
        NotificationKind.REQUEST_REJECTED: senders,
        NotificationKind.EXPORT_FAILED: senders + approvers,
        NotificationKind.REQUEST_SYNCED: senders,
        NotificationKind.POSTING_REMINDER: approvers,
        NotificationKind.DAILY_DIGEST: approvers,
    }[kind]
    unique: dict[str, Person] = {}
    for person in chosen:
        unique.setdefault(person.user_id, person)  # a sender who is also an approver gets one message
    return [p for p in unique.values() if p.wants(kind)]


def _addressed(
    kind: NotificationKind, cause: str, people: Sequence[Person], chat: bool, **content: Any
) -> list[Notification]:
    found = [
        Notification(kind, Channel.EMAIL, f"{kind.value}:{cause}:{p.user_id}", recipient=p, **content) for p in people
    ]
    if chat:
        found.append(Notification(kind, Channel.CHAT, f"{kind.value}:{cause}:chat", **content))
    return found


def for_event(
    event: ev.BudgetEvent,
    sequence: int,
    request: RequestFacts,
    sender: Person | None,
    people: Sequence[Person],
    *,
    chat: bool,
) -> list[Notification]:
    """The notifications `event` (number `sequence` of its company's log) causes. `people` are the company's
    users with their settings, `sender` the request's sender among them, `chat` whether the company has a
    chat channel."""
    kind = kind_of(event)
    if kind is None:
        return []
    reason = event.reason if kind in (NotificationKind.REQUEST_REJECTED, NotificationKind.EXPORT_FAILED) else None
    actor = next((p.name for p in people if p.user_id == event.actor_id), None) if event.actor_id else None
    return _addressed(
        kind,
        f"{request.request_id}:{sequence}",
        _audience(kind, sender, people),
        chat,
        request=request,
        reason=reason,
        actor_name=actor,
    )


def reminder_period(exported_at: datetime, now: datetime, every: timedelta) -> int:
    """How many whole reminder periods an export has awaited posting (0: not yet time for a reminder)."""
    if every <= timedelta(0) or now < exported_at:
        return 0
    return (now - exported_at) // every


def reminders(
    now: datetime, every: timedelta, awaiting: Sequence[RequestFacts], people: Sequence[Person], *, chat: bool
) -> list[Notification]:
    """A reminder to the approvers (and the chat channel) for each request awaiting posting for at least one
    period: once per request per period, the key says which. A worker that was down for several periods
    sends one reminder, of the current period."""
    found: list[Notification] = []
    for request in awaiting:
        if request.status is not ExportStatus.AWAITING_POSTING or request.exported_at is None:
            continue
        period = reminder_period(request.exported_at, now, every)
        if period < 1:
            continue
        audience = _audience(NotificationKind.POSTING_REMINDER, None, people)
        found += _addressed(
            NotificationKind.POSTING_REMINDER,
            f"{request.request_id}:{period}",
            audience,
            chat,
            request=request,
            waiting_since=now - request.exported_at,
        )
    return found


def digest_day(now: datetime, hour: int, zone: tzinfo) -> date | None:
    """The day whose digest is due at `now`: today in `zone` once its `hour` has come, else None."""
    local = now.astimezone(zone)
    return local.date() if local.hour >= hour else None


def digests(day: date, waiting: Sequence[RequestFacts], people: Sequence[Person]) -> list[Notification]:
    """One digest per approver of what waits (pending decisions, failed exports, exports awaiting posting),
    once per day; nothing at all when nothing waits."""
    listed = tuple(
        sorted(
            (r for r in waiting if r.status in WAITING),
            key=lambda r: (WAITING.index(r.status), r.sent_at, r.request_id),
        )
    )
    if not listed:
        return []
    audience = _audience(NotificationKind.DAILY_DIGEST, None, people)
    return _addressed(NotificationKind.DAILY_DIGEST, day.isoformat(), audience, False, waiting=listed, day=day)


# --- settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationSettings:
    """A user's choice per kind: on unless turned off."""

    opted_out: frozenset[NotificationKind] = frozenset()

    def enabled(self, kind: NotificationKind) -> bool:
        return kind not in self.opted_out

    def changed(self, changes: Mapping[NotificationKind, bool]) -> NotificationSettings:
        off = set(self.opted_out)
        for kind, on in changes.items():
            if on:
                off.discard(kind)
            else:
                off.add(kind)
        return NotificationSettings(frozenset(off))
