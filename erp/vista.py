"""Viewpoint Vista (Trimble Viewpoint): JC import files in a drop folder, uploaded with Vista's Imports (IM).

A request becomes up to two comma-separated files (CRLF line ends, RFC 4180 quoting, every text cell through
erp.files.csv_record, the formula-injection guard):

* ORIGINAL_BUDGET entries -> ``<job>_<export id>_JCOrigEst.csv`` (JC Original Estimates);
* BUDGET_MODIFICATION entries -> ``<job>_<export id>_JCChangeOrder.csv`` (JC Change Order import).

A request with only original-budget entries writes only the estimates file, one with only modifications
only the change order file, one with both writes both. ``erp_reference`` is the file name, or both names
joined by ``"; "``.

Import semantics: totals for original estimates, changes for change orders
-------------------------------------------------------------------------
Vista keeps *one* original estimate per job / phase / cost type, and the JC Original Estimates import
replaces it. A row therefore carries the line's **new total** original estimate (hours, units, unit cost,
cost), never the change: a re-send after an original amount went from 1500.00 to 1250.00 writes 1250.00, not
-250.00. Only lines whose original amount changed (or that are new) have an ORIGINAL_BUDGET entry in the
request, so unchanged lines are not re-written. The total is ExportItem.line_original_amount, which the batch
builder fills; for a line's first export (ExportItem.is_new_line, or any entry of a CREATE_BUDGET request) the
entry's amount *is* the total and is used when line_original_amount is None. A changed line without its
total is a format violation: writing the change would overwrite the estimate with it.

Budget modifications stay additive: the JC Change Order import adds approved change orders, so each
modification entry is written as its signed change (below).

JC Original Estimates file
--------------------------
Header row, then one row per line with an original-budget entry::

    Job,Phase,Cost Type,U/M,Hours,Units,Unit Cost,Cost

These are the fields of Vista's JC Original Estimates form (Job, Phase, Cost Type, U/M, Hours, Units, Unit
Cost, Cost), in the order of DOMAIN.md. The stored documentation has no column layout for an estimates
import file, so this column order is ours (DOMAIN.md) and is mapped in the IM template (Template Detail).
Source: Vista help, "JC Original Estimates Form" and "Field Definitions: JC Original Estimates Form"
(help.trimble.com/en/vista/vista/costs-and-contracts/job-cost/jobs-and-contracts-setup/jc-original-estimates-form).

* Job: ``ExportBatch.erp_job_id`` (the id ``sync_job`` returned), else the job number.
* Phase: ExportItem.cost_code, as given.
* Cost Type: Vista's cost type *number* (1-255). Our cost type codes are mapped by the company option
  ``cost_type_map`` (``--option cost_type_map=L:1,M:2,S:3,SUB:4``); a numeric code (``"3"``) maps to itself;
  anything else is a format violation on the line's cost type.
* U/M: the line's unit of measure as given, else ``LS`` -- Vista's JC Phases help: "If no quantity (units)
  is being tracked, it may be set up as LS (lump sum)". Units of measure must exist in HQ Units of Measure;
  translate others with an IM cross-reference.
* Units: the line's quantity (its current total), 3 places; 0.000 when the line has none.
* Hours (our rule): equal to Units when the unit of measure is an hours unit (HR, HRS, HOUR or HOURS, any
  case), else 0.00. Vista keeps hours separate from units; for other units we have no hours to send.
* Unit Cost: the line's unit cost, 5 places; without a unit cost, Cost / Units rounded half up to 5 places
  (a derived value, as Vista's form derives it); 0.00000 when there are no units.
* Cost: the line's new total original amount, exactly 2 places.

Two lines that map to the same phase and Vista cost type would overwrite each other's estimate: the second
is a violation on its cost type.

JC Change Order file
--------------------
Vista's standard "JC Change Order" import template "imports budget changes as approved change orders ...
by job, phase, and cost type" and "has three record types ... HDR (JC Change Order Header), ITEM (JC Change
Order Items), and ITEMDTL (JC Change Order Item Detail)"; the upload creates a JC Change Order batch that is
validated and posted in Vista. Source: Vista help, Imports > Standard Import Templates > "JC Change Order"
(help.viewpoint.com/en/vista/2022-r2/administration/imports/setup-and-maintenance/standard-import-templates/
jc-change-order); field sizes from "Field Definitions: JC Change Orders Form" (ACO up to 10 characters,
description up to 60). The column layout of each record is not in the stored documentation; ours, to be
mapped in the IM template (record type identifier in the first column), is:

=========  ====================================================================================
record     columns
=========  ====================================================================================
HDR        HDR, JCCo, Job, ACO, Description, Approval Date (MM/DD/YYYY)
ITEM       ITEM, JCCo, Job, ACO, ACO Item, Description, Contract Item
ITEMDTL    ITEMDTL, JCCo, Job, ACO, ACO Item, Phase, Cost Type, U/M, Est Hours, Est Units,
           Unit Cost, Est Cost
=========  ====================================================================================

No header row (records of different types have different columns).

* One HDR per request. ACO = ``BB`` + the request's sequence in 4 digits (``BB0002``): unique per job, at
  most 10 characters, stable across retries. Description ``Budget modifications, BudgetBridge request
  <n>``. Approval Date = ExportBatch.export_date.
* One ITEM per modification number, in number order. ACO Item = the modification number. Description = the
  modification's notes, else ``Budget modification <n>``. Notes longer than 60 characters are written as
  their first 57 characters and ``...`` -- visibly shortened, not silently: a modification cannot be edited,
  so refusing the send would block the budget for good; the full notes stay in BudgetBridge. Contract Item is
  left blank: BudgetBridge does not know the contract; give it a default in the IM template.
* One ITEMDTL per modification entry (per phase/cost type line; a modification moving money between two
  lines has two), in batch order: Est Cost = the signed amount (money moved out of a line is negative); a
  modification moves money only, so Est Hours 0.00, Est Units 0.000, Unit Cost 0.00000; U/M and Cost Type as
  in the estimates file.

Field sizes and formats (Vista data types)
------------------------------------------
Sources: Vista help, Imports > "Form Information and Sample Text Files": "JC Cost Adjustments (JCCB)"
(help.viewpoint.com/en/vista/2022-r2/administration/imports/setup-and-maintenance/
form-information-and-sample-text-files/jc-cost-adjustments-jccb) and "JC Jobs (JCJM)" / "JC Contract Items
(JCCI)" (same folder), which give each Vista data type's length and scale. Every size is a constant below with
its source. `validate` reports a value that does not fit, one FormatViolation per line and field; nothing is
cut or rounded (except the derived unit cost and the notes, as described above).

Sub jobs: Vista has none; ``supports_sub_jobs`` is False (sendBlockers lists SUB_JOB_NOT_SUPPORTED) and
``export`` refuses an item with a sub job (ConnectorError, not retryable) as defence in depth.

Jobs and posting: ``sync_job`` writes nothing and returns the job number (the job, its contract and phases
are set up in Vista's JC Jobs). A file drop cannot see posting: ``posted`` returns None (an integrator
confirms), ``mark_posted`` does nothing.

Options: ``drop_folder`` (required; an absolute path to an existing
writable directory, probed when the connection is saved), ``company_number`` (Vista JCCo, an integer
0-255, default 1), ``cost_type_map`` (``CODE:NUMBER`` pairs separated by commas, numbers 1-255, each number
used once; default: none, so only numeric cost type codes can be sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby
from typing import Any

from domain.export import Capabilities
from erp.base import (
    REQUIRE_POSTING_TOTALS,
    ConnectorConfigError,
    ConnectorError,
    ExportBatch,
    ExportItem,
    FormatViolation,
    option,
    unique_violations,
)
from erp.base import ViolationField as F
from erp.files import (
    DROP_FOLDER_HELP,
    FILE_POSTING_TOTALS_HELP,
    DropFile,
    DropFolder,
    DropFolderConnector,
    Raw,
    amount_text,
    code_problem,
    csv_document,
    decimal_text,
    file_stem,
    fits_number,
    folder_option,
    posting_totals_option,
    refuse_sub_jobs,
)

TARGET = "Viewpoint Vista"
ESTIMATES_HEADER = ("Job", "Phase", "Cost Type", "U/M", "Hours", "Units", "Unit Cost", "Cost")
HOURS_UNITS = frozenset({"HR", "HRS", "HOUR", "HOURS"})
LUMP_SUM = "LS"
ESTIMATES_SUFFIX = "JCOrigEst"
CHANGE_ORDER_SUFFIX = "JCChangeOrder"

# Vista data types (see "Field sizes and formats" above). JCCB = IM "JC Cost Adjustments (JCCB)", JCJM = IM
# "JC Jobs (JCJM)", JCCI = IM "JC Contract Items (JCCI)", JCCO = "Field Definitions: JC Change Orders Form".
JOB_SIZE = 10  # bJob: "10 Characters" (JCCB; JCJM: 10)
PHASE_SIZE = 20  # bPhase: "20 Characters" (JCCB)
UM_SIZE = 3  # bUM: "3 Characters" (JCCB; JCCI: 3 characters)
COST_TYPE_MIN, COST_TYPE_MAX = 1, 255  # bJCCType: "###" (JCCB); Vista cost types are numbers 1-255
HOURS_DIGITS, HOURS_PLACES = 8, 2  # bHrs: "########.##" (JCCB)
UNITS_DIGITS, UNITS_PLACES = 11, 3  # bUnits: "###########.###" (JCCB)
COST_DIGITS, COST_PLACES = 10, 2  # bDollar: "##########.##" (JCCB)
# bUnitCost: 5 decimal places ("numeric; 9,5", JCCI). No source gives its digits before the point: we allow
# 10, conservatively the same as bDollar's (a unit cost above the largest cost Vista holds is not plausible).
UNIT_COST_DIGITS, UNIT_COST_PLACES = 10, 5
ACO_SIZE = 10  # ACO: "up to 10 characters" (JCCO)
DESCRIPTION_SIZE = 60  # change order Description "up to 60 characters" (JCCO); bItemDesc 60 characters (JCCI)
COMPANY_MAX = 255  # bCompany: "integer 0-255" (JCCI)


class VistaCsvConnector(DropFolderConnector):
    name = "vista-csv"
    display_name = "Viewpoint Vista (JC import files)"
    target = TARGET
    options = {
        "drop_folder": DROP_FOLDER_HELP,
        "company_number": "the Vista JC company number (default 1)",
        "cost_type_map": "cost type code -> Vista cost type number, such as L:1,M:2,S:3,SUB:4",
        REQUIRE_POSTING_TOTALS: FILE_POSTING_TOTALS_HELP,
    }
    capabilities = Capabilities(
        exports_budget=True,
        exports_modifications=True,
        supports_sub_jobs=False,
        requires_posting=True,
        exports_quantities=True,
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        settings = dict(options or {})
        self.folder = DropFolder(folder_option(settings), encoding="utf-8")
        self.company_number = company_option(settings)
        self.cost_type_map = cost_type_map_option(settings)
        self.requires_posting_totals = posting_totals_option(settings)

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        return validate(batch, self.cost_type_map)

    def render(self, batch: ExportBatch) -> list[DropFile]:
        return render(batch, self.company_number, self.cost_type_map)


# ---------------------------------------------------------------- options


def company_option(settings: dict[str, Any]) -> int:
    value = option(settings, "company_number", required=False, default=1)
    if value in (None, ""):
        return 1
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConnectorConfigError("the option 'company_number' must be a Vista JC company number such as 1")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= COMPANY_MAX:
        raise ConnectorConfigError(
            f"the option 'company_number' must be a Vista JC company number from 0 to {COMPANY_MAX}, not {value!r}"
        )
    return int(text)


def _cost_type_number(text: object) -> int | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if COST_TYPE_MIN <= text <= COST_TYPE_MAX else None
    if isinstance(text, str) and text.strip().isascii() and text.strip().isdigit():
        number = int(text.strip())
        return number if COST_TYPE_MIN <= number <= COST_TYPE_MAX else None
    return None


def cost_type_map_option(settings: dict[str, Any]) -> dict[str, int]:
    """`cost_type_map`: ``"L:1,M:2,S:3,SUB:4"`` (or a mapping {"L": 1, ...}) -> {"L": 1, ...}."""
    value = option(settings, "cost_type_map", required=False, default=None)
    if value in (None, ""):
        return {}
    pairs: list[tuple[object, object]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for part in value.split(","):
            if not part.strip():
                continue
            code_text, colon, number_text = part.partition(":")
            if not colon:
                raise ConnectorConfigError(
                    f"the option 'cost_type_map' must be CODE:NUMBER pairs such as L:1,M:2; {part.strip()!r} has no ':'"
                )
            pairs.append((code_text.strip(), number_text))
    else:
        raise ConnectorConfigError("the option 'cost_type_map' must be CODE:NUMBER pairs such as L:1,M:2,S:3,SUB:4")
    mapping: dict[str, int] = {}
    codes_by_number: dict[int, str] = {}
    for code, raw_number in pairs:
        if not isinstance(code, str) or not code:
            raise ConnectorConfigError(f"the option 'cost_type_map' has an empty cost type code before {raw_number!r}")
        number = _cost_type_number(raw_number)
        if number is None:
            raise ConnectorConfigError(
                f"the option 'cost_type_map' maps {code!r} to {raw_number!r}; Vista cost types are numbers "
                f"from {COST_TYPE_MIN} to {COST_TYPE_MAX}"
            )
        if code in mapping:
            raise ConnectorConfigError(f"the option 'cost_type_map' maps {code!r} twice")
        if number in codes_by_number:
            raise ConnectorConfigError(
                f"the option 'cost_type_map' maps both {codes_by_number[number]!r} and {code!r} to Vista cost type "
                f"{number}; their estimates would overwrite each other"
            )
        mapping[code] = number
        codes_by_number[number] = code
    return mapping


def vista_cost_type(code: str, cost_type_map: dict[str, int]) -> int | None:
    """Vista's cost type number for our code: the map first, then a numeric code as itself; None if neither."""
    if code in cost_type_map:
        return cost_type_map[code]
    return _cost_type_number(code)


