"""Who is told what: the pure decisions of domain.notifications, and how amounts read in a message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from domain import events as ev
from domain.money import format_money
from domain.notifications import (
    Channel,
    Content,
    Notification,
    NotificationKind,
    NotificationSettings,
    Person,
    RequestFacts,
    digest_day,
    digests,
    for_event,
    kind_of,
    reminder_period,
    reminders,
    request_totals,
)
from domain.permissions import PermissionLevel
from domain.status import ExportStatus

K = NotificationKind
S = ExportStatus
T0 = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)

SENDER = Person("usr_pm", "Pat Morgan", "pm@example.com")
APPROVER = Person("usr_ap", "Alex Rivera", "ap@example.com", True, PermissionLevel.STANDARD)
ADMIN_APPROVER = Person("usr_ad", "Ada Admin", "ad@example.com", True, PermissionLevel.ADMIN)
READ_ONLY_APPROVER = Person("usr_ro", "Rita Reader", "ro@example.com", True, PermissionLevel.READ_ONLY)
ERP_ADMIN = Person("usr_ea", "Erin ERP", "ea@example.com", False, PermissionLevel.ADMIN)
PEOPLE = [SENDER, APPROVER, ADMIN_APPROVER, READ_ONLY_APPROVER, ERP_ADMIN]


def facts(status: ExportStatus = S.PENDING_ACCEPTANCE, request_id: str = "req_1", **values: object) -> RequestFacts:
    base = RequestFacts(
        request_id=request_id,
        budget_id="bgt_1",
        company_name="Summit Ridge Builders",
        currency="USD",
        project_name="Riverside Medical Office Building",
        project_number="2026-014",
        sender_name="Pat Morgan",
        kind="CREATE_BUDGET",
        sequence=1,
        status=status,
        line_count=28,
        total_original=Decimal("1238950.00"),
        total_changes=Decimal("-2500.00"),
        sent_at=T0,
    )
    return replace(base, **values)  # type: ignore[arg-type]


def event(kind: type[ev.BudgetEvent], status: ExportStatus, **values: object) -> ev.BudgetEvent:
    return kind(project_id="prj_1", budget_id="bgt_1", erp_request_id="req_1", status=status, **values)  # type: ignore[arg-type]


def recipients(found: list[Notification]) -> list[str | None]:
    return [n.recipient.user_id if n.recipient else None for n in found]


# --- amounts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount,currency,text",
    [
        ("1238950", "USD", "$1,238,950.00"),
        ("1238950.5", "usd", "$1,238,950.50"),
        ("-2500.00", "USD", "-$2,500.00"),
        ("0.00", "USD", "$0.00"),
        ("-0.00", "USD", "$0.00"),
        ("12.5", "GBP", "£12.50"),
        ("1000", "EUR", "€1,000.00"),
        ("1000", "CAD", "CA$1,000.00"),
        ("1238950.00", "CHF", "1,238,950.00 CHF"),
        ("-75.25", "MXN", "-75.25 MXN"),
        ("9999999999999.99", "USD", "$9,999,999,999,999.99"),
    ],
)
def test_amounts_read_in_the_company_currency_exactly(amount: str, currency: str, text: str) -> None:
    assert format_money(Decimal(amount), currency) == text


def test_request_totals_are_exact_sums() -> None:
    lines = [(Decimal("0.10"), Decimal("0.20"))] * 3 + [(Decimal("1000000.00"), Decimal("-0.30"))]
    assert request_totals(lines) == (4, Decimal("1000000.30"), Decimal("0.30"))
    assert request_totals([]) == (0, Decimal("0.00"), Decimal("0.00"))


# --- events -> notifications ---------------------------------------------------------------------------------


def test_which_events_notify() -> None:
    assert kind_of(event(ev.BudgetSentToErp, S.PENDING_ACCEPTANCE)) is K.REQUEST_ARRIVED
    assert kind_of(event(ev.ExportRejected, S.REJECTED)) is K.REQUEST_REJECTED
    assert kind_of(event(ev.ExportFailed, S.EXPORT_FAILED)) is K.EXPORT_FAILED
    assert kind_of(event(ev.ExportPosted, S.SYNCED)) is K.REQUEST_SYNCED
    assert kind_of(event(ev.JobCostPosted, S.SYNCED)) is K.REQUEST_SYNCED
    for quiet in (ev.ExportAccepted, ev.ExportWritten, ev.BudgetRetrieved, ev.ExportRetried):
        assert kind_of(event(quiet, S.EXPORTING)) is None
    assert kind_of(ev.BudgetLocked(project_id="p", budget_id="b", status=S.NOT_SENT)) is None


def test_an_arrival_goes_to_every_approver_who_may_decide_and_to_the_chat() -> None:
    found = for_event(event(ev.BudgetSentToErp, S.PENDING_ACCEPTANCE), 7, facts(), SENDER, PEOPLE, chat=True)
    assert recipients(found) == ["usr_ap", "usr_ad", None]
    assert [n.channel for n in found] == [Channel.EMAIL, Channel.EMAIL, Channel.CHAT]
    assert {n.kind for n in found} == {K.REQUEST_ARRIVED}
    assert [n.key for n in found] == [
        "REQUEST_ARRIVED:req_1:7:usr_ap",
        "REQUEST_ARRIVED:req_1:7:usr_ad",
        "REQUEST_ARRIVED:req_1:7:chat",
    ]
    assert all(n.request == facts() for n in found)


def test_a_rejection_goes_to_the_sender_with_the_reason_and_who_rejected() -> None:
    rejected = event(ev.ExportRejected, S.REJECTED, reason="Split 03-300 by building", actor_id="usr_ap")
    found = for_event(rejected, 8, facts(S.REJECTED), SENDER, PEOPLE, chat=False)
    assert recipients(found) == ["usr_pm"]
    assert (found[0].reason, found[0].actor_name) == ("Split 03-300 by building", "Alex Rivera")


def test_a_failure_goes_to_the_sender_and_the_approvers_once_each() -> None:
    failed = event(ev.ExportFailed, S.EXPORT_FAILED, reason="the ERP could not be reached")
    found = for_event(failed, 9, facts(S.EXPORT_FAILED), APPROVER, PEOPLE, chat=False)  # the sender approves too
    assert recipients(found) == ["usr_ap", "usr_ad"]
    assert {n.reason for n in found} == {"the ERP could not be reached"}
    others = for_event(failed, 9, facts(S.EXPORT_FAILED), SENDER, PEOPLE, chat=True)
    assert recipients(others) == ["usr_pm", "usr_ap", "usr_ad", None]


def test_synced_goes_to_the_sender() -> None:
    found = for_event(event(ev.JobCostPosted, S.SYNCED), 10, facts(S.SYNCED), SENDER, PEOPLE, chat=False)
    assert recipients(found) == ["usr_pm"]
    assert found[0].reason is None


def test_a_person_who_turned_a_kind_off_gets_none_of_it_and_the_rest_still_does() -> None:
    quiet = replace(APPROVER, opted_out=frozenset({K.REQUEST_ARRIVED}))
    people = [SENDER, quiet, ADMIN_APPROVER]
    arrived = for_event(event(ev.BudgetSentToErp, S.PENDING_ACCEPTANCE), 1, facts(), SENDER, people, chat=False)
    assert recipients(arrived) == ["usr_ad"]
    failed = for_event(event(ev.ExportFailed, S.EXPORT_FAILED), 2, facts(), SENDER, people, chat=False)
    assert recipients(failed) == ["usr_pm", "usr_ap", "usr_ad"]  # only REQUEST_ARRIVED was turned off
    silent_sender = replace(SENDER, opted_out=frozenset({K.REQUEST_REJECTED}))
    assert for_event(event(ev.ExportRejected, S.REJECTED), 3, facts(), silent_sender, people, chat=False) == []


def test_nobody_without_an_email_address_and_no_sender_no_message() -> None:
    nowhere = replace(APPROVER, email="")
    found = for_event(event(ev.BudgetSentToErp, S.PENDING_ACCEPTANCE), 1, facts(), SENDER, [nowhere], chat=False)
    assert found == []
    no_sender = for_event(event(ev.ExportRejected, S.REJECTED), 1, facts(), None, PEOPLE, chat=True)
    assert [n.channel for n in no_sender] == [Channel.CHAT]


# --- reminders ---------------------------------------------------------------------------------------------


def test_reminder_periods() -> None:
    every = timedelta(hours=24)
    assert reminder_period(T0, T0 + timedelta(hours=23, minutes=59), every) == 0
    assert reminder_period(T0, T0 + timedelta(hours=24), every) == 1
    assert reminder_period(T0, T0 + timedelta(hours=71), every) == 2
    assert reminder_period(T0, T0 - timedelta(hours=1), every) == 0
    assert reminder_period(T0, T0 + timedelta(days=9), timedelta(0)) == 0


def test_a_reminder_once_per_request_and_period_to_the_approvers_and_the_chat() -> None:
    every = timedelta(hours=24)
    awaiting = facts(S.AWAITING_POSTING, exported_at=T0)
    assert reminders(T0 + timedelta(hours=23), every, [awaiting], PEOPLE, chat=True) == []
    first = reminders(T0 + timedelta(hours=25), every, [awaiting], PEOPLE, chat=True)
    assert recipients(first) == ["usr_ap", "usr_ad", None]
    assert first[0].key == "POSTING_REMINDER:req_1:1:usr_ap"
    assert first[0].waiting_since == timedelta(hours=25)
    same_period = reminders(T0 + timedelta(hours=47), every, [awaiting], PEOPLE, chat=True)
    assert [n.key for n in same_period] == [n.key for n in first]  # the outbox keeps only the first
    next_period = reminders(T0 + timedelta(hours=49), every, [awaiting], PEOPLE, chat=True)
    assert next_period[0].key == "POSTING_REMINDER:req_1:2:usr_ap"


def test_only_requests_still_awaiting_posting_are_reminded() -> None:
    later = T0 + timedelta(days=3)
    synced = facts(S.SYNCED, exported_at=T0)
    never_exported = facts(S.AWAITING_POSTING, exported_at=None)
    assert reminders(later, timedelta(hours=24), [synced, never_exported], PEOPLE, chat=True) == []


# --- digests -----------------------------------------------------------------------------------------------


def test_the_digest_is_due_from_its_hour_in_its_zone() -> None:
    chicago = ZoneInfo("America/Chicago")  # UTC-6 in November
    assert digest_day(datetime(2026, 11, 28, 12, 59, tzinfo=UTC), 7, chicago) is None  # 06:59 there
    assert digest_day(datetime(2026, 11, 28, 13, 0, tzinfo=UTC), 7, chicago) == date(2026, 11, 28)
    assert digest_day(datetime(2026, 11, 29, 3, 0, tzinfo=UTC), 7, chicago) == date(2026, 11, 28)  # 21:00 there
    assert digest_day(datetime(2026, 11, 28, 0, 0, tzinfo=UTC), 0, UTC) == date(2026, 11, 28)


def test_a_digest_per_approver_of_what_waits_in_order() -> None:
    pending = facts(S.PENDING_ACCEPTANCE, "req_p", sent_at=T0 + timedelta(hours=2))
    failed = facts(S.EXPORT_FAILED, "req_f")
    awaiting = facts(S.AWAITING_POSTING, "req_a", exported_at=T0)
    older_pending = facts(S.PENDING_ACCEPTANCE, "req_o")
    done = facts(S.SYNCED, "req_s")
    day = date(2026, 11, 28)
    found = digests(day, [awaiting, done, pending, failed, older_pending], PEOPLE)
    assert recipients(found) == ["usr_ap", "usr_ad"]  # no chat: digests are personal
    assert [r.request_id for r in found[0].waiting] == ["req_o", "req_p", "req_f", "req_a"]
    assert found[0].key == "DAILY_DIGEST:2026-11-28:usr_ap" and found[0].day == day


def test_no_digest_when_nothing_waits_or_nobody_wants_one() -> None:
    day = date(2026, 11, 28)
    assert digests(day, [], PEOPLE) == []
    assert digests(day, [facts(S.SYNCED), facts(S.REJECTED), facts(S.RETRIEVED)], PEOPLE) == []
    nobody = [replace(p, opted_out=frozenset({K.DAILY_DIGEST})) for p in PEOPLE]
    assert digests(day, [facts()], nobody) == []


# --- what a stored notification says, and settings -------------------------------------------------------------


def test_a_notification_reads_back_from_its_payload_exactly() -> None:
    awaiting = facts(S.AWAITING_POSTING, exported_at=T0, erp_reference="JC-0042")
    reminder = reminders(T0 + timedelta(hours=30), timedelta(hours=24), [awaiting], PEOPLE, chat=False)[0]
    content = Content.of(reminder.kind, reminder.as_payload())
    assert content.request == awaiting
    assert content.waiting_since == timedelta(hours=30)
    assert content.recipient_name == "Alex Rivera"
    digest = digests(date(2026, 11, 28), [facts(), awaiting], PEOPLE)[0]
    back = Content.of(digest.kind, digest.as_payload())
    assert back.waiting == (facts(), awaiting) and back.day == date(2026, 11, 28)
    rejected = for_event(event(ev.ExportRejected, S.REJECTED, reason="No.", actor_id="usr_ap"), 1, facts(), SENDER,
                         PEOPLE, chat=False)[0]
    assert Content.of(rejected.kind, rejected.as_payload()).reason == "No."
    assert Content.of(rejected.kind, rejected.as_payload()).actor_name == "Alex Rivera"


def test_settings_are_on_unless_turned_off() -> None:
    settings = NotificationSettings()
    assert all(settings.enabled(k) for k in K)
    off = settings.changed({K.DAILY_DIGEST: False, K.REQUEST_ARRIVED: False})
    assert off.opted_out == {K.DAILY_DIGEST, K.REQUEST_ARRIVED}
    back = off.changed({K.DAILY_DIGEST: True})
    assert back.opted_out == {K.REQUEST_ARRIVED}
