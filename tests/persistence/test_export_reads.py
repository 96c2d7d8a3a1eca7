"""The export pipeline's reads (persistence.export_reads) on both engines: the batch a connector sees, the
requests whose posting a connector may detect, and the cheap overdue-callback check."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import update

from persistence import tables as t
from persistence.database import Database
from persistence.export_reads import PostingCheck, SqlExportReads
from tests.resolvers.export_seed import T0, seed_exporting

TODAY = date(2026, 3, 2)


async def test_the_batch_carries_every_entry_in_line_order_with_its_line(engine_db: Database) -> None:
    seeded = await seed_exporting(engine_db, settings={"k": "v"})
    loaded = await SqlExportReads(engine_db).export_batch(seeded.request_id, TODAY)

    assert loaded is not None
    assert (loaded.company.id, loaded.company.erp_connector, loaded.company.erp_settings) == (
        seeded.company_id,
        "scripted",
        {"k": "v"},
    )
    batch = loaded.batch
    assert (batch.export_id, batch.company_id, batch.request_id, batch.request_sequence, batch.request_kind) == (
        seeded.export_id,
        seeded.company_id,
        seeded.request_id,
        2,
        "UPDATE_BUDGET",
    )
    assert (batch.erp_job_id, batch.job_number, batch.job_name, batch.export_date) == (
        "JOB-7",
        f"P-{seeded.company_id[-6:]}",
        "Riverside MOB",
        TODAY,
    )
    first, modification, second = batch.items
    # Ordered by line position, a line's original before its modifications.
    assert [i.entry_id for i in batch.items] == list(seeded.entry_ids)
    assert (first.line_item_id, first.cost_code, first.cost_code_description, first.cost_type, first.sub_job) == (
        seeded.line_ids[0],
        "03-300",
        "Concrete",
        "L",
        "BLDG-A",
    )
    assert (first.kind, first.amount, first.quantity, first.unit_of_measure, first.unit_cost) == (
        "ORIGINAL_BUDGET",
        Decimal("125000.00"),
        Decimal("1500.0000"),
        "HR",
        Decimal("83.3333"),
    )
    assert (first.is_new_line, first.modification_number, first.description) == (True, None, None)
    # A modification is never "new": quantities travel with the line's original only.
    assert (modification.kind, modification.amount, modification.modification_number) == (
        "BUDGET_MODIFICATION",
        Decimal("5000.00"),
        1,
    )
    assert (modification.modification_notes, modification.is_new_line) == ("CO #1", False)
    assert (second.sub_job, second.description, second.is_new_line, second.quantity) == (
        None,  # '' in the table is no sub job
        "Steel, furnish & erect",
        False,
        None,
    )


async def test_no_batch_unless_the_request_is_exporting(engine_db: Database) -> None:
    reads = SqlExportReads(engine_db)
    for status in ("EXPORT_FAILED", "AWAITING_POSTING", "SYNCED"):
        seeded = await seed_exporting(engine_db, status=status)
        assert await reads.export_batch(seeded.request_id, TODAY) is None
    assert await reads.export_batch("req_unknown", TODAY) is None


async def test_awaiting_posting_only_for_the_connectors_that_can_see_it(engine_db: Database) -> None:
    reads = SqlExportReads(engine_db)
    waiting = await seed_exporting(engine_db, status="AWAITING_POSTING", settings={"a": 1})
    await seed_exporting(engine_db, status="EXPORTING")
    await seed_exporting(engine_db, connector="webhook", status="AWAITING_POSTING")

    found = await reads.awaiting_posting(["scripted", "embedded"], waiting.company_id)

    assert found == [PostingCheck(waiting.request_id, waiting.export_id, waiting.company_id, "scripted", {"a": 1})]
    everyone = await reads.awaiting_posting(["scripted"])
    assert waiting.request_id in {c.id for c in everyone}
    assert all(c.erp_connector == "scripted" for c in everyone)
    assert await reads.awaiting_posting([], waiting.company_id) == []


async def test_awaiting_posting_oldest_export_first_up_to_the_limit(engine_db: Database) -> None:
    reads = SqlExportReads(engine_db)
    older = await seed_exporting(engine_db, status="AWAITING_POSTING")
    newer = await seed_exporting(engine_db, status="AWAITING_POSTING")
    async with engine_db.engine.begin() as conn:
        for seeded, exported_at in ((newer, T0 + timedelta(hours=1)), (older, T0)):
            await conn.execute(
                update(t.erp_requests).where(t.erp_requests.c.id == seeded.request_id).values(exported_at=exported_at)
            )
    ids = [c.id for c in await reads.awaiting_posting(["scripted"], limit=500)]
    assert ids.index(older.request_id) < ids.index(newer.request_id)
    assert len(await reads.awaiting_posting(["scripted"], limit=1)) == 1


async def test_an_overdue_callback_is_seen_only_after_the_wait(engine_db: Database) -> None:
    reads = SqlExportReads(engine_db)
    seeded = await seed_exporting(engine_db, job_status="AWAITING_CALLBACK")
    queued = await seed_exporting(engine_db)
    wait = timedelta(hours=1)
    assert not await reads.any_overdue_callback(T0 + wait, wait, seeded.company_id)
    assert await reads.any_overdue_callback(T0 + wait + timedelta(seconds=1), wait, seeded.company_id)
    assert not await reads.any_overdue_callback(T0 + 2 * wait, wait, queued.company_id)  # no deferred export
