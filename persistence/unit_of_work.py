"""The unit of work and the repositories that hang on it: the only way anything above persistence writes.

`AbstractUnitOfWork` is one transaction. Its repositories read and write inside it; nothing is visible to
anyone else until `commit()`, and callbacks registered with `after_commit` (wake-ups, export kicks) run only
once the commit succeeded. `persistence.sql.SqlUnitOfWork` is the SQLAlchemy implementation; the tests'
`FakeUnitOfWork` keeps the same repositories in memory, so the service layer is tested without a database.

Repositories speak records (persistence.records) and domain values, never rows. Lookups by id take the
company and find nothing for another company's id, so tenancy cannot be forgotten at a call site; writes
and reads that take an id of a record (or a budget id) expect one that came from such a scoped lookup.
A unique or foreign key violation raises ConcurrentChangeError and spoils the unit of work. A deadlock or a
serialisation failure raises TransactionConflictError: nothing was committed, and the caller
(`resolvers.service.run_unit`) runs the whole unit again in a fresh unit of work.

Lock order (see `LockOrder`): a unit of work locks the budget rows it changes first and the company's event
counter last, so two writers of one company never wait on each other in a cycle.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from domain.budget import BudgetState, BudgetTotals, LineKey
from domain.events import BudgetEvent
from domain.permissions import ProjectAccess
from persistence.notification_records import ChatWebhookRecord, NotificationRecord, RecipientRecord
from persistence.records import (
    BudgetRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    ExportEntryRecord,
    ExportJobRecord,
    LineItemRecord,
    ModificationRecord,
    ProjectRecord,
    RequestLineRecord,
    StoredResultRecord,
    UserRecord,
)

AfterCommit = Callable[[], Awaitable[None] | None]


class TransactionConflictError(Exception):
    """The database aborted the unit of work to resolve a conflict with a concurrent one: a deadlock, or a
    serialisation failure (PostgreSQL), or a busy database (SQLite). Nothing of it was committed, so running
    the whole unit again, in a fresh unit of work, is safe. The SQL unit of work translates the drivers'
    errors to this, so nothing above persistence needs to know them."""


class LockOrderError(AssertionError):
    """A unit of work locked a budget after the company's event counter: a programming error that could
    deadlock two writers (see LockOrder)."""


class LockOrder:
    """The one order in which every writer takes its row locks (mutations, the export worker, posting
    detection, the integrators' callbacks):

    1. the budget row(s) it changes: `budgets.get_for_update` (several budgets: all of them before step 2);
       the rows of a budget (its lines, modifications, requests, entries, export jobs) are written only by
       units that hold that budget's lock, so they never make two units wait on each other;
    2. the company row last: `events.append` increments the company's event counter with an UPDATE, which
       holds that row's lock until commit (that is what keeps the company's sequence gapless and in order).
       After it a unit writes only rows of the budgets it holds or rows nobody else can hold (its new export
       job, its idempotency key).

    The counter is the one lock every writer of a company shares, so it must be the last one a unit waits
    for: a unit that held the counter and then waited for a budget row would deadlock with a unit that
    holds that budget and waits for the counter (failing several overdue exports in one unit did exactly
    that; each now has its own unit). Each unit of work keeps one LockOrder and refuses (LockOrderError) a
    budget lock asked for after the counter; re-locking a budget it already holds is fine.
    """

    def __init__(self) -> None:
        self.budgets: set[str] = set()
        self.counter_taken = False

    def lock_budget(self, budget_id: str) -> None:
        if self.counter_taken and budget_id not in self.budgets:
            raise LockOrderError(
                f"budget {budget_id} locked after the company's event counter: lock every budget a unit of work "
                "changes before its first event"
            )
        self.budgets.add(budget_id)

    def take_counter(self) -> None:
        self.counter_taken = True


# --- values the repositories take ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewLineItem:
    id: str
    company_id: str
    budget_id: str
    cost_code_id: str
    cost_type_id: str
    sub_job: str  # '' for none
    description: str | None
    original_amount: Decimal
    quantity: Decimal | None
    unit_of_measure: str | None
    unit_cost: Decimal | None
    position: int
    created_at: datetime


@dataclass(frozen=True)
class NewExportEntry:
    id: str
    request_id: str
    budget_id: str
    line_item_id: str
    kind: str
    source_id: str
    amount: Decimal


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    request_id: str
    attempts: int
    # Every allowed attempt has been made (a job claimed again after its worker died during the last one):
    # the claim did not start another attempt, and the job must be failed, not run.
    exhausted: bool = False


# States of an export job.
QUEUED, RUNNING, AWAITING_CALLBACK, DONE, FAILED = "QUEUED", "RUNNING", "AWAITING_CALLBACK", "DONE", "FAILED"

# Columns of a line that an update may change.
LINE_UPDATABLE = ("description", "original_amount", "quantity", "unit_of_measure", "unit_cost")
# Columns of a request that its transitions set (the status with its timestamps, actors and outcome).
REQUEST_UPDATABLE = frozenset(
    {
        "status",
        "decided_at",
        "decided_by_id",
        "rejection_reason",
        "retrieved_at",
        "retrieved_by_id",
        "exported_at",
        "posted_at",
        "erp_reference",
        "failure_message",
        "export_attempts",
    }
)


# --- repositories --------------------------------------------------------------------------------------


class CompanyRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, company_id: str) -> CompanyRecord | None: ...

    @abc.abstractmethod
    async def add(self, company: CompanyRecord) -> None: ...

    @abc.abstractmethod
    async def set_erp(self, company_id: str, connector: str | None, options: Mapping[str, Any]) -> None:
        """The company's ERP connector (None: not connected) and its options, replacing the ones it had."""

    @abc.abstractmethod
    async def touch(self, company_id: str) -> None:
        """Record a change a query can see that appends no event (persistence.revisions): the company's
        response cache validator moves. It writes the company row, so, like an event, it comes last in a
        unit of work (LockOrder)."""


