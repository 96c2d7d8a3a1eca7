"""Migration 0004 backfills each request's total original budget from its lines, on both engines, and goes
down and up again cleanly."""

from __future__ import annotations

from decimal import Decimal

from persistence.database import Database
from persistence.migrate import is_current
from persistence.reads import ReadStore
from tests.erp.workflow import SEND, add_line, locked_with_one_line
from tests.persistence.migrating import migration_to
from tests.support import make_services, make_tenant


async def test_totals_are_backfilled_from_the_request_lines(engine_db: Database) -> None:
    tenant = await make_tenant(make_services(engine_db))
    await add_line(tenant, "05-120", "M", "2500.25")
    await locked_with_one_line(tenant)  # adds 1.00 more
    sent = await tenant.ok("admin", SEND, b=tenant.budget_id)
    request_id = sent["sendToERP"]["erpRequest"]["id"]
    reads = ReadStore(engine_db)
    (written,) = await reads.requests([request_id], tenant.company_id)
    assert written.total_original_budget == Decimal("2501.25")

    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("0003", down=True))
    assert not await is_current(engine_db)
    async with engine_db.engine.begin() as conn:
        await conn.run_sync(migration_to("head", down=False))
    assert await is_current(engine_db)
    (backfilled,) = await reads.requests([request_id], tenant.company_id)
    assert backfilled == written
