"""CSV formula injection: every text cell we write that begins with =, +, -, @, tab or CR comes out with a
single quote in front (OWASP), nothing is trimmed into a formula, and numeric cells stay plain numbers."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from erp.base import ExportItem, FormatInvalidError, ViolationField
from erp.files import Raw, csv_document, csv_record, neutralise
from erp.sage300 import Sage300FileConnector
from erp.vista import VistaCsvConnector
from tests.erp.fixtures.batches import JOB, assert_same_records, batch, fixture_lines, item, mod

PAYLOADS = ['=HYPERLINK("http://x","pay")', "+1+cmd|' /C calc'!A0", "@SUM(1)", "\t=1+1", "-2+3", "\r=1"]
AMOUNTS = ["-250.00", "100.00", "-0.50", "1.00", "-2.00", "3.00"]
EXPORT = "bb-inject"


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --- the shared writer --------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
@pytest.mark.parametrize("quote_text", [False, True], ids=["minimal quoting", "text quoted"])
def test_each_payload_is_prefixed_with_a_single_quote_and_nothing_else_changes(payload: str, quote_text: bool) -> None:
    line = csv_record(["before", payload, Raw("-250.00")], quote_text=quote_text)
    assert line.endswith("\r\n")
    assert parse(line) == [["before", "'" + payload, "-250.00"]]
    assert neutralise(payload) == "'" + payload


def test_text_is_never_trimmed_into_a_formula() -> None:
    assert parse(csv_record(["\t=1+1"])) == [["'\t=1+1"]]
    assert parse(csv_record([" =1+1"])) == [[" =1+1"]]  # kept as given: a leading space is not a formula
    assert "=1+1" not in [cell for row in parse(csv_record(["\t=1+1", "\r=1"])) for cell in row]


@pytest.mark.parametrize("safe", ["", "Footings", "03-300", "'already quoted", "a=b", "1-2", "x@y.z"])
def test_text_that_does_not_begin_with_a_trigger_is_written_as_is(safe: str) -> None:
    assert neutralise(safe) == safe
    assert parse(csv_record([safe, "x"])) == [[safe, "x"]]


@pytest.mark.parametrize("number", ["-250.00", "0.00", "12.500", "4800", "07/01/2025", "06052025"])
def test_numbers_and_dates_stay_bare(number: str) -> None:
    assert csv_record([Raw(number)]) == number + "\r\n"
    assert csv_record([Raw(number)], quote_text=True) == number + "\r\n"


@pytest.mark.parametrize("not_a_number", ["=1+1", "-2+3", "+1", "@1", "1e5", "-", "1,000.00", "NaN", " 1", ""])
def test_a_raw_cell_must_be_a_plain_number_or_date(not_a_number: str) -> None:
    with pytest.raises(ValueError):
        Raw(not_a_number)


def test_quotes_commas_and_line_breaks_are_quoted_rfc_4180() -> None:
    rows = [['say "hi", then', "two\nlines", "plain"]]
    assert csv_document(rows) == '"say ""hi"", then","two\nlines",plain\r\n'
    assert parse(csv_document(rows)) == rows


# --- Sage 300 CRE: descriptions -------------------------------------------------------------------------------


def sage_batch(payloads: list[str]) -> tuple[ExportItem, ...]:
    return tuple(
        item(f"e{n}", f"01-{n}00", "L", amount, description=payload, line=f"line{n}")
        for n, (payload, amount) in enumerate(zip(payloads, AMOUNTS, strict=False), start=1)
    )


async def test_sage_descriptions_come_out_neutralised_and_amounts_stay_numbers(tmp_path: Path) -> None:
    drop = tmp_path / "sage"
    drop.mkdir()
    connector = Sage300FileConnector({"drop_folder": str(drop)})
    request = batch(EXPORT, 2, "UPDATE_BUDGET", date(2025, 7, 1), sage_batch(PAYLOADS[:5]))

    await connector.export(request)

    written = drop / f"{JOB}_{EXPORT}_estimate.csv"
    assert_same_records(written, "sage300_injection_estimate.csv")
    assert written.read_text(encoding="utf-8").splitlines() == fixture_lines("sage300_injection_estimate.csv")
    records = parse(written.read_text(encoding="utf-8"))
    assert [r[2] for r in records] == ["'" + p for p in PAYLOADS[:5]]
    assert [r[7] for r in records] == AMOUNTS[:5]  # negatives included: plain numbers, no quote in front
    assert b",-250.00\r\n" in written.read_bytes()


async def test_a_sage_description_with_a_carriage_return_is_refused_not_written(tmp_path: Path) -> None:
    connector = Sage300FileConnector({"drop_folder": str(tmp_path / "sage")})
    request = batch(EXPORT, 1, "CREATE_BUDGET", date(2025, 7, 1), sage_batch(["\r=1"]))
    violations = connector.validate(request)
    assert [(v.line_item_id, v.field) for v in violations] == [("line1", ViolationField.DESCRIPTION)]
    with pytest.raises(FormatInvalidError):
        await connector.export(request)
    assert not (tmp_path / "sage").exists()


@pytest.mark.parametrize("payload", ["=1+1", "+1", "-1", "@1", "\t1"], ids=repr)
async def test_codes_that_a_spreadsheet_would_evaluate_are_refused_not_quoted(payload: str, tmp_path: Path) -> None:
    # A quote in front of a cost code would make another code in the ERP: refuse instead.
    connector = Sage300FileConnector({"drop_folder": str(tmp_path / "sage")})
    request = batch(EXPORT, 1, "CREATE_BUDGET", date(2025, 7, 1), (item("e", payload, "L", "1.00", line="x"),))
    assert [v.field for v in connector.validate(request)] == [ViolationField.COST_CODE]


# --- Vista: change order descriptions (the modifications' notes) ---------------------------------------------


def vista_batch(payloads: list[str]) -> tuple[ExportItem, ...]:
    return tuple(
        mod(f"e{n}", n, f"01-{n}00", "L", amount, modification_notes=payload, line=f"line{n}")
        for n, (payload, amount) in enumerate(zip(payloads, AMOUNTS, strict=False), start=1)
    )


async def test_vista_notes_come_out_neutralised_and_amounts_stay_numbers(tmp_path: Path) -> None:
    drop = tmp_path / "vista"
    drop.mkdir()
    connector = VistaCsvConnector({"drop_folder": str(drop), "cost_type_map": "L:1"})
    request = batch(EXPORT, 2, "UPDATE_BUDGET", date(2025, 7, 1), vista_batch(PAYLOADS[:5]))

    await connector.export(request)

    written = drop / f"{JOB}_{EXPORT}_JCChangeOrder.csv"
    assert_same_records(written, "vista_injection_change_order.csv")
    records = parse(written.read_bytes().decode("utf-8"))
    assert [r[5] for r in records if r[0] == "ITEM"] == ["'" + p for p in PAYLOADS[:5]]
    assert [r[11] for r in records if r[0] == "ITEMDTL"] == AMOUNTS[:5]


async def test_vista_notes_beginning_with_a_carriage_return_come_out_neutralised(tmp_path: Path) -> None:
    drop = tmp_path / "vista"
    drop.mkdir()
    connector = VistaCsvConnector({"drop_folder": str(drop), "cost_type_map": "L:1"})
    request = batch(EXPORT, 2, "UPDATE_BUDGET", date(2025, 7, 1), (
        mod("e1", 1, "01-100", "L", "-3.00", modification_notes="\r=1", line="line1"),
    ))

    await connector.export(request)

    raw = (drop / f"{JOB}_{EXPORT}_JCChangeOrder.csv").read_bytes().decode("utf-8")
    records = parse(raw)
    assert records[1] == ["ITEM", "1", JOB, "BB0002", "1", "'\r=1", ""]
    assert records[2][11] == "-3.00"
    assert "\"'\r=1\"" in raw  # quoted (it holds a CR), the quote first, the CR kept