class UserRepository(abc.ABC):
    """The people who sign in (created by the admin CLI and the demo, read by every request)."""

    @abc.abstractmethod
    async def get(self, user_id: str) -> UserRecord | None:
        """Across companies: the admin's and the system's lookup, never a viewer's."""

    @abc.abstractmethod
    async def email_taken(self, company_id: str, email: str) -> bool: ...

    @abc.abstractmethod
    async def add(self, user: UserRecord) -> None: ...


class AccessRepository(abc.ABC):
    """Users' Budget tool permissions per project."""

    @abc.abstractmethod
    async def of(self, user_id: str, project_id: str) -> ProjectAccess: ...

    @abc.abstractmethod
    async def grant(self, user_id: str, project_id: str, access: ProjectAccess) -> None:
        """One grant per user and project: a second is a ConcurrentChangeError (revoke the first)."""

    @abc.abstractmethod
    async def revoke(self, user_id: str, project_id: str) -> None:
        """Remove the user's grant on the project, if any."""


class ProjectRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, company_id: str, project_id: str) -> ProjectRecord | None: ...

    @abc.abstractmethod
    async def number_taken(self, company_id: str, number: str) -> bool: ...

    @abc.abstractmethod
    async def add(self, project: ProjectRecord) -> None: ...

    @abc.abstractmethod
    async def set_erp_job(self, project_id: str, erp_job_id: str) -> None: ...


class CostCodeRepository(abc.ABC):
    @abc.abstractmethod
    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostCodeRecord]: ...

    @abc.abstractmethod
    async def code_taken(self, company_id: str, code: str) -> bool: ...

    @abc.abstractmethod
    async def add(self, cost_code: CostCodeRecord) -> None: ...

    @abc.abstractmethod
    async def mark_synced(self, ids: Sequence[str]) -> None: ...


