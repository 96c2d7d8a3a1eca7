"""Each connector's `validate(batch)`: every value its import format cannot carry as it is is reported, one
violation per offending line and field, and the file connectors' `export()` refuses such a batch before
writing anything. Values at the limit pass."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erp.base import ConnectorConfigError, ExportBatch, FormatInvalidError, FormatViolation, ViolationField
from erp.embedded import EmbeddedConnector
from erp.sage300 import Sage300FileConnector
from erp.vista import VistaCsvConnector
from erp.webhook import WebhookConnector
from tests.erp.fixtures.batches import (
    JOB,
    STEEL_TOO_LONG,
    VISTA_COST_TYPES,
    batch,
    create_batch,
    item,
    mod,
    modifications_only_batch,
    update_batch,
)

F = ViolationField
LINE = "line_under_test"


def one_line(*, kind: str = "CREATE_BUDGET", **fields: Any) -> ExportBatch:
    """A batch with one original-budget entry on LINE; `fields` override the entry's fields."""
    base: dict[str, Any] = {"line": LINE, "description": "Footings", "quantity": Decimal("12.5"),
                            "unit_of_measure": "CY", "unit_cost": Decimal("120.00")}
    code = fields.pop("code", "03-300")
    ctype = fields.pop("ctype", "L")
    amount = fields.pop("amount", "1500.00")
    entry = item("ent_1", code, ctype, amount, **{**base, **fields})
    return batch("bb-check", 1, kind, date(2025, 6, 5), (entry,))


def keys(violations: list[FormatViolation]) -> list[tuple[str | None, str]]:
    return [(v.line_item_id, str(v.field)) for v in violations]


@pytest.fixture
def sage(tmp_path: Path) -> Sage300FileConnector:
    return Sage300FileConnector({"drop_folder": str(tmp_path / "sage")})


@pytest.fixture
def vista(tmp_path: Path) -> VistaCsvConnector:
    return VistaCsvConnector({"drop_folder": str(tmp_path / "vista"), "cost_type_map": VISTA_COST_TYPES})


# --- Sage 300 CRE: every field of the category record ------------------------------------------------------

SAGE_LIMITS = [
    # (case, batch, field, words the message must contain)
    ("cost code over 15", one_line(code="03-300-0001-ABCD"), F.COST_CODE, ["16 characters", "at most 15"]),
    ("cost code blank", one_line(code=" "), F.COST_CODE, ["blank"]),
    ("cost code with a line break", one_line(code="03-\n300"), F.COST_CODE, ["line break"]),
    ("cost code read as a formula", one_line(code="=03300"), F.COST_CODE, ["formula"]),
    ("category over 3", one_line(ctype="LABR"), F.COST_TYPE, ["4 characters", "at most 3"]),
    ("category read as a formula", one_line(ctype="@L"), F.COST_TYPE, ["formula"]),
    ("description over 30", one_line(description=STEEL_TOO_LONG), F.DESCRIPTION, ["45 characters", "at most 30"]),
    ("description over 30 with its protective quote", one_line(description="=" + "x" * 29), F.DESCRIPTION,
     ["31 characters", "quote"]),
    ("description with a line break", one_line(description="Footings\r\neast"), F.DESCRIPTION, ["line break"]),
    ("cost code description over 30", one_line(description=None, code_description=STEEL_TOO_LONG), F.DESCRIPTION,
     ["cost code's description", "give the line a description"]),
    ("unit over 4", one_line(unit_of_measure="HOURS"), F.UNIT_OF_MEASURE, ["5 characters", "at most 4"]),
    ("quantity with 3 decimals", one_line(quantity=Decimal("12.125")), F.QUANTITY, ["more than 2 decimal places"]),
    ("quantity over 8 digits", one_line(quantity=Decimal("123456789")), F.QUANTITY, ["more than 8 digits"]),
    ("amount over 8 digits", one_line(amount="123456789012.34"), F.ORIGINAL_AMOUNT,
     ["123456789012.34", "more than 8 digits"]),
    ("amount of 100 million", one_line(amount="100000000.00"), F.ORIGINAL_AMOUNT, ["more than 8 digits"]),
    ("amount with a third decimal", one_line(amount="1.005"), F.ORIGINAL_AMOUNT, ["more than 2 decimal places"]),
    ("negative amount over 8 digits", one_line(kind="UPDATE_BUDGET", amount="-100000000.00"), F.ORIGINAL_AMOUNT,
     ["more than 8 digits"]),
    ("modification over 8 digits",
     batch("bb-check", 2, "UPDATE_BUDGET", date(2025, 6, 5), (mod("m", 7, "03-300", "L", "-123456789.00", line=LINE),)),
     F.MODIFICATIONS_AMOUNT, ["modification 7", "more than 8 digits"]),
    ("extra over 6", one_line(sub_job="BLDG-A-1"), F.SUB_JOB, ["8 characters", "at most 6", "extra"]),
    ("extra not file-name safe", one_line(sub_job="A/B"), F.SUB_JOB, ["file"]),
]


