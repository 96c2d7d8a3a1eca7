"""Sage 300 Construction and Real Estate (formerly Timberline): Job Cost estimate import files in a drop folder.

Layout (documented)
-------------------
One comma-separated *category record* per line, as written by Sage Estimating's Job Cost Transfer wizard and
read by Sage 300 CRE Job Cost (Tools > Import > Estimate):

====  ====================================  =========  =========================================
 #    field                                 size       written here
====  ====================================  =========  =========================================
 1    type of record                        1          ``C``
 2    job cost phase code (cost code)       15         ExportItem.cost_code, as given
 3    phase description                     30         the line's description, else the cost
                                                       code's description; cut to 30 characters
 4    job cost category (cost type)         3          ExportItem.cost_type, as given
 5    date of file generation (mmddyyyy)    8          ExportBatch.export_date, unquoted
 6    item quantity                         8.2 signed quantity, 2 places (see "Quantities")
 7    unit description                      4          unit of measure when the quantity travels
 8    amount                                8.2 signed signed amount, exactly 2 places, no floats
====  ====================================  =========  =========================================

Documented example: ``"C"," 318100"," ","LAB",02051997,0.66,"hour",9.90,,,"",""`` -- text fields quoted,
numbers and the date bare. We write the eight documented fields in that style; the four trailing fields of
the example are not documented and are not written. Quoting follows RFC 4180 (a quote inside a text field is
doubled, so commas and quotes in descriptions are safe); lines end with CRLF. Sage Estimating's own transfer
files carry the extension ``.JCE``; these have the same comma-separated content and end in ``.csv``.

Sources:
* Sage Estimating help, "Category record for Sage 300 Construction and Real Estate":
  https://help-sageestimating.na.sage.com/en-us/23_1/Content/300CRE_Integration/Sage300_category_transaction.htm
* Sage knowledge base, "Job Cost estimate import" (us-kb.sage.com, k2dockey=222924850025123): importing
  creates a missing job; "Import as an Approved Estimate Change" (a checkbox of the import run) creates
  approved estimate change transactions instead of original estimates; imported entries are then posted
  with Tasks > Post Entries; a re-imported file only gets a warning.

Original estimates vs approved estimate changes
-----------------------------------------------
The documented record has a single record type (``C``); whether records become original estimates or
approved estimate changes is chosen per import run by the checkbox above, not per record. A request is
therefore written as up to two files, so that each can be imported with the right setting:

* ``<job>_<export id>_estimate.csv``: ORIGINAL_BUDGET entries (new lines, including zero-amount lines so
  the cost code/category exists; re-sent original amounts as signed deltas). Import normally.
* ``<job>_<export id>_approved-changes.csv``: BUDGET_MODIFICATION entries (money moved out of a line is
  negative). Import with "Import as an Approved Estimate Change" checked.

A request with only one kind writes only that file. ``erp_reference`` is the file name, or both names
joined by ``"; "``.

Quantities
----------
The quantity (rounded half up to 2 places) and unit travel with a line's first original-budget entry only:
every entry of a CREATE_BUDGET request, and zero-amount entries (a zero delta is never exported, so a zero
entry is always a new line). Re-sent original deltas and modifications move money only and carry quantity
0.00 with a blank unit, so imported transactions never add a line's quantity twice. ExportItem.is_new_line
marks a line's first export, so a new line added on a re-send carries its quantity too.

Sub jobs
--------
Sage 300 CRE keeps sub jobs as *extras* of a job, but the documented category record has no extra field:
an amount for a sub job could only be booked on the base job's cost code. ``supports_sub_jobs`` is therefore
False (the workflow blocks such sends) and ``export`` refuses items with a sub job.

Jobs and posting
----------------
``sync_job`` writes nothing and returns the job number: the estimate import creates a missing job, and cost
codes are created on import when "Allow creation of Cost Codes not on standard Cost Code list" is set
(categories must be standard categories). A file drop cannot see posting in Job Cost: ``posted`` returns
None and an integrator confirms posting; ``mark_posted`` does nothing.

Options: ``drop_folder`` (required; created when missing), ``encoding`` (default ``utf-8``; characters the
encoding cannot represent are written as ``?``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from domain.export import Capabilities
from erp.base import ExportBatch, ExportItem
from erp.files import (
    DropFile,
    DropFolder,
    DropFolderConnector,
    amount_text,
    clip,
    decimal_text,
    encoding_option,
    file_stem,
    folder_option,
    refuse_sub_jobs,
)

RECORD_TYPE = "C"
DESCRIPTION_SIZE = 30
QUANTITY_PLACES = 2
ESTIMATE_SUFFIX = "estimate"
CHANGES_SUFFIX = "approved-changes"


class Sage300FileConnector(DropFolderConnector):
    name = "sage300-file"
    display_name = "Sage 300 CRE (estimate import file)"
    capabilities = Capabilities(
        exports_budget=True,
        exports_modifications=True,
        supports_sub_jobs=False,
        requires_posting=True,
        exports_quantities=True,
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        settings = dict(options or {})
        self.folder = DropFolder(folder_option(settings), encoding=encoding_option(settings))

    def render(self, batch: ExportBatch) -> list[DropFile]:
        return render(batch)


def render(batch: ExportBatch) -> list[DropFile]:
    """The files of one request (pure: no I/O). Raises ConnectorError for content Sage cannot take."""
    refuse_sub_jobs(batch, "Sage 300 CRE")
    stem = file_stem(batch)
    files = []
    if batch.originals:
        files.append(DropFile(f"{stem}_{ESTIMATE_SUFFIX}.csv", _lines(batch, batch.originals)))
    if batch.modifications:
        files.append(DropFile(f"{stem}_{CHANGES_SUFFIX}.csv", _lines(batch, batch.modifications)))
    return files


def _lines(batch: ExportBatch, items: Iterable[ExportItem]) -> str:
    date = batch.export_date.strftime("%m%d%Y")
    return "".join(_record(_fields(batch, item, date)) for item in items)


def _fields(batch: ExportBatch, item: ExportItem, date: str) -> list[tuple[str, bool]]:
    """(text, quoted) per documented field."""
    quantity = item.quantity if quantity_travels(batch, item) else None
    unit = (item.unit_of_measure or "").strip() if quantity is not None else ""
    return [
        (RECORD_TYPE, True),
        (item.cost_code, True),
        (clip(item.description or item.cost_code_description, DESCRIPTION_SIZE), True),
        (item.cost_type, True),
        (date, False),
        (decimal_text(quantity, QUANTITY_PLACES), False),
        (unit, True),
        (amount_text(item.amount), False),
    ]


def quantity_travels(batch: ExportBatch, item: ExportItem) -> bool:
    """Whether this entry is a line's first original-budget entry (see "Quantities")."""
    if item.kind != "ORIGINAL_BUDGET":
        return False
    return item.is_new_line or batch.request_kind == "CREATE_BUDGET" or item.amount == Decimal(0)


def _record(fields: Sequence[tuple[str, bool]]) -> str:
    return ",".join(_quote(text) if quoted else text for text, quoted in fields) + "\r\n"


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
