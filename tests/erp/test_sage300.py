"""The Sage 300 CRE estimate-import file connector against a real folder (tmp_path)."""

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
from erp.files import LEDGER_DIR
from erp.registry import build_connector, connector_class
from erp.sage300 import Sage300FileConnector
from tests.erp.fixtures.batches import (
    CREATE_ID,
    JOB,
    MODS_ONLY_ID,
    UPDATE_ID,
    assert_same_records,
    batch,
    create_batch,
    fixture_lines,
    item,
    mod,
    modifications_only_batch,
    rows,
    update_batch,
)

CREATE_FILE = f"{JOB}_{CREATE_ID}_estimate.csv"
UPDATE_ESTIMATE = f"{JOB}_{UPDATE_ID}_estimate.csv"
UPDATE_CHANGES = f"{JOB}_{UPDATE_ID}_approved-changes.csv"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "sage-drop"
    folder.mkdir()  # a drop folder exists before it is configured (checked when saved)
    return folder


@pytest.fixture
def connector(drop: Path) -> Sage300FileConnector:
    return Sage300FileConnector({"drop_folder": str(drop)})


def data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def every_file(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names]


# --- identity and capabilities ----------------------------------------------------------------------


def test_name_and_capabilities(connector: Sage300FileConnector) -> None:
    assert connector.name == "sage300-file"
    assert connector.display_name == "Sage 300 CRE (estimate import file)"
    assert connector.capabilities == Capabilities(
        exports_budget=True, exports_modifications=True, supports_sub_jobs=True, requires_posting=True,
        exports_quantities=True,
    )


def test_the_registry_builds_it(drop: Path) -> None:
    assert connector_class("sage300-file") is Sage300FileConnector
    built = build_connector("sage300-file", {"drop_folder": str(drop)}, db=None)  # type: ignore[arg-type]
    assert isinstance(built, Sage300FileConnector)


# --- the files --------------------------------------------------------------------------------------


async def test_create_writes_one_estimate_file_matching_the_documented_layout(
    connector: Sage300FileConnector, drop: Path
) -> None:
    receipt = await connector.export(create_batch())

    assert receipt.erp_reference == CREATE_FILE
    assert not receipt.deferred
    assert data_files(drop) == [CREATE_FILE]
    written = drop / CREATE_FILE
    assert_same_records(written, "sage300_create.csv")
    # Quoting as in Sage's documented example: text quoted, date and numbers bare; CRLF line ends.
    raw = written.read_bytes().decode("utf-8")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    assert raw.splitlines() == fixture_lines("sage300_create.csv")


async def test_create_fields(connector: Sage300FileConnector, drop: Path) -> None:
    await connector.export(create_batch())
    footings, steel, painting, supervision = rows((drop / CREATE_FILE).read_text(encoding="utf-8"))
    assert footings == ["C", "03-300", 'Footings, "east" wing', "L", "06052025", "12.50", "CY", "1500.00"]
    assert steel[2] == "Structural steel, shop primed"  # fits the documented 30 characters
    assert painting == ["C", "09-900", "Painting", "S", "06052025", "0.00", "", "0.00"]  # zero new line
    assert supervision[5:] == ["40.00", "HRS", "4800.00"]


async def test_update_writes_estimates_and_approved_changes_in_separate_files(
    connector: Sage300FileConnector, drop: Path
) -> None:
    receipt = await connector.export(update_batch())

    assert receipt.erp_reference == f"{UPDATE_ESTIMATE}; {UPDATE_CHANGES}"
    assert data_files(drop) == sorted([UPDATE_ESTIMATE, UPDATE_CHANGES])
    assert_same_records(drop / UPDATE_ESTIMATE, "sage300_update_estimate.csv")
    assert_same_records(drop / UPDATE_CHANGES, "sage300_update_approved_changes.csv")
    assert (drop / UPDATE_CHANGES).read_text(encoding="utf-8").splitlines() == fixture_lines(
        "sage300_update_approved_changes.csv"
    )


async def test_update_amounts_are_signed_and_quantities_never_travel_twice(
    connector: Sage300FileConnector, drop: Path
) -> None:
    await connector.export(update_batch())
    delta, new_line = rows((drop / UPDATE_ESTIMATE).read_text(encoding="utf-8"))
    assert delta[5:] == ["0.00", "", "-250.00"]  # a re-sent delta moves money only
    assert new_line[5:] == ["3.50", "DAY", "0.00"]  # a zero-amount entry is a new line: its quantity travels
    into, out_of, added = rows((drop / UPDATE_CHANGES).read_text(encoding="utf-8"))
    assert (into[1], into[5], into[7]) == ("03-300", "0.00", "400.00")
    assert (out_of[1], out_of[7]) == ("05-120", "-400.00")
    assert added[7] == "125.75"
    assert sum(Decimal(r[7]) for r in (into, out_of)) == 0  # modification 3 moves money, it adds none