@pytest.mark.parametrize(("case", "bad", "field", "words"), SAGE_LIMITS, ids=[c[0] for c in SAGE_LIMITS])
async def test_each_sage_field_limit_names_the_line_and_field_and_nothing_is_written(
    sage: Sage300FileConnector, tmp_path: Path, case: str, bad: ExportBatch, field: str, words: list[str]
) -> None:
    violations = sage.validate(bad)

    assert keys(violations) == [(LINE, field)], case
    label = bad.items[0].line_label
    assert violations[0].message.startswith(f"Line {label}: ")
    for word in words:
        assert word in violations[0].message
    with pytest.raises(FormatInvalidError) as caught:
        await sage.export(bad)
    assert caught.value.retryable is False
    assert caught.value.violations == violations
    assert "Sage 300 CRE cannot import this export as it is" in str(caught.value)
    assert not (tmp_path / "sage").exists()  # nothing written, not even the folder


@pytest.mark.parametrize(
    ("job", "erp_job_id", "field"),
    [("24-017-BLDG-A", "", F.JOB_NUMBER), ("24-017", "SAGE-24-017-A", F.ERP_JOB_ID), ("24/017", "", F.JOB_NUMBER)],
)
def test_a_sage_job_that_does_not_fit_is_a_job_level_violation(
    sage: Sage300FileConnector, job: str, erp_job_id: str, field: str
) -> None:
    bad = dataclasses.replace(one_line(), job_number=job, erp_job_id=erp_job_id)
    assert keys(sage.validate(bad)) == [(None, field)]


def test_sage_values_at_their_limits_pass(sage: Sage300FileConnector) -> None:
    at_limit = one_line(code="03-300-0001-ABC", ctype="LAB", description="x" * 30, unit_of_measure="HOUR",
                        quantity=Decimal("99999999.99"), amount="-99999999.99", sub_job="BLDG-A")
    assert sage.validate(at_limit) == []
    assert sage.validate(create_batch()) == []
    assert sage.validate(update_batch()) == []


def test_sage_checks_only_what_it_writes(sage: Sage300FileConnector) -> None:
    # A re-sent delta moves money only: its quantity and unit are not written, so they cannot violate.
    delta = one_line(kind="UPDATE_BUDGET", amount="-10.00", quantity=Decimal("3.3333"), unit_of_measure="BOXES")
    assert sage.validate(delta) == []
    # The same line's first export carries them.
    first = one_line(quantity=Decimal("3.3333"), unit_of_measure="BOXES")
    assert keys(sage.validate(first)) == [(LINE, F.QUANTITY), (LINE, F.UNIT_OF_MEASURE)]


def test_one_violation_per_line_and_field(sage: Sage300FileConnector) -> None:
    long_code = "03-300-0001-ABCD"
    request = batch("bb-many", 2, "UPDATE_BUDGET", date(2025, 6, 5), (
        item("e1", long_code, "LABR", "10.00", line="A", is_new_line=True),
        mod("e2", 1, long_code, "LABR", "5.00", line="A"),
        mod("e3", 2, long_code, "LABR", "-5.00", line="A"),
        item("e4", "05-120", "M", "123456789.00", line="B", is_new_line=True),
    ))
    assert keys(sage.validate(request)) == [("A", F.COST_CODE), ("A", F.COST_TYPE), ("B", F.ORIGINAL_AMOUNT)]