class CostTypeRepository(abc.ABC):
    @abc.abstractmethod
    async def get_many(self, company_id: str, ids: Sequence[str]) -> list[CostTypeRecord]: ...

    @abc.abstractmethod
    async def code_taken(self, company_id: str, code: str) -> bool: ...

    @abc.abstractmethod
    async def add(self, cost_type: CostTypeRecord) -> None: ...

    @abc.abstractmethod
    async def mark_synced(self, ids: Sequence[str]) -> None: ...


class BudgetRepository(abc.ABC):
    lock_order: LockOrder  # the unit of work's, set when it begins

    async def get_for_update(self, company_id: str | None, budget_id: str) -> BudgetRecord | None:
        """The budget, locked until the unit of work ends (row lock on PostgreSQL; SQLite has one writer).
        `company_id` None only for the system (worker, callbacks), which acts across companies. Budgets are
        locked before the company's event counter (LockOrder)."""
        self.lock_order.lock_budget(budget_id)
        return await self._get_for_update(company_id, budget_id)

    async def get_for_change(
        self, company_id: str, user_id: str, budget_id: str
    ) -> tuple[BudgetRecord, ProjectAccess] | None:
        """`get_for_update`, with `user_id`'s access to the budget's project read in the same statement (what
        a user's change checks first)."""
        self.lock_order.lock_budget(budget_id)
        return await self._get_for_change(company_id, user_id, budget_id=budget_id)

    async def get_for_change_of_line(
        self, company_id: str, user_id: str, line_id: str
    ) -> tuple[BudgetRecord, ProjectAccess] | None:
        """`get_for_change` of the budget of the company's line `line_id` (None: no such line). The line itself
        is read afterwards, under the lock (it may have gone meanwhile). Only before the company's event
        counter (LockOrder): which budget it locks is known only once it has."""
        if self.lock_order.counter_taken:
            raise LockOrderError("a budget locked through its line after the company's event counter")
        found = await self._get_for_change(company_id, user_id, line_id=line_id)
        if found is not None:
            self.lock_order.lock_budget(found[0].id)
        return found

    @abc.abstractmethod
    async def _get_for_update(self, company_id: str | None, budget_id: str) -> BudgetRecord | None: ...

    @abc.abstractmethod
    async def _get_for_change(
        self, company_id: str, user_id: str, *, budget_id: str | None = None, line_id: str | None = None
    ) -> tuple[BudgetRecord, ProjectAccess] | None:
        """The budget `budget_id`, or the budget of the line `line_id`, locked, with the user's access."""

    @abc.abstractmethod
    async def of_project(self, company_id: str, project_id: str) -> BudgetRecord | None: ...

    @abc.abstractmethod
    async def add(self, budget: BudgetRecord) -> None: ...

    @abc.abstractmethod
    async def save(self, before: BudgetRecord, after: BudgetState) -> BudgetRecord:
        """Write a decision's state, compare-and-set on `before.version` (a lost race raises
        VersionConflictError instead of losing an update). Returns the record as now stored."""


class LineItemRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, company_id: str, line_id: str) -> LineItemRecord | None: ...

    @abc.abstractmethod
    async def get_with_totals(self, company_id: str, line_id: str) -> tuple[LineItemRecord, BudgetTotals] | None:
        """The line and its budget's `totals`, read together (under the budget's lock: as they stand)."""

    @abc.abstractmethod
    async def of_budget(self, budget_id: str) -> list[LineItemRecord]:
        """Every line of the budget with its cost code and type, in position order."""

    @abc.abstractmethod
    async def keys_of_budget(self, budget_id: str) -> dict[LineKey, str]:
        """(cost code id, cost type id, sub job) -> line id for every line of the budget."""

    @abc.abstractmethod
    async def next_position(self, budget_id: str) -> int: ...

    @abc.abstractmethod
    async def add_many(self, lines: Sequence[NewLineItem]) -> None: ...

    @abc.abstractmethod
    async def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """line id -> {column: value}, columns from LINE_UPDATABLE."""

    @abc.abstractmethod
    async def update(self, line: LineItemRecord, values: Mapping[str, Any]) -> LineItemRecord:
        """Set columns of one line (from LINE_UPDATABLE), read in this unit of work under its budget's lock;
        returns it as now stored (the payload of its change shows it without reading it again)."""

    @abc.abstractmethod
    async def delete(self, line_id: str) -> None: ...

    @abc.abstractmethod
    async def add_to_modifications(self, line_id: str, delta: Decimal) -> None:
        """Move the line's net modifications amount by `delta` (in the database, not read-modify-write)."""

    @abc.abstractmethod
    async def totals(self, budget_id: str) -> BudgetTotals:
        """The sums of the budget's original and modifications amounts, as this unit of work sees them (the
        budget locked: as they stand until it commits). Zero for a budget without lines."""


