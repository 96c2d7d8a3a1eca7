"""Sage 300 Construction and Real Estate (formerly Timberline): Job Cost estimate import files in a drop folder.

Layout (documented)
-------------------
One comma-separated *category record* per line, as written by Sage Estimating's Job Cost Transfer wizard and
read by Sage 300 CRE Job Cost (Tools > Import > Estimate):

====  ====================================  ===========  ======================================================
 #    field                                 size         written here
====  ====================================  ===========  ======================================================
 1    type of record                        1            ``C``
 2    job cost phase code (cost code)       15           ExportItem.cost_code, as given
 3    phase description                     30           the line's description, else the cost code's
 4    job cost category (cost type)         3            ExportItem.cost_type, as given
 5    date of file generation (mmddyyyy)    8            ExportBatch.export_date, unquoted
 6    item quantity                         8.2 signed   quantity, 2 places (see "Quantities")
 7    unit description                      4            unit of measure when the quantity travels
 8    amount                                8.2 signed   signed amount, exactly 2 places, no floats
====  ====================================  ===========  ======================================================

Source of every size above: Sage Estimating help, "Category record for Sage 300 Construction and Real Estate"
(https://help-sageestimating.na.sage.com/en-us/23_1/Content/300CRE_Integration/Sage300_category_transaction.htm).
"8.2 signed" is read as: an optional minus, at most 8 digits before the decimal point and at most 2 after
(so the largest amount is 99,999,999.99).

Documented example: ``"C"," 318100"," ","LAB",02051997,0.66,"hour",9.90,,,"",""`` -- text fields quoted,
numbers and the date bare. We write the eight documented fields in that style; the four trailing fields of
the example are not documented and are not written. Quoting follows RFC 4180 (a quote inside a text field is
doubled, so commas and quotes in descriptions are safe); lines end with CRLF. Sage Estimating's own transfer
files carry the extension ``.JCE``; these have the same comma-separated content and end in ``.csv``. Every
text cell goes through erp.files.csv_record (formula-injection guard; see erp/files.py).

Other sources:
* Sage knowledge base, "Job Cost estimate import" (us-kb.sage.com, k2dockey=222924850025123): importing
  creates a missing job; "Import as an Approved Estimate Change" (a checkbox of the import run) creates
  approved estimate change transactions instead of original estimates; the import stops with errors if a
  category is not a Standard Category; imported entries are then posted with Tasks > Post Entries; a
  re-imported file only gets a warning.
* Sage Estimating help, "Setting up in Sage 300 Construction and Real Estate Job Cost": Job Cost formats the
  imported phase codes; cost codes are limited to 12 characters by a formatted cost code format and 15 by a
  free-form one. We check the record's 15; a company with a 12-character format sees the import report it.

Validation: nothing is truncated or rounded
-------------------------------------------
`validate(batch)` reports every value that does not fit the record as it is, one FormatViolation per line and
field, and `export()` refuses such a batch before writing anything:

* cost code (``costCode``): 1..15 characters; category (``costType``): 1..3 characters; unit
  (``unitOfMeasure``, when it travels): at most 4 characters. Codes must not contain control characters or
  begin with ``=``, ``+``, ``-``, ``@`` (a protective quote would change the code);
* description (``description``): at most 30 characters *as written* (including the quote that neutralises a
  leading ``=``, ``+``, ``-``, ``@`` or tab), no line breaks. When the line has no description the cost code's
  description is written, and must fit too (give the line a shorter description);
* quantity (``quantity``, when it travels): at most 8 digits before and 2 after the decimal point;
* amount: at most 8 digits before and 2 after the point (``originalAmount`` for an original-budget entry,
  ``modificationsAmount`` for one side of a budget modification);
* job (``number`` / ``erpJobId``, no line) and extra (``subJob``): see "Jobs and extras".

Original estimates vs approved estimate changes
-----------------------------------------------
The documented record has a single record type (``C``); whether records become original estimates or
approved estimate changes is chosen per import run by the checkbox above, not per record. A request is
therefore written as up to two files per job or extra, so that each can be imported with the right setting:

* ``..._estimate.csv``: ORIGINAL_BUDGET entries (new lines, including zero-amount lines so the cost
  code/category exists; re-sent original amounts as signed deltas -- the estimate import *adds* transactions).
  Import normally.
* ``..._approved-changes.csv``: BUDGET_MODIFICATION entries (money moved out of a line is negative). Import
  with "Import as an Approved Estimate Change" checked.

Jobs and extras
---------------
The job is ``ExportBatch.erp_job_id`` (what ``sync_job`` returned: the job number), else the job number. Sub
jobs are Sage 300 CRE *extras* of the job (Procore's Sage 300 CRE integration maps sub jobs to extras the same
way). The documented category record has no job and no extra field, and the stored documentation does not
give the record that carries them; each file therefore holds the entries of exactly one job or extra and says
which in its name, so the accountant imports it into that job / extra:

* base job: ``<job>_<export id>_estimate.csv`` / ``<job>_<export id>_approved-changes.csv``;
* extra:    ``<job>_extra-<extra>_<export id>_estimate.csv`` / ``..._approved-changes.csv``.

Files are written base job first, then extras in alphabetical order, estimate before approved changes;
``erp_reference`` lists their names joined by ``"; "``. Because the job and the extra travel in the file name,
they must be file-name safe (letters, digits, ``.``, ``-``, ``_``). Sizes: the stored documentation gives
none for the job or the extra; we allow 10 characters for the job and 6 for an extra (conservative: the
shortest Timberline/Sage 300 CRE formats we know of). Adjust JOB_SIZE / EXTRA_SIZE if the company's Job Cost
settings allow longer ones.

Quantities
----------
The quantity and unit travel with a line's first original-budget entry only: every entry of a CREATE_BUDGET
request, and zero-amount entries (a zero delta is never exported, so a zero entry is always a new line).
Re-sent original deltas and modifications move money only and carry quantity 0.00 with a blank unit, so
imported transactions never add a line's quantity twice. ExportItem.is_new_line marks a line's first export,
so a new line added on a re-send carries its quantity too.

Jobs and posting
----------------
``sync_job`` writes nothing and returns the job number: the estimate import creates a missing job, and cost
codes are created on import when "Allow creation of Cost Codes not on standard Cost Code list" is set
(categories must be standard categories). A file drop cannot see posting in Job Cost: ``posted`` returns
None and an integrator confirms posting; ``mark_posted`` does nothing.

Options: ``drop_folder`` (required; an absolute path to an existing
writable directory, probed when the connection is saved), ``encoding`` (default ``utf-8``; characters the
encoding cannot represent are written as ``?``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from domain.export import Capabilities
from erp.base import REQUIRE_POSTING_TOTALS, ExportBatch, ExportItem, FormatViolation, unique_violations
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
    encoding_option,
    file_name_safe,
    fits_number,
    folder_option,
    posting_totals_option,
    safe_name,
    text_size_problem,
)

TARGET = "Sage 300 CRE"
RECORD_TYPE = "C"
# Sizes of the category record. Source: Sage Estimating help, "Category record for Sage 300 Construction and
# Real Estate" (help-sageestimating.na.sage.com/en-us/23_1/Content/300CRE_Integration/
# Sage300_category_transaction.htm), field numbers in brackets.
COST_CODE_SIZE = 15  # [2] job cost phase code, 15
DESCRIPTION_SIZE = 30  # [3] phase description, 30
CATEGORY_SIZE = 3  # [4] job cost category, 3
DATE_FORMAT = "%m%d%Y"  # [5] date of file generation (mmddyyyy), 8
QUANTITY_DIGITS, QUANTITY_PLACES = 8, 2  # [6] item quantity, 8.2 signed
UNIT_SIZE = 4  # [7] unit description, 4
AMOUNT_DIGITS, AMOUNT_PLACES = 8, 2  # [8] amount, 8.2 signed
# Not in the record and not in the stored documentation: chosen conservatively (see "Jobs and extras").
JOB_SIZE = 10
EXTRA_SIZE = 6
ESTIMATE_SUFFIX = "estimate"
CHANGES_SUFFIX = "approved-changes"


class Sage300FileConnector(DropFolderConnector):
    name = "sage300-file"
    display_name = "Sage 300 CRE (estimate import file)"
    target = TARGET
    options = {
        "drop_folder": DROP_FOLDER_HELP,
        "encoding": "the files' text encoding, such as utf-8 (default) or cp1252",
        REQUIRE_POSTING_TOTALS: FILE_POSTING_TOTALS_HELP,
    }
    capabilities = Capabilities(
        exports_budget=True,
        exports_modifications=True,
        supports_sub_jobs=True,  # as Sage 300 CRE extras, one file per extra
        requires_posting=True,
        exports_quantities=True,
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        settings = dict(options or {})
        self.folder = DropFolder(folder_option(settings), encoding=encoding_option(settings))
        self.requires_posting_totals = posting_totals_option(settings)

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        return validate(batch)

    def render(self, batch: ExportBatch) -> list[DropFile]:
        return render(batch)


# ---------------------------------------------------------------- validation


def job_of(batch: ExportBatch) -> tuple[str, F]:
    """The Sage job and the field it comes from."""
    if batch.erp_job_id:
        return batch.erp_job_id, F.ERP_JOB_ID
    return batch.job_number, F.JOB_NUMBER


def validate(batch: ExportBatch) -> list[FormatViolation]:
    """Every value the category record cannot carry as it is (pure; see the module docstring)."""
    found: list[FormatViolation] = []
    job, job_field = job_of(batch)
    problem = code_problem(job, JOB_SIZE)
    if problem is None and not file_name_safe(job):
        problem = "contains characters other than letters, digits, '.', '-' and '_' (it names the import file)"
    if problem is not None:
        found.append(FormatViolation(None, job_field, f"The job {job!r} {problem} (Sage 300 CRE job)."))
    for item in batch.items:
        found.extend(_item_violations(batch, item))
    return unique_violations(found)


def _item_violations(batch: ExportBatch, item: ExportItem) -> Iterable[FormatViolation]:
    line, label = item.line_item_id, item.line_label

    def violation(field: F, detail: str) -> FormatViolation:
        return FormatViolation(line, field, f"Line {label}: {detail}.")

    if problem := code_problem(item.cost_code, COST_CODE_SIZE):
        yield violation(F.COST_CODE, f"the cost code {item.cost_code!r} {problem} (Sage 300 CRE job cost phase code)")
    if problem := code_problem(item.cost_type, CATEGORY_SIZE):
        yield violation(F.COST_TYPE, f"the cost type {item.cost_type!r} {problem} (Sage 300 CRE job cost category)")
    if item.sub_job:
        problem = code_problem(item.sub_job, EXTRA_SIZE)
        if problem is None and not file_name_safe(item.sub_job):
            problem = "contains characters other than letters, digits, '.', '-' and '_' (it names the import file)"
        if problem is not None:
            yield violation(F.SUB_JOB, f"the sub job {item.sub_job!r} {problem} (Sage 300 CRE extra)")
    text, own = description_of(item)
    whose = "the description" if own else f"the cost code's description (the line has none) {text!r}"
    if "\r" in text or "\n" in text:
        yield violation(F.DESCRIPTION, f"{whose} contains a line break, which the one-line record cannot carry")
    elif problem := text_size_problem(text, DESCRIPTION_SIZE):
        fix = "" if own else "; give the line a description that fits"
        yield violation(F.DESCRIPTION, f"{whose} {problem} (Sage 300 CRE phase description){fix}")
    if quantity_travels(batch, item) and item.quantity is not None:  # else 0.00 and a blank unit are written
        if problem := fits_number(item.quantity, integer=QUANTITY_DIGITS, places=QUANTITY_PLACES):
            yield violation(F.QUANTITY, f"the quantity {problem} (Sage 300 CRE item quantity, 8.2 signed)")
        unit = unit_of(item)
        if unit and (problem := code_problem(unit, UNIT_SIZE)):
            yield violation(
                F.UNIT_OF_MEASURE, f"the unit of measure {unit!r} {problem} (Sage 300 CRE unit description)"
            )
    amount_field = F.ORIGINAL_AMOUNT if item.kind == "ORIGINAL_BUDGET" else F.MODIFICATIONS_AMOUNT
    what = "the original amount" if item.kind == "ORIGINAL_BUDGET" else (
        f"budget modification {item.modification_number}'s amount on this line"
    )
    if problem := fits_number(item.amount, integer=AMOUNT_DIGITS, places=AMOUNT_PLACES):
        yield violation(amount_field, f"{what} {problem} (Sage 300 CRE amount, 8.2 signed)")


def description_of(item: ExportItem) -> tuple[str, bool]:
    """The phase description written for this entry, and whether it is the line's own (else the cost code's)."""
    if item.description:
        return item.description, True
    return item.cost_code_description or "", False


def unit_of(item: ExportItem) -> str:
    return (item.unit_of_measure or "").strip()


def quantity_travels(batch: ExportBatch, item: ExportItem) -> bool:
    """Whether this entry is a line's first original-budget entry (see "Quantities")."""
    if item.kind != "ORIGINAL_BUDGET":
        return False
    return item.is_new_line or batch.request_kind == "CREATE_BUDGET" or item.amount == Decimal(0)