async def test_modifications_only_writes_only_the_approved_changes_file(
    connector: Sage300FileConnector, drop: Path
) -> None:
    receipt = await connector.export(modifications_only_batch())
    name = f"{JOB}_{MODS_ONLY_ID}_approved-changes.csv"
    assert receipt.erp_reference == name
    assert data_files(drop) == [name]
    assert rows((drop / name).read_text(encoding="utf-8")) == [
        ["C", "03-300", 'Footings, "east" wing', "L", "08042025", "0.00", "", "-75.00"],
        ["C", "09-900", "Painting", "S", "08042025", "0.00", "", "75.00"],
    ]


async def test_negative_zero_is_written_as_zero(connector: Sage300FileConnector, drop: Path) -> None:
    one = batch("bb-negzero", 1, "CREATE_BUDGET", date(2025, 1, 2), (item("e", "01-100", "O", "-0.00"),))
    await connector.export(one)
    assert rows((drop / f"{JOB}_bb-negzero_estimate.csv").read_text(encoding="utf-8"))[0][7] == "0.00"


async def test_encoding_option(tmp_path: Path) -> None:
    facade = batch("bb-enc", 1, "CREATE_BUDGET", date(2025, 1, 2),
                   (item("e", "07-400", "S", "10.00", description="Façade panels"),))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cp1252 = Sage300FileConnector({"drop_folder": str(tmp_path / "a"), "encoding": "cp1252"})
    ascii_only = Sage300FileConnector({"drop_folder": str(tmp_path / "b"), "encoding": "ascii"})
    await cp1252.export(facade)
    await ascii_only.export(facade)
    assert "Façade panels".encode("cp1252") in (tmp_path / "a" / f"{JOB}_bb-enc_estimate.csv").read_bytes()
    assert b'"Fa?ade panels"' in (tmp_path / "b" / f"{JOB}_bb-enc_estimate.csv").read_bytes()


# --- atomic and exactly once ------------------------------------------------------------------------


async def test_atomic_write_leaves_no_temp_files(connector: Sage300FileConnector, drop: Path) -> None:
    await connector.export(create_batch())
    await connector.export(update_batch())
    leftovers = [p for p in every_file(drop) if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert leftovers == []
    assert data_files(drop) == sorted([CREATE_FILE, UPDATE_ESTIMATE, UPDATE_CHANGES])
    assert oct((drop / CREATE_FILE).stat().st_mode & 0o777) == oct(0o644)  # readable by the ERP's importer


async def test_a_retried_export_rewrites_nothing_and_returns_the_same_reference(
    connector: Sage300FileConnector, drop: Path
) -> None:
    first = await connector.export(update_batch())
    before = {name: ((drop / name).stat().st_ino, (drop / name).stat().st_mtime_ns, (drop / name).read_bytes())
              for name in data_files(drop)}

    # The retry runs another day (the worker sets export_date to today): still nothing new.
    retried = dataclasses.replace(update_batch(), export_date=date(2025, 7, 9))
    again = await connector.export(retried)

    assert again == first
    after = {name: ((drop / name).stat().st_ino, (drop / name).stat().st_mtime_ns, (drop / name).read_bytes())
             for name in data_files(drop)}
    assert after == before


async def test_a_retry_after_the_importer_moved_the_files_does_not_drop_them_again(
    connector: Sage300FileConnector, drop: Path, tmp_path: Path
) -> None:
    first = await connector.export(create_batch())
    archive = tmp_path / "imported"
    archive.mkdir()
    (drop / CREATE_FILE).rename(archive / CREATE_FILE)

    again = await connector.export(create_batch())

    assert again == first
    assert data_files(drop) == []


async def test_a_crash_after_the_file_was_published_does_not_rewrite_it(
    connector: Sage300FileConnector, drop: Path
) -> None:
    # A worker died after publishing the file and before recording the export: the file is there, no ledger.
    assert drop.is_dir()
    (drop / CREATE_FILE).write_bytes(b"as published before the crash\r\n")

    receipt = await connector.export(create_batch())

    assert receipt.erp_reference == CREATE_FILE
    assert (drop / CREATE_FILE).read_bytes() == b"as published before the crash\r\n"
    assert (drop / LEDGER_DIR / f"{CREATE_ID}.sent").read_text(encoding="utf-8") == f"{CREATE_FILE}\n"


async def test_concurrent_exports_of_one_request_write_one_file(connector: Sage300FileConnector, drop: Path) -> None:
    receipts = await asyncio.gather(*(connector.export(create_batch()) for _ in range(5)))
    assert {r.erp_reference for r in receipts} == {CREATE_FILE}
    assert data_files(drop) == [CREATE_FILE]
    assert_same_records(drop / CREATE_FILE, "sage300_create.csv")


# --- the folder and the options ---------------------------------------------------------------------


async def test_a_missing_drop_folder_is_a_retryable_error_and_is_not_created(tmp_path: Path) -> None:
    # An unmounted share: creating the folder would put the files on the local disk, where nobody imports them.
    folder = tmp_path / "not" / "there" / "yet"
    with pytest.raises(ConnectorError) as caught:
        await Sage300FileConnector({"drop_folder": str(folder)}).export(create_batch())
    assert caught.value.retryable is True
    assert str(caught.value) == f"the drop folder {folder} does not exist (is its share mounted?)"
    assert not (tmp_path / "not").exists()


async def test_an_unusable_drop_folder_is_a_retryable_error(tmp_path: Path) -> None:
    # Tests run as root, which ignores chmod: a file where the folder should be makes it unwritable.
    occupied = tmp_path / "drop"
    occupied.write_text("not a folder")
    connector = Sage300FileConnector({"drop_folder": str(occupied)})
    with pytest.raises(ConnectorError) as caught:
        await connector.export(create_batch())
    assert caught.value.retryable is True
    assert str(occupied) in str(caught.value)
    assert occupied.read_text() == "not a folder"


async def test_a_folder_below_a_file_is_a_retryable_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    connector = Sage300FileConnector({"drop_folder": str(tmp_path / "file" / "drop")})
    with pytest.raises(ConnectorError) as caught:
        await connector.export(create_batch())
    assert caught.value.retryable is True
    assert "drop folder" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"drop_folder": ""},
        {"drop_folder": None},
        {"drop_folder": 42},
        {"drop_folder": "/tmp/x", "encoding": "klingon"},
        {"drop_folder": "/tmp/x", "encoding": 8},
        {"drop_folder": "drop"},
        {"drop_folder": "./sage/drop"},
        {"drop_folder": "~/drop"},
    ],
)
def test_bad_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConnectorConfigError):
        Sage300FileConnector(options)