# ---------------------------------------------------------------- validation


def job_of(batch: ExportBatch) -> tuple[str, F]:
    if batch.erp_job_id:
        return batch.erp_job_id, F.ERP_JOB_ID
    return batch.job_number, F.JOB_NUMBER


def line_total(batch: ExportBatch, item: ExportItem) -> Decimal | None:
    """The line's new total original amount (see "Import semantics"), or None when the batch lacks it."""
    if item.line_original_amount is not None:
        return item.line_original_amount
    if item.is_new_line or batch.request_kind == "CREATE_BUDGET":
        return item.amount
    return None


def validate(batch: ExportBatch, cost_type_map: dict[str, int] | None = None) -> list[FormatViolation]:
    """Every value the JC import files cannot carry as it is (pure; see the module docstring)."""
    mapping = cost_type_map or {}
    found: list[FormatViolation] = []
    job, job_field = job_of(batch)
    if problem := code_problem(job, JOB_SIZE):
        found.append(FormatViolation(None, job_field, f"The job {job!r} {problem} (Vista bJob)."))
    estimate_keys: dict[tuple[str, int], str] = {}
    for item in batch.items:
        found.extend(_item_violations(batch, item, mapping, estimate_keys))
    return unique_violations(found)


def _item_violations(
    batch: ExportBatch, item: ExportItem, mapping: dict[str, int], estimate_keys: dict[tuple[str, int], str]
) -> Iterable[FormatViolation]:
    line, label = item.line_item_id, item.line_label

    def violation(field: F, detail: str) -> FormatViolation:
        return FormatViolation(line, field, f"Line {label}: {detail}.")

    if problem := code_problem(item.cost_code, PHASE_SIZE):
        yield violation(F.COST_CODE, f"the cost code {item.cost_code!r} {problem} (Vista phase, bPhase)")
    number = vista_cost_type(item.cost_type, mapping)
    if number is None:
        yield violation(
            F.COST_TYPE,
            f"the cost type {item.cost_type!r} has no Vista cost type number (1-255); map it with the connection's "
            f"option cost_type_map (e.g. {item.cost_type}:1)",
        )
    unit = (item.unit_of_measure or "").strip()
    if unit and (problem := code_problem(unit, UM_SIZE)):
        yield violation(F.UNIT_OF_MEASURE, f"the unit of measure {unit!r} {problem} (Vista U/M, bUM)")
    if item.kind == "BUDGET_MODIFICATION":
        if problem := fits_number(item.amount, integer=COST_DIGITS, places=COST_PLACES):
            yield violation(
                F.MODIFICATIONS_AMOUNT,
                f"budget modification {item.modification_number}'s amount on this line {problem} (Vista Est Cost, "
                "bDollar)",
            )
        return
    # An estimates row.
    if number is not None:
        key = (item.cost_code, number)
        other = estimate_keys.setdefault(key, item.line_item_id)
        if other != item.line_item_id:
            yield violation(
                F.COST_TYPE,
                f"the cost type {item.cost_type!r} maps to Vista cost type {number}, like another line on phase "
                f"{item.cost_code}; Vista keeps one original estimate per phase and cost type, so one would overwrite "
                "the other",
            )
    total = line_total(batch, item)
    if total is None:
        yield violation(
            F.ORIGINAL_AMOUNT,
            "the export does not carry the line's new total original amount, and Vista's JC Original Estimates "
            "import replaces the estimate with what it is given (a change would overwrite it)",
        )
    elif problem := fits_number(total, integer=COST_DIGITS, places=COST_PLACES):
        yield violation(F.ORIGINAL_AMOUNT, f"the original amount {problem} (Vista Cost, bDollar)")
    if item.quantity is not None:
        if problem := fits_number(item.quantity, integer=UNITS_DIGITS, places=UNITS_PLACES):
            yield violation(F.QUANTITY, f"the quantity {problem} (Vista Units, bUnits)")
        elif is_hours(unit_of_measure(item)) and (
            problem := fits_number(item.quantity, integer=HOURS_DIGITS, places=HOURS_PLACES)
        ):
            yield violation(F.QUANTITY, f"the quantity, written as Hours for the unit {unit!r}, {problem} (Vista bHrs)")
    if item.unit_cost is not None:
        if problem := fits_number(item.unit_cost, integer=UNIT_COST_DIGITS, places=UNIT_COST_PLACES):
            yield violation(F.UNIT_COST, f"the unit cost {problem} (Vista Unit Cost, bUnitCost)")
    elif total is not None and item.quantity:
        derived = _derived_unit_cost(total, item.quantity)
        if problem := fits_number(derived, integer=UNIT_COST_DIGITS, places=UNIT_COST_PLACES):
            yield violation(F.UNIT_COST, f"the unit cost derived as cost / units {problem} (Vista bUnitCost)")