def test_validate_is_pure(tmp_path: Path) -> None:
    folder = tmp_path / "never"
    sage = Sage300FileConnector({"drop_folder": str(folder)})
    vista = VistaCsvConnector({"drop_folder": str(folder)})
    bad = one_line(code="x" * 40)
    assert sage.validate(bad) and vista.validate(bad)
    assert not folder.exists()


# --- Viewpoint Vista ----------------------------------------------------------------------------------------

VISTA_LIMITS = [
    ("phase over 20", one_line(code="03-300-0001-ABCDEFGHI"), F.COST_CODE, ["21 characters", "at most 20", "bPhase"]),
    ("phase read as a formula", one_line(code="+03300"), F.COST_CODE, ["formula"]),
    ("cost type not mapped", one_line(ctype="O"), F.COST_TYPE, ["'O'", "cost_type_map"]),
    ("cost type 0", one_line(ctype="0"), F.COST_TYPE, ["1-255"]),
    ("cost type 256", one_line(ctype="256"), F.COST_TYPE, ["1-255"]),
    ("unit over 3", one_line(unit_of_measure="HOURS"), F.UNIT_OF_MEASURE, ["5 characters", "at most 3", "bUM"]),
    ("units with 4 decimals", one_line(quantity=Decimal("3.3333")), F.QUANTITY, ["more than 3 decimal places"]),
    ("units over 11 digits", one_line(quantity=Decimal("123456789012")), F.QUANTITY, ["more than 11 digits"]),
    ("hours with 3 decimals", one_line(unit_of_measure="HRS", quantity=Decimal("12.125")), F.QUANTITY,
     ["Hours", "more than 2 decimal places"]),
    ("hours over 8 digits", one_line(unit_of_measure="HR", quantity=Decimal("123456789")), F.QUANTITY,
     ["Hours", "more than 8 digits"]),
    ("cost over 10 digits", one_line(amount="12345678901.00", unit_cost=None), F.ORIGINAL_AMOUNT,
     ["more than 10 digits", "bDollar"]),
    ("new total over 10 digits",
     one_line(kind="UPDATE_BUDGET", amount="-1.00", line_original_amount=Decimal("12345678901.00")),
     F.ORIGINAL_AMOUNT, ["more than 10 digits"]),
    ("re-send without the new total", one_line(kind="UPDATE_BUDGET", amount="-250.00"), F.ORIGINAL_AMOUNT,
     ["new total original amount", "replaces"]),
    ("unit cost over 10 digits", one_line(unit_cost=Decimal("12345678901")), F.UNIT_COST, ["more than 10 digits"]),
    ("derived unit cost over 10 digits",
     one_line(unit_cost=None, quantity=Decimal("0.001"), amount="99999999.00"), F.UNIT_COST, ["derived"]),
    ("modification over 10 digits",
     batch("bb-check", 2, "UPDATE_BUDGET", date(2025, 6, 5),
           (mod("m", 4, "03-300", "L", "12345678901.00", line=LINE),)),
     F.MODIFICATIONS_AMOUNT, ["modification 4", "more than 10 digits"]),
]


@pytest.mark.parametrize(("case", "bad", "field", "words"), VISTA_LIMITS, ids=[c[0] for c in VISTA_LIMITS])
async def test_each_vista_field_limit_names_the_line_and_field_and_nothing_is_written(
    vista: VistaCsvConnector, tmp_path: Path, case: str, bad: ExportBatch, field: str, words: list[str]
) -> None:
    violations = vista.validate(bad)

    assert keys(violations) == [(LINE, field)], case
    assert violations[0].message.startswith(f"Line {bad.items[0].line_label}: ")
    for word in words:
        assert word in violations[0].message
    with pytest.raises(FormatInvalidError) as caught:
        await vista.export(bad)
    assert caught.value.retryable is False
    assert not (tmp_path / "vista").exists()


@pytest.mark.parametrize(("job", "erp_job_id", "field"),
                         [("24-017-BLDG", "", F.JOB_NUMBER), ("24-017", "VJ-24-017-A", F.ERP_JOB_ID)])
def test_a_vista_job_over_10_characters_is_a_job_level_violation(
    vista: VistaCsvConnector, job: str, erp_job_id: str, field: str
) -> None:
    bad = dataclasses.replace(one_line(), job_number=job, erp_job_id=erp_job_id)
    violations = vista.validate(bad)
    assert keys(violations) == [(None, field)]
    assert "bJob" in violations[0].message


