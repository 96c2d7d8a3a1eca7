"""Frozen records of the notification tables (see persistence.records for what a record is)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from persistence.records import Record


@dataclass(frozen=True, slots=True)
class NotificationRecord(Record):
    """A row of the notification outbox."""

    id: str
    company_id: str
    kind: str
    channel: str
    recipient_id: str | None
    address: str | None
    erp_request_id: str | None
    dedupe_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    handed_over_at: datetime | None
    message_id: str | None
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RecipientRecord(Record):
    """A user of a company with the notification kinds they turned off."""

    id: str
    company_id: str
    email: str
    name: str
    is_accounting_approver: bool
    erp_permission: str
    opted_out: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChatWebhookRecord(Record):
    company_id: str
    url: str
    allow_private_network: bool
    updated_at: datetime