# ---------------------------------------------------------------- the files


def aco(batch: ExportBatch) -> str:
    """``BB`` + the request's sequence in (at least) 4 digits: at most 10 characters up to request 99,999,999."""
    number = f"BB{batch.request_sequence:04d}"
    if len(number) > ACO_SIZE:
        raise ConnectorError(f"request {batch.request_sequence} has no Vista ACO of at most {ACO_SIZE} characters")
    return number


def render(batch: ExportBatch, company_number: int = 1, cost_type_map: dict[str, int] | None = None) -> list[DropFile]:
    """The files of one request (pure: no I/O). Call `validate` first: a value that does not fit raises
    ConnectorError here (nothing is cut or rounded)."""
    refuse_sub_jobs(batch, "Vista")
    mapping = cost_type_map or {}
    stem = file_stem(batch)
    files = []
    if batch.originals:
        files.append(DropFile(f"{stem}_{ESTIMATES_SUFFIX}.csv", _estimates(batch, mapping)))
    if batch.modifications:
        files.append(DropFile(f"{stem}_{CHANGE_ORDER_SUFFIX}.csv", _change_order(batch, company_number, mapping)))
    return files


def _job(batch: ExportBatch) -> str:
    return job_of(batch)[0]


def unit_of_measure(item: ExportItem) -> str:
    return (item.unit_of_measure or "").strip() or LUMP_SUM