class ModificationRepository(abc.ABC):
    @abc.abstractmethod
    async def of_budget(self, budget_id: str) -> list[ModificationRecord]: ...

    @abc.abstractmethod
    async def touching(self, line_ids: Sequence[str]) -> list[ModificationRecord]: ...

    @abc.abstractmethod
    async def next_number(self, budget_id: str) -> int: ...

    @abc.abstractmethod
    async def add(self, modification: ModificationRecord) -> None: ...


class ErpRequestRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, company_id: str | None, request_id: str) -> ErpRequestRecord | None:
        """`company_id` None only for the system (worker, callbacks)."""

    @abc.abstractmethod
    async def by_export_id(self, export_id: str) -> ErpRequestRecord | None: ...

    @abc.abstractmethod
    async def add(self, request: ErpRequestRecord, lines: Sequence[RequestLineRecord]) -> None: ...

    @abc.abstractmethod
    async def update(self, request_id: str, **values: Any) -> None:
        """Set columns of the request (status, decided_at, erp_reference, ...)."""


class ExportEntryRepository(abc.ABC):
    @abc.abstractmethod
    async def of_budget(self, budget_id: str) -> list[ExportEntryRecord]: ...

    @abc.abstractmethod
    async def of_lines(self, line_ids: Sequence[str]) -> list[ExportEntryRecord]: ...

    @abc.abstractmethod
    async def add_many(self, entries: Sequence[NewExportEntry]) -> None: ...


class JobQueue(abc.ABC):
    """The durable export queue (`export_jobs`). Job states: QUEUED RUNNING AWAITING_CALLBACK DONE FAILED."""

    @abc.abstractmethod
    async def enqueue(self, company_id: str, request_id: str, at: datetime) -> None:
        """Inside the ACCEPT / retryExport transaction: the job exists iff the decision committed."""

    @abc.abstractmethod
    async def claim(
        self, now: datetime, lease: timedelta, max_attempts: int, company_id: str | None = None
    ) -> ClaimedJob | None:
        """The next due job (or a RUNNING one whose lease ran out), leased to the caller, counting one more
        attempt. A job that already made `max_attempts` (its worker died during the last one) is leased
        without counting one: `exhausted`, so `attempts` never passes the maximum."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> ExportJobRecord | None: ...

    @abc.abstractmethod
    async def finish(self, job_id: str, status: str, at: datetime, error: str | None = None) -> None: ...

    @abc.abstractmethod
    async def requeue(self, job_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None: ...

    @abc.abstractmethod
    async def overdue_callbacks(self, now: datetime, wait: timedelta, company_id: str | None) -> list[ClaimedJob]: ...

    @abc.abstractmethod
    async def close_awaiting_callback(self, request_id: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class AppendedEvent:
    """An event written in this unit of work, as the service layer's notification planning reads it."""

    company_id: str
    event: BudgetEvent
    at: datetime
    sequence: int


