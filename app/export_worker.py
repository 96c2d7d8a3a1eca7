"""Runs accepted exports in the background of the server.

The queue is the database itself: a request in EXPORTING is a job. ACCEPT commits that status, then kicks
this worker; a periodic poll picks up anything a kick missed (a restart, another process's accept), so a
crash between the accept and the export loses nothing. Connectors de-duplicate on the request's export id,
so running the same job twice never writes an entry twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from erp.base import ConnectorError
from erp.registry import ConnectorRegistry
from persistence.database import Database
from resolvers import mutations
from resolvers.context import utc_now

log = logging.getLogger("budgetbridge.exports")


class ExportWorker:
    def __init__(
        self,
        db: Database,
        connectors: ConnectorRegistry,
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 30.0,
        events_committed: Callable[[str], None] = lambda company_id: None,
    ) -> None:
        self._db = db
        self._connectors = connectors
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self._events_committed = events_committed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="export-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # an outage must not kill the worker; the next poll tries again
                log.exception("export pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def run_once(self) -> int:
        async with self._db.read() as conn:
            request_ids = await mutations.exporting_request_ids(conn)
        for request_id in request_ids:
            await self.export_one(request_id)
        return len(request_ids)

    async def export_one(self, request_id: str) -> None:
        async with self._db.read() as conn:
            loaded = await mutations.export_batch(conn, request_id)
        if loaded is None:
            return
        _request, company, batch = loaded
        connector = self._connectors.get(company.erp_connector)
        reference: str | None = None
        failure: str | None = None
        if connector is None:
            failure = "the company has no ERP connection"
        else:
            try:
                receipt = await asyncio.wait_for(connector.export(batch), self._timeout)
                reference = receipt.erp_reference
            except ConnectorError as exc:
                failure = str(exc) or "the ERP refused the export"
            except TimeoutError:
                failure = f"the ERP did not answer within {self._timeout:g} s"
            except Exception as exc:
                log.exception("connector %s failed on %s", company.erp_connector, request_id)
                failure = f"the ERP connector failed ({type(exc).__name__})"
        requires_posting = connector.capabilities.requires_posting if connector else True
        async with self._db.unit_of_work() as uow:
            status = await mutations.record_export_result(
                uow.conn, request_id, at=utc_now(), erp_reference=reference, failure=failure,
                requires_posting=requires_posting,
            )
            await uow.commit()
        if status is not None:
            log.info("export %s -> %s", request_id, status.value)
            self._events_committed(company.id)