def is_hours(unit: str) -> bool:
    return unit.upper() in HOURS_UNITS


def _cost_type(item: ExportItem, mapping: dict[str, int]) -> Raw:
    number = vista_cost_type(item.cost_type, mapping)
    if number is None:
        raise ConnectorError(f"cost type {item.cost_type!r} has no Vista cost type number")
    return Raw(str(number))


def _derived_unit_cost(cost: Decimal, units: Decimal) -> Decimal:
    return (cost / units).quantize(Decimal(1).scaleb(-UNIT_COST_PLACES), rounding=ROUND_HALF_UP)


def _estimates(batch: ExportBatch, mapping: dict[str, int]) -> str:
    rows: list[Sequence[str]] = [ESTIMATES_HEADER]
    written: set[str] = set()
    for item in batch.originals:
        if item.line_item_id in written:  # one row per line: it carries the line's total
            continue
        written.add(item.line_item_id)
        total = line_total(batch, item)
        if total is None:
            raise ConnectorError(f"line {item.line_label}: the export lacks the line's new total original amount")
        um = unit_of_measure(item)
        units = item.quantity
        hours = units if units is not None and is_hours(um) else None
        if item.unit_cost is not None:
            unit_cost: Decimal | None = item.unit_cost
        elif units:
            unit_cost = _derived_unit_cost(total, units)
        else:
            unit_cost = None
        rows.append((
            _job(batch), item.cost_code, _cost_type(item, mapping), um,
            decimal_text(hours, HOURS_PLACES), decimal_text(units, UNITS_PLACES),
            decimal_text(unit_cost, UNIT_COST_PLACES), amount_text(total),
        ))
    return csv_document(rows)