# ---------------------------------------------------------------- the files


def render(batch: ExportBatch) -> list[DropFile]:
    """The files of one request (pure: no I/O). Call `validate` first: a value that does not fit raises
    ConnectorError here (nothing is cut or rounded)."""
    job, _ = job_of(batch)
    extras = sorted({item.sub_job for item in batch.items if item.sub_job})
    files = []
    for extra in [None, *extras]:
        items = [item for item in batch.items if (item.sub_job or None) == extra]
        stem = file_stem(batch, job, extra)
        originals = [item for item in items if item.kind == "ORIGINAL_BUDGET"]
        changes = [item for item in items if item.kind == "BUDGET_MODIFICATION"]
        if originals:
            files.append(DropFile(f"{stem}_{ESTIMATE_SUFFIX}.csv", _lines(batch, originals)))
        if changes:
            files.append(DropFile(f"{stem}_{CHANGES_SUFFIX}.csv", _lines(batch, changes)))
    return files


def file_stem(batch: ExportBatch, job: str, extra: str | None) -> str:
    """`<job>[_extra-<extra>]_<export id>`: unique per request, job and extra, stable across retries."""
    export = safe_name(batch.export_id, limit=60, fallback="export")
    where = safe_name(job, limit=30) + (f"_extra-{safe_name(extra, limit=30)}" if extra else "")
    return f"{where}_{export}"


def _lines(batch: ExportBatch, items: Iterable[ExportItem]) -> str:
    date = Raw(batch.export_date.strftime(DATE_FORMAT))
    return csv_document([_fields(batch, item, date) for item in items], quote_text=True)


def _fields(batch: ExportBatch, item: ExportItem, date: Raw) -> Sequence[str]:
    quantity = item.quantity if quantity_travels(batch, item) else None
    return [
        RECORD_TYPE,
        item.cost_code,
        description_of(item)[0],
        item.cost_type,
        date,
        decimal_text(quantity, QUANTITY_PLACES),
        unit_of(item) if quantity is not None else "",
        amount_text(item.amount),
    ]