class EventLog(abc.ABC):
    lock_order: LockOrder  # the unit of work's, set when it begins

    def __init__(self) -> None:
        self.companies_written: set[str] = set()  # whose subscribers the commit must wake
        self._appended: list[AppendedEvent] = []  # not yet planned for notifications (see take_appended)

    async def append(self, company_id: str, event: BudgetEvent, at: datetime) -> int:
        """Write the event in this transaction with the company's next gapless sequence; returns it. This
        takes the company's counter, the last lock of a unit of work (LockOrder)."""
        self.lock_order.take_counter()
        sequence = await self._append(company_id, event, at)
        self.appended(company_id, event, at, sequence)
        return sequence

    def appended(self, company_id: str, event: BudgetEvent, at: datetime, sequence: int) -> None:
        """What `append` notes of an event it wrote (a unit of work that writes one in a statement of its own
        notes it here too)."""
        self.companies_written.add(company_id)
        self._appended.append(AppendedEvent(company_id, event, at, sequence))

    def take_appended(self) -> list[AppendedEvent]:
        """The events appended since the last call, in order (the runner plans their notifications once)."""
        taken, self._appended = self._appended, []
        return taken

    @abc.abstractmethod
    async def _append(self, company_id: str, event: BudgetEvent, at: datetime) -> int: ...


class IdempotencyStore(abc.ABC):
    @abc.abstractmethod
    async def get(self, user_id: str, operation: str, key: str) -> StoredResultRecord | None: ...

    @abc.abstractmethod
    async def put(
        self, user_id: str, operation: str, key: str, input_hash: str, result: Mapping[str, Any], at: datetime
    ) -> None: ...


# --- notifications (the outbox and what deciding notifications reads) ------------------------------------


class OutboxStatus(enum.StrEnum):
    """States of a notification outbox row (persistence.tables.notification_outbox)."""

    PENDING = "PENDING"  # due at next_attempt_at
    SENDING = "SENDING"  # claimed by a worker until lease_until
    SENT = "SENT"
    FAILED = "FAILED"  # a permanent refusal, or the last attempt failed: last_error says why
    UNCONFIRMED = "UNCONFIRMED"  # its worker died after handing it over: maybe delivered, never sent again
    NOT_SENT_NO_SMTP = "NOT_SENT_NO_SMTP"  # an email while no SMTP server was configured
    NOT_SENT_NO_CHAT = "NOT_SENT_NO_CHAT"  # a chat message after the company removed its chat channel


@dataclass(frozen=True)
class NewNotification:
    id: str
    company_id: str
    kind: str
    channel: str
    recipient_id: str | None
    address: str | None
    erp_request_id: str | None
    dedupe_key: str
    payload: Mapping[str, Any]
    created_at: datetime


