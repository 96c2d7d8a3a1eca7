"""The embedded ERP: a Job Cost ledger in our own database, so the workflow runs with nothing else installed.

It behaves like an external ERP would: its own transactions, its own ids, and de-duplication on the export
id, so an export that is retried after a crash never writes an entry twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.export import Capabilities
from erp.base import (
    POSTING_TOTALS_HELP,
    REQUIRE_POSTING_TOTALS,
    ConnectorError,
    ExportBatch,
    ExportReceipt,
    FormatViolation,
    JobSpec,
    flag_option,
)
from persistence.database import Database
from persistence.ids import new_id
from persistence.tables import erp_job_cost_codes, erp_job_cost_entries, erp_jobs


class EmbeddedConnector:
    name = "embedded"
    display_name = "Embedded ERP ledger"
    detects_posting = True
    options = {REQUIRE_POSTING_TOTALS: POSTING_TOTALS_HELP + " (default false: the ledger shows the posting)"}
    capabilities = Capabilities(
        exports_budget=True,
        exports_modifications=True,
        supports_sub_jobs=True,
        requires_posting=True,
        exports_quantities=True,
    )

    @staticmethod
    def reference(export_id: str) -> str:
        """The ledger batch (and erpReference) of one export."""
        return f"JC-{export_id}"

    def __init__(self, options: dict[str, Any] | None = None, *, db: Database) -> None:
        self._db = db
        # The only option: posting is seen in the ledger, so an admin's confirmation need not carry totals.
        self.requires_posting_totals = flag_option(dict(options or {}), REQUIRE_POSTING_TOTALS, False)

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        """The ledger stores every value the API accepts (codes, sub jobs, amounts up to 13 digits): nothing to
        report."""
        return []

    async def check_settings(self) -> None:
        return None  # the ledger lives in our own database: nothing to reach

    async def sync_job(self, job: JobSpec) -> str:
        async with self._db.unit_of_work() as uow:
            conn = uow.connection
            job_id = (
                await conn.execute(select(erp_jobs.c.id).where(erp_jobs.c.project_id == job.project_id))
            ).scalar_one_or_none()
            if job_id is None:
                job_id = new_id("ErpJob")
                await conn.execute(
                    insert(erp_jobs).values(
                        id=job_id,
                        company_id=job.company_id,
                        project_id=job.project_id,
                        job_number=job.number,
                        name=job.name,
                    )
                )
            known = {
                (row[0], row[1])
                for row in (
                    await conn.execute(
                        select(erp_job_cost_codes.c.cost_code, erp_job_cost_codes.c.cost_type).where(
                            erp_job_cost_codes.c.job_id == job_id
                        )
                    )
                ).all()
            }
            missing = [
                {"job_id": job_id, "cost_code": code, "cost_type": ctype}
                for code, ctype in job.pairs
                if (code, ctype) not in known
            ]
            if missing:
                await conn.execute(insert(erp_job_cost_codes), missing)
            await uow.commit()
        return f"JOB-{job.number}"

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        reference = self.reference(batch.export_id)
        async with self._db.unit_of_work() as uow:
            conn = uow.connection
            job_id = (
                await conn.execute(
                    select(erp_jobs.c.id).where(
                        erp_jobs.c.company_id == batch.company_id, erp_jobs.c.job_number == batch.job_number
                    )
                )
            ).scalar_one_or_none()
            if job_id is None:  # the project was synced through another connector, or never
                raise ConnectorError(
                    f"job {batch.job_number} is not in the ERP: sync the project to the ERP (syncProjectToERP), "
                    "then retry the export"
                )
            already = set(
                (
                    await conn.execute(
                        select(erp_job_cost_entries.c.source_entry_id).where(erp_job_cost_entries.c.batch == reference)
                    )
                ).scalars()
            )
            rows = [
                {
                    "id": new_id("ErpJobCostEntry"),
                    "job_id": job_id,
                    "batch": reference,
                    "source_entry_id": item.entry_id,
                    "cost_code": item.cost_code,
                    "cost_type": item.cost_type,
                    "sub_job": item.sub_job,
                    "kind": item.kind,
                    "amount": item.amount,
                }
                for item in batch.items
                if item.entry_id not in already
            ]
            if rows:
                await conn.execute(insert(erp_job_cost_entries), rows)
            await uow.commit()
        return ExportReceipt(erp_reference=reference)

    async def posted(self, export_id: str) -> bool | None:
        """Posted once an accountant posted every entry of the batch in Job Cost (`budgetbridge erp post`)."""
        async with self._db.read() as conn:
            total, unposted = (
                await conn.execute(
                    select(func.count(), func.count().filter(erp_job_cost_entries.c.posted.is_(False))).where(
                        erp_job_cost_entries.c.batch == self.reference(export_id)
                    )
                )
            ).one()
        return bool(total) and unposted == 0

    async def mark_posted(self, export_id: str) -> None:
        async with self._db.unit_of_work() as uow:
            await post_batch(uow.connection, export_id)
            await uow.commit()


async def post_batch(conn: AsyncConnection, export_id: str) -> int:
    """Post the export's entries in the ledger, as an accountant posts in Job Cost (`mark_posted`, and
    `budgetbridge erp post` in the caller's transaction). Returns how many were not posted yet."""
    result = await conn.execute(
        update(erp_job_cost_entries)
        .where(
            erp_job_cost_entries.c.batch == EmbeddedConnector.reference(export_id),
            erp_job_cost_entries.c.posted.is_(False),
        )
        .values(posted=True, posted_at=datetime.now(UTC))
    )
    return int(result.rowcount)
