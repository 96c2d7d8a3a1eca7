"""Viewpoint Vista (Trimble Viewpoint): JC import files in a drop folder, uploaded with Vista's Imports (IM).

A request becomes up to two comma-separated files (CRLF line ends, RFC 4180 quoting via the csv module):

* ORIGINAL_BUDGET entries -> ``<job>_<export id>_JCOrigEst.csv`` (JC Original Estimates);
* BUDGET_MODIFICATION entries -> ``<job>_<export id>_JCChangeOrder.csv`` (JC Change Order import).

A request with only original-budget entries writes only the estimates file, one with only modifications
only the change order file, one with both writes both. ``erp_reference`` is the file name, or both names
joined by ``"; "``.

JC Original Estimates file
--------------------------
Header row, then one row per original-budget entry::

    Job,Phase,Cost Type,U/M,Hours,Units,Unit Cost,Cost

These are the fields of Vista's JC Original Estimates form (Job, Phase, Cost Type, U/M, Hours, Units, Unit
Cost, Cost), in the order of DOMAIN.md. The stored documentation has no column layout for an estimates
import file, so this column order is ours (DOMAIN.md) and is mapped in the IM template (Template Detail).
Source: Vista help, "JC Original Estimates Form" and "Field Definitions: JC Original Estimates Form"
(help.trimble.com/en/vista/vista/costs-and-contracts/job-cost/jobs-and-contracts-setup/jc-original-estimates-form).

* Job: ``ExportBatch.erp_job_id`` (the id ``sync_job`` returned), else the job number.
* Phase / Cost Type: ExportItem.cost_code / cost_type, as given (Vista adds a cost type missing on the
  phase automatically; a code Vista does not know is reported by the IM upload, not altered here).
* U/M: the line's unit of measure as given, else ``LS`` -- Vista's JC Phases help: "If no quantity (units)
  is being tracked, it may be set up as LS (lump sum)". Units of measure must exist in HQ Units of Measure
  (3 characters); translate others with an IM cross-reference.
* Units: the line's quantity, 3 places (bUnits), rounded half up -- only when the quantity travels (below),
  else 0.000.
* Hours (our rule): equal to Units when the unit of measure is an hours unit (HR, HRS, HOUR or HOURS, any
  case), else 0.00. Vista keeps hours separate from units; for other units we have no hours to send.
* Unit Cost: the line's unit cost (5 places, bUnitCost) when units travel; without a unit cost, Cost /
  Units rounded half up to 5 places; 0.00000 when no units travel.
* Cost: the signed amount, exactly 2 places (a re-send carries the change of the original amount as a
  signed delta).

Units travel with a line's first original-budget entry only: every entry of a CREATE_BUDGET request and
zero-amount entries (a zero delta is never exported, so a zero entry is a new line). Re-sent deltas and
modifications move money only, so units are never counted twice. ExportItem.is_new_line marks a line's first
export, so a new line added on a re-send carries its units too.

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
  modification's notes (cut to 60 characters), else ``Budget modification <n>``. Contract Item is left
  blank: BudgetBridge does not know the contract; give it a default in the IM template.
* One ITEMDTL per modification entry (per phase/cost type line; a modification moving money between two
  lines has two), in batch order: Est Cost = the signed amount (money moved out of a line is negative); a
  modification moves money only, so Est Hours 0.00, Est Units 0.000, Unit Cost 0.00000; U/M as in the
  estimates file.

Sub jobs: Vista has none; ``supports_sub_jobs`` is False and ``export`` refuses an item with a sub job
(ConnectorError, not retryable) as defence in depth.

Jobs and posting: ``sync_job`` writes nothing and returns the job number (the job, its contract and phases
are set up in Vista's JC Jobs). A file drop cannot see posting: ``posted`` returns None (an integrator
confirms), ``mark_posted`` does nothing.

Options: ``drop_folder`` (required; created when missing), ``company_number`` (Vista JCCo, an integer
0-255, default 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby
from typing import Any

from domain.export import Capabilities
from erp.base import ConnectorConfigError, ConnectorError, ExportBatch, ExportItem, option
from erp.files import (
    DropFile,
    DropFolder,
    DropFolderConnector,
    amount_text,
    clip,
    decimal_text,
    file_stem,
    folder_option,
    refuse_sub_jobs,
)

ESTIMATES_HEADER = ("Job", "Phase", "Cost Type", "U/M", "Hours", "Units", "Unit Cost", "Cost")
HOURS_UNITS = frozenset({"HR", "HRS", "HOUR", "HOURS"})
LUMP_SUM = "LS"
HOURS_PLACES = 2
UNITS_PLACES = 3
UNIT_COST_PLACES = 5
DESCRIPTION_SIZE = 60
ESTIMATES_SUFFIX = "JCOrigEst"
CHANGE_ORDER_SUFFIX = "JCChangeOrder"


class VistaCsvConnector(DropFolderConnector):
    name = "vista-csv"
    display_name = "Viewpoint Vista (JC import files)"
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

    def render(self, batch: ExportBatch) -> list[DropFile]:
        return render(batch, self.company_number)


def company_option(settings: dict[str, Any]) -> int:
    value = option(settings, "company_number", required=False, default=1)
    if value in (None, ""):
        return 1
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConnectorConfigError("the option 'company_number' must be a Vista JC company number such as 1")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 255:
        raise ConnectorConfigError(
            f"the option 'company_number' must be a Vista JC company number from 0 to 255, not {value!r}"
        )
    return int(text)


def aco(batch: ExportBatch) -> str:
    return f"BB{batch.request_sequence:04d}"


def render(batch: ExportBatch, company_number: int = 1) -> list[DropFile]:
    """The files of one request (pure: no I/O). Raises ConnectorError for content Vista cannot take."""
    refuse_sub_jobs(batch, "Vista")
    stem = file_stem(batch)
    files = []
    if batch.originals:
        files.append(DropFile(f"{stem}_{ESTIMATES_SUFFIX}.csv", _estimates(batch)))
    if batch.modifications:
        files.append(DropFile(f"{stem}_{CHANGE_ORDER_SUFFIX}.csv", _change_order(batch, company_number)))
    return files


def _job(batch: ExportBatch) -> str:
    return batch.erp_job_id or batch.job_number


def _csv(rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def unit_of_measure(item: ExportItem) -> str:
    return (item.unit_of_measure or "").strip() or LUMP_SUM


def units_travel(batch: ExportBatch, item: ExportItem) -> bool:
    """Whether this entry is a line's first original-budget entry (see the module docstring)."""
    if item.kind != "ORIGINAL_BUDGET" or item.quantity is None:
        return False
    return item.is_new_line or batch.request_kind == "CREATE_BUDGET" or item.amount == Decimal(0)


