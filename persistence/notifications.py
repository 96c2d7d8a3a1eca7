"""The notification outbox and what deciding notifications reads, in SQL.

Claims work like the export queue's (persistence.job_queue): `FOR UPDATE SKIP LOCKED` on PostgreSQL plus a
compare-and-set that also makes SQLite safe, so several workers never deliver one row together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.notifications import NotificationKind
from persistence import queries, revisions
from persistence.notification_records import ChatWebhookRecord, NotificationRecord, RecipientRecord
from persistence.records import ErpRequestRecord, RequestLineRecord
from persistence.repositories import execute
from persistence.tables import chat_webhooks, erp_requests, notification_outbox, notification_preferences, users
from persistence.unit_of_work import NewNotification, NotificationContext, NotificationOutbox, OutboxStatus

_CHUNK = 500
EVERY_KIND = frozenset(kind.value for kind in NotificationKind)


class SqlNotificationOutbox(NotificationOutbox):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_many(self, rows: Sequence[NewNotification]) -> None:
        if not rows:
            return
        values = [
            {
                **asdict(row),
                "payload": dict(row.payload),
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": row.created_at,
                "updated_at": row.created_at,
            }
            for row in rows
        ]
        await execute(self._conn, insert(notification_outbox), values)

    async def taken_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            stmt = select(notification_outbox.c.dedupe_key).where(notification_outbox.c.dedupe_key.in_(chunk))
            found |= set((await self._conn.execute(stmt)).scalars())
        return found

    async def claim(
        self, now: datetime, lease: timedelta, company_id: str | None = None
    ) -> NotificationRecord | None:
        t = notification_outbox
        due = or_(
            (t.c.status == OutboxStatus.PENDING.value) & (t.c.next_attempt_at <= now),
            (t.c.status == OutboxStatus.SENDING.value) & (t.c.lease_until < now),
        )
        stmt = select(t).where(due).order_by(t.c.next_attempt_at, t.c.id).limit(1)
        if company_id is not None:
            stmt = stmt.where(t.c.company_id == company_id)
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = (await self._conn.execute(stmt)).first()
        if row is None:
            return None
        found = NotificationRecord.of(row)
        changes = {
            "status": OutboxStatus.SENDING.value,
            "attempts": found.attempts + 1,
            "lease_until": now + lease,
            "updated_at": now,
        }
        result = await execute(
            self._conn,
            update(t)
            .where(t.c.id == found.id, t.c.status == found.status, t.c.updated_at == found.updated_at)
            .values(**changes),
        )
        if result.rowcount != 1:
            return None  # another worker won it (SQLite has no row locks)
        return NotificationRecord(**{**asdict(found), **changes})

    async def get(self, notification_id: str) -> NotificationRecord | None:
        stmt = select(notification_outbox).where(notification_outbox.c.id == notification_id)
        row = (await self._conn.execute(stmt)).first()
        return NotificationRecord.of(row) if row is not None else None

    async def hand_over(self, notification_id: str, at: datetime, message_id: str | None) -> None:
        t = notification_outbox
        values: dict[str, Any] = {"handed_over_at": at, "updated_at": at}
        if message_id is not None:
            current = (await self._conn.execute(select(t.c.message_id).where(t.c.id == notification_id))).scalar()
            values["message_id"] = current or message_id
        await execute(self._conn, update(t).where(t.c.id == notification_id).values(**values))

    async def finish(self, notification_id: str, status: OutboxStatus, at: datetime, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status.value, "lease_until": None, "updated_at": at}
        if status is OutboxStatus.SENT:
            values["sent_at"] = at
        if error is not None:
            values["last_error"] = error
        t = notification_outbox
        await execute(self._conn, update(t).where(t.c.id == notification_id).values(**values))

    async def retry(self, notification_id: str, at: datetime, next_attempt_at: datetime, error: str) -> None:
        t = notification_outbox
        await execute(
            self._conn,
            update(t)
            .where(t.c.id == notification_id)
            .values(
                status=OutboxStatus.PENDING.value,
                lease_until=None,
                handed_over_at=None,
                next_attempt_at=next_attempt_at,
                last_error=error,
                updated_at=at,
            ),
        )

    async def close_due(
        self, now: datetime, channel: str, status: OutboxStatus, reason: str, company_id: str | None = None
    ) -> int:
        t = notification_outbox
        stmt = update(t).where(
            t.c.status == OutboxStatus.PENDING.value, t.c.channel == channel, t.c.next_attempt_at <= now
        )
        if company_id is not None:
            stmt = stmt.where(t.c.company_id == company_id)
        result = await execute(self._conn, stmt.values(status=status.value, last_error=reason, updated_at=now))
        return int(result.rowcount)

    async def of_company(self, company_id: str) -> list[NotificationRecord]:
        t = notification_outbox
        stmt = select(t).where(t.c.company_id == company_id).order_by(t.c.created_at, t.c.id)
        return [NotificationRecord.of(r) for r in await self._conn.execute(stmt)]


class SqlNotificationContext(NotificationContext):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def people(self, company_id: str) -> list[RecipientRecord]:
        # A disabled account is told nothing: its mail may be read by someone who no longer should.
        stmt = (
            select(users)
            .where(users.c.company_id == company_id, users.c.disabled_at.is_(None))
            .order_by(users.c.created_at, users.c.id)
        )
        rows = (await self._conn.execute(stmt)).all()
        off = await self._opted_out([r.id for r in rows])
        # An API token's service principal is named (a sender's name) but has no mailbox: every kind is off.
        return [
            RecipientRecord.of(
                {**r._mapping, "opted_out": EVERY_KIND if r.kind == "service" else off.get(r.id, frozenset())}
            )
            for r in rows
        ]

    async def _opted_out(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        p = notification_preferences
        found: dict[str, set[str]] = {}
        for start in range(0, len(user_ids), _CHUNK):
            chunk = list(user_ids[start : start + _CHUNK])
            stmt = select(p.c.user_id, p.c.kind).where(p.c.user_id.in_(chunk), p.c.enabled.is_(False))
            for row in await self._conn.execute(stmt):
                found.setdefault(row.user_id, set()).add(row.kind)
        return {user_id: frozenset(kinds) for user_id, kinds in found.items()}

    async def opted_out(self, user_id: str) -> frozenset[str]:
        return (await self._opted_out([user_id])).get(user_id, frozenset())

    async def set_preferences(self, user_id: str, changes: Mapping[str, bool]) -> None:
        if not changes:
            return
        p = notification_preferences
        await execute(self._conn, delete(p).where(p.c.user_id == user_id, p.c.kind.in_(list(changes))))
        rows = [{"user_id": user_id, "kind": kind, "enabled": bool(on)} for kind, on in changes.items()]
        await execute(self._conn, insert(p), rows)
        await execute(self._conn, revisions.of_users_company(user_id))  # NotificationSettings is queryable

    async def chat_webhook(self, company_id: str) -> ChatWebhookRecord | None:
        row = (await self._conn.execute(select(chat_webhooks).where(chat_webhooks.c.company_id == company_id))).first()
        return ChatWebhookRecord.of(row) if row is not None else None

    async def set_chat_webhook(
        self, company_id: str, url: str | None, allow_private_network: bool, at: datetime
    ) -> None:
        await execute(self._conn, delete(chat_webhooks).where(chat_webhooks.c.company_id == company_id))
        if url is not None:
            await execute(
                self._conn,
                insert(chat_webhooks).values(
                    company_id=company_id, url=url, allow_private_network=allow_private_network, updated_at=at
                ),
            )

    async def request_lines(self, request_id: str) -> list[RequestLineRecord]:
        return await queries.lines_of_requests(self._conn, [request_id])

    async def requests_in(
        self, statuses: Sequence[str], company_id: str | None = None, exported_before: datetime | None = None
    ) -> list[ErpRequestRecord]:
        r = erp_requests
        stmt = select(r).where(r.c.status.in_(list(statuses)))
        if company_id is not None:
            stmt = stmt.where(r.c.company_id == company_id)
        if exported_before is not None:
            stmt = stmt.where(r.c.exported_at < exported_before)
        stmt = stmt.order_by(r.c.sent_at, r.c.id)
        return [ErpRequestRecord.of(row) for row in await self._conn.execute(stmt)]