def test_the_registry_reports_bad_options() -> None:
    with pytest.raises(ConnectorConfigError, match="drop_folder"):
        build_connector("sage300-file", {}, db=None)  # type: ignore[arg-type]


def test_construction_touches_no_folder(tmp_path: Path) -> None:
    Sage300FileConnector({"drop_folder": str(tmp_path / "later")})
    assert not (tmp_path / "later").exists()


# --- content it refuses -----------------------------------------------------------------------------


async def test_sub_jobs_go_out_as_extras_one_file_each(connector: Sage300FileConnector, drop: Path) -> None:
    with_extras = batch("bb-extras", 2, "UPDATE_BUDGET", date(2025, 1, 2), (
        item("e1", "03-300", "L", "10.00", is_new_line=True),
        item("e2", "03-300", "L", "20.00", sub_job="BLDG-B", is_new_line=True),
        mod("e3", 1, "03-300", "L", "-5.00", sub_job="BLDG-B"),
        item("e4", "03-300", "L", "30.00", sub_job="BLDG-A", is_new_line=True),
        mod("e5", 1, "03-300", "L", "5.00"),
    ))
    receipt = await connector.export(with_extras)

    names = [
        f"{JOB}_bb-extras_estimate.csv", f"{JOB}_bb-extras_approved-changes.csv",
        f"{JOB}_extra-BLDG-A_bb-extras_estimate.csv",
        f"{JOB}_extra-BLDG-B_bb-extras_estimate.csv", f"{JOB}_extra-BLDG-B_bb-extras_approved-changes.csv",
    ]
    assert receipt.erp_reference == "; ".join(names)  # base job first, then extras alphabetically
    assert data_files(drop) == sorted(names)
    amounts = {name: [r[7] for r in rows((drop / name).read_text(encoding="utf-8"))] for name in names}
    assert amounts == {names[0]: ["10.00"], names[1]: ["5.00"], names[2]: ["30.00"], names[3]: ["20.00"],
                       names[4]: ["-5.00"]}


@pytest.mark.parametrize("amount", [1.5, Decimal("1.005"), Decimal("NaN")])
async def test_amounts_that_are_not_exact_cents_are_refused(
    connector: Sage300FileConnector, drop: Path, amount: object
) -> None:
    bad = dataclasses.replace(item("e", "03-300", "L", "0"), amount=amount)  # type: ignore[arg-type]
    with pytest.raises(ConnectorError):
        await connector.export(batch("bb-bad", 1, "CREATE_BUDGET", date(2025, 1, 2), (bad,)))
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger


# --- job setup and posting --------------------------------------------------------------------------


async def test_sync_job_writes_nothing_and_returns_the_job_number(connector: Sage300FileConnector, drop: Path) -> None:
    job = JobSpec(company_id="Company_1", project_id="Project_1", number=JOB, name="Riverside MOB",
                  pairs=(("03-300", "L"),))
    assert await connector.sync_job(job) == JOB
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger


async def test_posting_cannot_be_seen_from_a_file_drop(connector: Sage300FileConnector) -> None:
    await connector.export(create_batch())
    assert await connector.posted(CREATE_ID) is None
    await connector.mark_posted(CREATE_ID)  # a no-op: nothing to record in a folder
    assert await connector.posted(CREATE_ID) is None


async def test_an_empty_batch_writes_nothing(connector: Sage300FileConnector, drop: Path) -> None:
    receipt = await connector.export(batch("bb-empty", 1, "CREATE_BUDGET", date(2025, 1, 2), ()))
    assert receipt.erp_reference is None
    assert list(drop.iterdir()) == []  # nothing written, not even the ledger