def test_vista_values_at_their_limits_pass(vista: VistaCsvConnector) -> None:
    at_limit = one_line(code="03-300-0001-ABCDEFGH", ctype="255", unit_of_measure="HRS",
                        quantity=Decimal("99999999.99"), unit_cost=Decimal("9999999999.9999"),
                        amount="9999999999.99")
    assert vista.validate(at_limit) == []
    assert vista.validate(create_batch()) == []
    assert vista.validate(update_batch()) == []
    assert vista.validate(modifications_only_batch()) == []


def test_numeric_cost_types_map_to_themselves_and_the_map_comes_first(tmp_path: Path) -> None:
    plain = VistaCsvConnector({"drop_folder": str(tmp_path)})
    assert plain.validate(one_line(ctype="3")) == []
    assert keys(plain.validate(one_line(ctype="L"))) == [(LINE, F.COST_TYPE)]
    remapped = VistaCsvConnector({"drop_folder": str(tmp_path), "cost_type_map": "3:7"})
    files = remapped.render(one_line(ctype="3"))
    assert files[0].content.splitlines()[1].split(",")[2] == "7"


def test_two_lines_on_one_vista_phase_and_cost_type_would_overwrite_each_other(vista: VistaCsvConnector) -> None:
    clash = batch("bb-clash", 1, "CREATE_BUDGET", date(2025, 6, 5), (
        item("e1", "03-300", "L", "10.00", line="A"),
        item("e2", "03-300", "1", "20.00", line="B"),  # "1" maps to itself, L maps to 1 too
    ))
    violations = vista.validate(clash)
    assert keys(violations) == [("B", F.COST_TYPE)]
    assert "overwrite" in violations[0].message


def test_sub_jobs_are_a_capability_for_vista_not_a_format_violation(vista: VistaCsvConnector) -> None:
    assert vista.capabilities.supports_sub_jobs is False
    assert vista.validate(one_line(sub_job="BLDG-A")) == []  # sendBlockers says SUB_JOB_NOT_SUPPORTED


@pytest.mark.parametrize(
    "value",
    ["L1", "L:0", "L:256", "L:x", "L:1.5", "L:1,L:2", "L:1,LAB:1", ":1", 5, {"L": True}, {"L": "0"}, {"": 1}],
)
def test_bad_cost_type_maps_are_config_errors(value: object) -> None:
    with pytest.raises(ConnectorConfigError, match="cost_type_map"):
        VistaCsvConnector({"drop_folder": "/tmp/x", "cost_type_map": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("L:1,M:2,S:3,SUB:4", {"L": 1, "M": 2, "S": 3, "SUB": 4}),
        (" L : 1 , M:2, ", {"L": 1, "M": 2}),
        ({"L": 1, "E": "5"}, {"L": 1, "E": 5}),
        ("", {}),
        (None, {}),
    ],
)
def test_cost_type_map_values(value: object, expected: dict[str, int]) -> None:
    assert VistaCsvConnector({"drop_folder": "/tmp/x", "cost_type_map": value}).cost_type_map == expected


# --- the connectors without a file format -------------------------------------------------------------------


async def test_embedded_and_webhook_have_nothing_to_report() -> None:
    big = one_line(code="x" * 40, amount="123456789012.34", sub_job="A/B")
    embedded = EmbeddedConnector(None, db=None)  # type: ignore[arg-type]
    webhook = WebhookConnector({"url": "https://bridge.example.com/events", "secret": "s" * 16})
    try:
        assert embedded.validate(big) == []
        assert webhook.validate(big) == []
    finally:
        await webhook.aclose()


def test_the_violation_message_lists_the_first_ten(sage: Sage300FileConnector) -> None:
    many = batch("bb-many", 1, "CREATE_BUDGET", date(2025, 6, 5), tuple(
        item(f"e{n}", f"CODE-{n:02d}-TOO-LONG-X", "L", "1.00", line=f"L{n}") for n in range(12)
    ))
    error = FormatInvalidError("Sage 300 CRE", sage.validate(many))
    assert len(error.violations) == 12
    assert str(error).endswith("; and 2 more")
    assert JOB not in str(error)  # lines are named by cost code / cost type