class NotificationOutbox(abc.ABC):
    """The durable outbox: rows written with the change that causes them, delivered by the worker."""

    @abc.abstractmethod
    async def add_many(self, rows: Sequence[NewNotification]) -> None:
        """PENDING, due at once. A `dedupe_key` that exists already is a ConcurrentChangeError."""

    @abc.abstractmethod
    async def taken_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` are the de-duplication keys of existing rows."""

    @abc.abstractmethod
    async def claim(
        self, now: datetime, lease: timedelta, company_id: str | None = None
    ) -> NotificationRecord | None:
        """The next due row (PENDING and due, or SENDING whose lease ran out: its worker died), now SENDING
        with one more attempt and a lease. `handed_over_at` still tells whether the dead worker had handed
        the message over."""

    @abc.abstractmethod
    async def get(self, notification_id: str) -> NotificationRecord | None: ...

    @abc.abstractmethod
    async def hand_over(self, notification_id: str, at: datetime, message_id: str | None) -> None:
        """Recorded (and committed) just before the message leaves: a worker that dies after this may have
        delivered it. Keeps the first Message-ID it was given."""

    @abc.abstractmethod
    async def finish(self, notification_id: str, status: OutboxStatus, at: datetime, error: str | None = None) -> None:
        """A final state (SENT sets sent_at); `error` (when given) becomes last_error."""

    @abc.abstractmethod
    async def retry(self, notification_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None:
        """Back to PENDING until `next_attempt_at`, with the reason; not handed over."""

    @abc.abstractmethod
    async def close_due(
        self, now: datetime, channel: str, status: OutboxStatus, reason: str, company_id: str | None = None
    ) -> int:
        """Close every PENDING row of `channel` that is due with `status` and `reason` at once (there is
        nowhere to send them: no SMTP server is configured). Returns how many."""

    @abc.abstractmethod
    async def of_company(self, company_id: str) -> list[NotificationRecord]:
        """Every row of the company, oldest first."""


class NotificationContext(abc.ABC):
    """What deciding notifications reads (people and their settings, the company's chat channel, requests),
    and the settings users and admins change."""

    @abc.abstractmethod
    async def people(self, company_id: str) -> list[RecipientRecord]:
        """Every user of the company with the kinds they turned off, oldest first."""

    @abc.abstractmethod
    async def opted_out(self, user_id: str) -> frozenset[str]: ...

    @abc.abstractmethod
    async def set_preferences(self, user_id: str, changes: Mapping[str, bool]) -> None:
        """kind -> enabled, for the kinds named; the others stay as they are."""

    @abc.abstractmethod
    async def chat_webhook(self, company_id: str) -> ChatWebhookRecord | None: ...

    @abc.abstractmethod
    async def set_chat_webhook(
        self, company_id: str, url: str | None, allow_private_network: bool, at: datetime
    ) -> None:
        """Set the company's incoming-webhook URL, or remove it with None."""

    @abc.abstractmethod
    async def request_lines(self, request_id: str) -> list[RequestLineRecord]: ...

    @abc.abstractmethod
    async def requests_in(
        self, statuses: Sequence[str], company_id: str | None = None, exported_before: datetime | None = None
    ) -> list[ErpRequestRecord]:
        """Requests in one of `statuses` (of one company, or all), exported before a time if given; in the
        order they were sent."""


# --- the unit of work ----------------------------------------------------------------------------------


class AbstractUnitOfWork(abc.ABC):
    companies: CompanyRepository
    users: UserRepository
    access: AccessRepository
    projects: ProjectRepository
    cost_codes: CostCodeRepository
    cost_types: CostTypeRepository
    budgets: BudgetRepository
    line_items: LineItemRepository
    modifications: ModificationRepository
    requests: ErpRequestRepository
    entries: ExportEntryRepository
    jobs: JobQueue
    events: EventLog
    idempotency: IdempotencyStore
    notifications: NotificationOutbox
    notification_context: NotificationContext

    def __init__(self, on_events: Callable[[str], None] = lambda company_id: None) -> None:
        self._after_commit: list[AfterCommit] = []
        self.committed = False  # set once the commit succeeded (after-commit callbacks run after that)
        # Called after a commit that appended events for a company (wakes its live subscriptions): every
        # writer gets the wake-ups by committing, none sends them by hand.
        self._on_events = on_events

    async def __aenter__(self) -> Self:
        await self._begin()
        self._new_lock_order()
        return self

    def _new_lock_order(self) -> None:
        order = LockOrder()
        self.budgets.lock_order = order
        self.events.lock_order = order

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._end()  # rolls back whatever was not committed

    async def save_with_event(
        self, before: BudgetRecord, after: BudgetState, company_id: str, event: BudgetEvent, at: datetime
    ) -> BudgetRecord:
        """A decision on a budget: its state saved (`budgets.save`, compare-and-set on the version) and its
        event appended (`events.append`), in one statement where the database allows. Returns the budget as
        now stored."""
        saved = await self.budgets.save(before, after)
        await self.events.append(company_id, event, at)
        return saved

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    async def commit(self) -> None:
        await self._commit()
        self.committed = True
        self._new_lock_order()  # a commit releases every lock
        for company_id in sorted(self.events.companies_written):
            self._on_events(company_id)
        self.events.companies_written.clear()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            result = callback()
            if result is not None:
                await result

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _commit(self) -> None: ...

    @abc.abstractmethod
    async def _end(self) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractUnitOfWork]