def _estimates(batch: ExportBatch) -> str:
    rows: list[Sequence[str]] = [ESTIMATES_HEADER]
    for item in batch.originals:
        um = unit_of_measure(item)
        units = item.quantity if units_travel(batch, item) else None
        hours = units if units is not None and um.upper() in HOURS_UNITS else None
        rows.append((
            _job(batch), item.cost_code, item.cost_type, um,
            decimal_text(hours, HOURS_PLACES), decimal_text(units, UNITS_PLACES),
            decimal_text(_unit_cost(item, units), UNIT_COST_PLACES), amount_text(item.amount),
        ))
    return _csv(rows)


def _unit_cost(item: ExportItem, units: Decimal | None) -> Decimal | None:
    if units is None:
        return None
    if item.unit_cost is not None:
        return item.unit_cost
    if units == 0:
        return None
    return (item.amount / units).quantize(Decimal(1).scaleb(-UNIT_COST_PLACES), rounding=ROUND_HALF_UP)


def _change_order(batch: ExportBatch, company_number: int) -> str:
    co, job, number = str(company_number), _job(batch), aco(batch)
    missing = [item for item in batch.modifications if item.modification_number is None]
    if missing:
        raise ConnectorError(f"modification entry {missing[0].entry_id} has no modification number")
    rows: list[Sequence[str]] = [(
        "HDR", co, job, number, f"Budget modifications, BudgetBridge request {batch.request_sequence}",
        batch.export_date.strftime("%m/%d/%Y"),
    )]
    by_number = sorted(batch.modifications, key=lambda item: item.modification_number or 0)  # stable
    for mod_number, group in groupby(by_number, key=lambda item: item.modification_number):
        details = list(group)
        notes = next((item.modification_notes for item in details if item.modification_notes), None)
        rows.append((
            "ITEM", co, job, number, str(mod_number),
            clip(notes, DESCRIPTION_SIZE) or f"Budget modification {mod_number}", "",
        ))
        rows.extend(
            (
                "ITEMDTL", co, job, number, str(mod_number), item.cost_code, item.cost_type, unit_of_measure(item),
                decimal_text(None, HOURS_PLACES), decimal_text(None, UNITS_PLACES),
                decimal_text(None, UNIT_COST_PLACES), amount_text(item.amount),
            )
            for item in details
        )
    return _csv(rows)