def item_description(notes: str | None, number: int | None) -> str:
    """The ITEM description: the notes (at most 60 characters, else visibly shortened), or a default."""
    if not notes:
        return f"Budget modification {number}"
    if len(notes) <= DESCRIPTION_SIZE:
        return notes
    return notes[: DESCRIPTION_SIZE - 3] + "..."


def _change_order(batch: ExportBatch, company_number: int, mapping: dict[str, int]) -> str:
    co, job, number = Raw(str(company_number)), _job(batch), aco(batch)
    missing = [item for item in batch.modifications if item.modification_number is None]
    if missing:
        raise ConnectorError(f"modification entry {missing[0].entry_id} has no modification number")
    rows: list[Sequence[str]] = [(
        "HDR", co, job, number, f"Budget modifications, BudgetBridge request {batch.request_sequence}",
        Raw(batch.export_date.strftime("%m/%d/%Y")),
    )]
    by_number = sorted(batch.modifications, key=lambda item: item.modification_number or 0)  # stable
    for mod_number, group in groupby(by_number, key=lambda item: item.modification_number):
        details = list(group)
        notes = next((item.modification_notes for item in details if item.modification_notes), None)
        rows.append(("ITEM", co, job, number, Raw(str(mod_number)), item_description(notes, mod_number), ""))
        rows.extend(
            (
                "ITEMDTL", co, job, number, Raw(str(mod_number)), item.cost_code, _cost_type(item, mapping),
                unit_of_measure(item), decimal_text(None, HOURS_PLACES), decimal_text(None, UNITS_PLACES),
                decimal_text(None, UNIT_COST_PLACES), amount_text(item.amount),
            )
            for item in details
        )
    return csv_document(rows)
