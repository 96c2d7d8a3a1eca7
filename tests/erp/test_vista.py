"""The Viewpoint Vista JC import-file connector against a real folder (tmp_path)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from domain.export import Capabilities
from erp.base import ConnectorConfigError, ConnectorError, JobSpec
from erp.registry import build_connector, connector_class, validate_options
from erp.vista import VistaCsvConnector
from tests.erp.fixtures.batches import (
    CREATE_ID,
    JOB,
    MODS_ONLY_ID,
    UPDATE_ID,
    VISTA_COST_TYPES,
    assert_same_records,
    batch,
    create_batch,
    item,
    mod,
    modifications_only_batch,
    rows,
    update_batch,
)

CREATE_FILE = f"{JOB}_{CREATE_ID}_JCOrigEst.csv"
UPDATE_ESTIMATES = f"{JOB}_{UPDATE_ID}_JCOrigEst.csv"
UPDATE_CHANGE_ORDER = f"{JOB}_{UPDATE_ID}_JCChangeOrder.csv"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "vista-drop"
    folder.mkdir()  # a drop folder exists before it is configured (checked when saved)
    return folder


@pytest.fixture
def connector(drop: Path) -> VistaCsvConnector:
    return VistaCsvConnector({"drop_folder": str(drop), "company_number": "7", "cost_type_map": VISTA_COST_TYPES})


def data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def read(path: Path) -> list[list[str]]:
    return rows(path.read_bytes().decode("utf-8"))


# --- identity and capabilities ----------------------------------------------------------------------


def test_name_and_capabilities(connector: VistaCsvConnector) -> None:
    assert connector.name == "vista-csv"
    assert connector.display_name == "Viewpoint Vista (JC import files)"
    assert connector.capabilities == Capabilities(
        exports_budget=True, exports_modifications=True, supports_sub_jobs=False, requires_posting=True,
        exports_quantities=True,
    )


def test_the_registry_builds_it(drop: Path) -> None:
    assert connector_class("vista-csv") is VistaCsvConnector
    built = build_connector("vista-csv", {"drop_folder": str(drop)}, db=None)  # type: ignore[arg-type]
    assert isinstance(built, VistaCsvConnector)
    assert built.company_number == 1
    assert built.cost_type_map == {}


# --- the files --------------------------------------------------------------------------------------


async def test_originals_only_write_only_the_original_estimates_file(connector: VistaCsvConnector, drop: Path) -> None:
    receipt = await connector.export(create_batch())

    assert receipt.erp_reference == CREATE_FILE
    assert data_files(drop) == [CREATE_FILE]
    assert_same_records(drop / CREATE_FILE, "vista_estimates.csv")
    raw = (drop / CREATE_FILE).read_bytes().decode("utf-8")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")


async def test_original_estimates_fields(connector: VistaCsvConnector, drop: Path) -> None:
    await connector.export(create_batch())
    header, footings, steel, painting, supervision = read(drop / CREATE_FILE)
    assert header == ["Job", "Phase", "Cost Type", "U/M", "Hours", "Units", "Unit Cost", "Cost"]
    assert footings == ["24-017", "03-300", "1", "CY", "0.00", "12.500", "120.00000", "1500.00"]
    assert steel == ["24-017", "05-120", "2", "LS", "0.00", "0.000", "0.00000", "2500.50"]  # no units: LS
    assert painting[7] == "0.00"  # the zero-amount new line goes out
    assert supervision[3:6] == ["HRS", "40.00", "40.000"]  # hours unit: Hours = Units


async def test_both_kinds_write_both_files(connector: VistaCsvConnector, drop: Path) -> None:
    receipt = await connector.export(update_batch())

    assert receipt.erp_reference == f"{UPDATE_ESTIMATES}; {UPDATE_CHANGE_ORDER}"
    assert data_files(drop) == sorted([UPDATE_ESTIMATES, UPDATE_CHANGE_ORDER])
    assert_same_records(drop / UPDATE_ESTIMATES, "vista_update_estimates.csv")
    assert_same_records(drop / UPDATE_CHANGE_ORDER, "vista_change_order.csv")


async def test_change_order_records(connector: VistaCsvConnector, drop: Path) -> None:
    await connector.export(update_batch())
    records = read(drop / UPDATE_CHANGE_ORDER)

    assert [r[0] for r in records] == ["HDR", "ITEM", "ITEMDTL", "ITEMDTL", "ITEM", "ITEMDTL"]
    header = records[0]
    assert header == ["HDR", "7", "24-017", "BB0002", "Budget modifications, BudgetBridge request 2", "07/01/2025"]
    items = [r for r in records if r[0] == "ITEM"]
    assert [r[4] for r in items] == ["3", "4"]  # one ITEM per modification number
    assert items[0][5] == 'Move steel savings to footings, per RFI "12"'
    details = [r for r in records if r[0] == "ITEMDTL"]
    moved = [r for r in details if r[4] == "3"]
    assert [(r[5], r[6], r[11]) for r in moved] == [("03-300", "1", "400.00"), ("05-120", "2", "-400.00")]
    assert sum(Decimal(r[11]) for r in moved) == 0
    assert all(r[8:11] == ["0.00", "0.000", "0.00000"] for r in details)  # modifications move money only


async def test_a_resend_after_an_original_amount_change_writes_the_new_total(
    connector: VistaCsvConnector, drop: Path
) -> None:
    # First export: footings 1500.00 (12.5 CY at 120.00). Then the original amount becomes 1250.00 (unit cost
    # 100.00): the re-send's entry is the change -250.00, and Vista's import replaces the estimate, so the row
    # carries the line's new total -- hours, units, unit cost and cost -- never the change.
    await connector.export(create_batch())
    assert read(drop / CREATE_FILE)[1] == ["24-017", "03-300", "1", "CY", "0.00", "12.500", "120.00000", "1500.00"]

    await connector.export(update_batch())

    assert_same_records(drop / UPDATE_ESTIMATES, "vista_update_estimates.csv")
    _, footings, new_line = read(drop / UPDATE_ESTIMATES)
    assert footings == ["24-017", "03-300", "1", "CY", "0.00", "12.500", "100.00000", "1250.00"]
    assert "-250.00" not in (drop / UPDATE_ESTIMATES).read_text(encoding="utf-8")
    assert new_line == ["24-017", "02-200", "5", "DAY", "0.00", "3.500", "0.00000", "0.00"]
    # Lines whose original amount did not change (steel, painting) are not re-written.
    assert [row[1] for row in read(drop / UPDATE_ESTIMATES)[1:]] == ["03-300", "02-200"]


async def test_a_changed_line_without_its_new_total_is_refused_before_any_write(
    connector: VistaCsvConnector, drop: Path
) -> None:
    delta_only = batch("bb-delta", 2, "UPDATE_BUDGET", date(2025, 7, 1), (item("e", "03-300", "L", "-250.00"),))
    with pytest.raises(ConnectorError, match="new total original amount") as caught:
        await connector.export(delta_only)
    assert caught.value.retryable is False
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger


async def test_modifications_only_write_only_the_change_order_file(connector: VistaCsvConnector, drop: Path) -> None:
    receipt = await connector.export(modifications_only_batch())
    name = f"{JOB}_{MODS_ONLY_ID}_JCChangeOrder.csv"
    assert receipt.erp_reference == name
    assert data_files(drop) == [name]
    assert read(drop / name) == [
        ["HDR", "7", "24-017", "BB0003", "Budget modifications, BudgetBridge request 3", "08/04/2025"],
        ["ITEM", "7", "24-017", "BB0003", "5", "Budget modification 5", ""],
        ["ITEMDTL", "7", "24-017", "BB0003", "5", "03-300", "1", "LS", "0.00", "0.000", "0.00000", "-75.00"],
        ["ITEMDTL", "7", "24-017", "BB0003", "5", "09-900", "3", "LS", "0.00", "0.000", "0.00000", "75.00"],
    ]


async def test_hours_rule_and_unit_cost_without_a_unit_cost(connector: VistaCsvConnector, drop: Path) -> None:
    lines = batch("bb-hours", 1, "CREATE_BUDGET", date(2025, 2, 3), (
        item("e1", "01-500", "L", "900.00", quantity=Decimal("12"), unit_of_measure="hrs"),
        item("e2", "01-510", "L", "100.00", quantity=Decimal("3"), unit_of_measure="HR"),
        item("e3", "03-300", "M", "1000.00", quantity=Decimal("8"), unit_of_measure="CY"),
    ))
    await connector.export(lines)
    _, hours, hour, cubic = read(drop / f"{JOB}_bb-hours_JCOrigEst.csv")
    assert hours[3:8] == ["hrs", "12.00", "12.000", "75.00000", "900.00"]
    assert hour[3:7] == ["HR", "3.00", "3.000", "33.33333"]  # Cost / Units, rounded to 5 places
    assert cubic[3:7] == ["CY", "0.00", "8.000", "125.00000"]


async def test_the_erp_job_id_is_the_job_column(connector: VistaCsvConnector, drop: Path) -> None:
    linked = dataclasses.replace(create_batch(export_id="bb-linked"), erp_job_id="VJ-24017")
    await connector.export(linked)
    assert {r[0] for r in read(drop / f"{JOB}_bb-linked_JCOrigEst.csv")[1:]} == {"VJ-24017"}


async def test_the_default_company_is_1(drop: Path) -> None:
    await VistaCsvConnector({"drop_folder": str(drop), "cost_type_map": VISTA_COST_TYPES}).export(
        modifications_only_batch()
    )
    records = read(drop / f"{JOB}_{MODS_ONLY_ID}_JCChangeOrder.csv")
    assert {r[1] for r in records} == {"1"}


# --- atomic and exactly once ------------------------------------------------------------------------


async def test_atomic_write_leaves_no_temp_files(connector: VistaCsvConnector, drop: Path) -> None:
    await connector.export(update_batch())
    everything = [name for _, _, names in os.walk(drop) for name in names]
    assert [name for name in everything if name.endswith(".tmp") or name.startswith(".")] == []
    assert data_files(drop) == sorted([UPDATE_ESTIMATES, UPDATE_CHANGE_ORDER])


async def test_a_retried_export_rewrites_nothing_and_returns_the_same_reference(
    connector: VistaCsvConnector, drop: Path
) -> None:
    first = await connector.export(update_batch())
    before = {n: ((drop / n).stat().st_ino, (drop / n).stat().st_mtime_ns, (drop / n).read_bytes())
              for n in data_files(drop)}

    again = await connector.export(dataclasses.replace(update_batch(), export_date=date(2025, 7, 9)))

    assert again == first
    assert {n: ((drop / n).stat().st_ino, (drop / n).stat().st_mtime_ns, (drop / n).read_bytes())
            for n in data_files(drop)} == before


async def test_a_retry_of_a_dropped_export_is_not_refused_after_the_options_changed(
    connector: VistaCsvConnector, drop: Path
) -> None:
    first = await connector.export(update_batch())
    unmapped = VistaCsvConnector({"drop_folder": str(drop), "company_number": "7"})  # cost_type_map removed since
    assert unmapped.validate(update_batch())  # a new export would be refused ...
    assert await unmapped.export(update_batch()) == first  # ... but this one was written: same files, no error


async def test_a_crash_between_the_two_files_completes_the_second_only(
    connector: VistaCsvConnector, drop: Path
) -> None:
    assert drop.is_dir()
    (drop / UPDATE_ESTIMATES).write_bytes(b"published before the crash\r\n")

    receipt = await connector.export(update_batch())

    assert receipt.erp_reference == f"{UPDATE_ESTIMATES}; {UPDATE_CHANGE_ORDER}"
    assert (drop / UPDATE_ESTIMATES).read_bytes() == b"published before the crash\r\n"
    assert_same_records(drop / UPDATE_CHANGE_ORDER, "vista_change_order.csv")


async def test_a_retry_after_the_files_were_uploaded_and_archived_writes_nothing(
    connector: VistaCsvConnector, drop: Path, tmp_path: Path
) -> None:
    first = await connector.export(update_batch())
    archive = tmp_path / "uploaded"
    archive.mkdir()
    for name in data_files(drop):
        (drop / name).rename(archive / name)

    assert await connector.export(update_batch()) == first
    assert data_files(drop) == []


async def test_concurrent_exports_of_one_request(connector: VistaCsvConnector, drop: Path) -> None:
    receipts = await asyncio.gather(*(connector.export(update_batch()) for _ in range(4)))
    assert len({r.erp_reference for r in receipts}) == 1
    assert data_files(drop) == sorted([UPDATE_ESTIMATES, UPDATE_CHANGE_ORDER])
    assert_same_records(drop / UPDATE_CHANGE_ORDER, "vista_change_order.csv")


# --- the folder and the options ---------------------------------------------------------------------


async def test_a_missing_drop_folder_is_a_retryable_error_and_is_not_created(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "vista"
    with pytest.raises(ConnectorError) as caught:
        await VistaCsvConnector({"drop_folder": str(folder), "cost_type_map": VISTA_COST_TYPES}).export(
            create_batch()
        )
    assert caught.value.retryable is True and "does not exist" in str(caught.value)
    assert not (tmp_path / "new").exists()


async def test_an_unusable_drop_folder_is_a_retryable_error(tmp_path: Path) -> None:
    # Tests run as root, which ignores chmod: a file where the folder should be makes it unwritable.
    occupied = tmp_path / "drop"
    occupied.write_text("not a folder")
    with pytest.raises(ConnectorError) as caught:
        await VistaCsvConnector({"drop_folder": str(occupied), "cost_type_map": VISTA_COST_TYPES}).export(
            create_batch()
        )
    assert caught.value.retryable is True
    assert str(occupied) in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"drop_folder": ""},
        {"drop_folder": ["/tmp"]},
        {"drop_folder": "/tmp/x", "company_number": "abc"},
        {"drop_folder": "/tmp/x", "company_number": 256},
        {"drop_folder": "/tmp/x", "company_number": -1},
        {"drop_folder": "/tmp/x", "company_number": True},
        {"drop_folder": "/tmp/x", "company_number": 1.0},
        {"drop_folder": "vista/drop"},
    ],
)
def test_bad_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConnectorConfigError):
        VistaCsvConnector(options)


async def test_set_erp_checks_the_cost_type_map(tmp_path: Path) -> None:
    # `budgetbridge company set-erp --connector vista-csv --option cost_type_map=L:1,M:2,S:3,SUB:4`
    await validate_options("vista-csv", {"drop_folder": str(tmp_path), "cost_type_map": "L:1,M:2,S:3,SUB:4"})
    with pytest.raises(ConnectorConfigError, match="cost_type_map"):
        await validate_options("vista-csv", {"drop_folder": str(tmp_path), "cost_type_map": "L:1,SUB:300"})


@pytest.mark.parametrize(("given", "expected"), [(None, 1), ("", 1), (3, 3), ("12", 12), (" 5 ", 5)])
def test_company_number_values(given: object, expected: int) -> None:
    assert VistaCsvConnector({"drop_folder": "/tmp/x", "company_number": given}).company_number == expected


# --- content it refuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ORIGINAL_BUDGET", "BUDGET_MODIFICATION"])
async def test_sub_jobs_are_refused(connector: VistaCsvConnector, drop: Path, kind: str) -> None:
    entry = (item("e", "03-300", "L", "10.00", sub_job="PHASE-2", line_original_amount=Decimal("10.00"))
             if kind == "ORIGINAL_BUDGET" else mod("e", 1, "03-300", "L", "10.00", sub_job="PHASE-2"))
    with pytest.raises(ConnectorError, match="Vista does not support sub jobs") as caught:
        await connector.export(batch("bb-sub", 1, "UPDATE_BUDGET", date(2025, 1, 2), (entry,)))
    assert caught.value.retryable is False
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger


async def test_float_amounts_are_refused(connector: VistaCsvConnector, drop: Path) -> None:
    bad = dataclasses.replace(item("e", "03-300", "L", "0"), amount=12.5)  # type: ignore[arg-type]
    with pytest.raises(ConnectorError):
        await connector.export(batch("bb-float", 1, "CREATE_BUDGET", date(2025, 1, 2), (bad,)))
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger


# --- job setup and posting --------------------------------------------------------------------------


async def test_sync_job_and_posting(connector: VistaCsvConnector, drop: Path) -> None:
    job = JobSpec(company_id="Company_1", project_id="Project_1", number=JOB, name="Riverside MOB")
    assert await connector.sync_job(job) == JOB
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger
    assert await connector.posted(UPDATE_ID) is None
    await connector.mark_posted(UPDATE_ID)  # a no-op
