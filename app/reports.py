"""`budgetbridge report reconciliation`: a budget's reconciliation (one row per line), or every project's totals
of a company, as CSV for a spreadsheet or as JSON.

The numbers are domain.reconciliation's, computed from the same records as `Budget.reconciliation` in the API
(resolvers.budget_state), read through the ReadStore: a fixed number of statements however many budgets.

The CSV is written with erp.files' writer, like the ERP import files: RFC 4180 quoting, CRLF line ends, every
text cell neutralised against formula injection (a cost code or description beginning with =, +, -, @, tab or
CR gets a leading quote), amounts as plain numbers with two decimals (negatives included), so a spreadsheet
sums them. One header row, then the rows, then a `Total` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.money import format_decimal, to_amount
from domain.reconciliation import Reconciliation, ReconciliationLine, totals_of
from erp.files import amount_text, csv_document
from persistence.reads import ReadStore
from persistence.records import BudgetRecord, CompanyRecord, LineItemRecord, ProjectRecord
from resolvers.budget_state import export_state, reconciliation_of


class ReportError(ValueError):
    """The budget or company does not exist (the message says which)."""


AMOUNT_COLUMNS = ("Revised amount", "Exported", "Posted", "Pending", "Unsent", "Difference")


@dataclass(frozen=True)
class BudgetReport:
    company: CompanyRecord
    project: ProjectRecord
    budget: BudgetRecord
    reconciliation: Reconciliation
    descriptions: dict[str, str]  # line id -> the line's description (else its cost code's)


@dataclass(frozen=True)
class ProjectTotals:
    project: ProjectRecord
    budget: BudgetRecord
    reconciliation: Reconciliation


@dataclass(frozen=True)
class CompanyReport:
    company: CompanyRecord
    projects: list[ProjectTotals]

    @property
    def totals(self) -> ReconciliationLine:
        return totals_of([p.reconciliation.totals for p in self.projects])

    @property
    def balanced(self) -> bool:
        return all(p.reconciliation.balanced for p in self.projects)


async def _reconciliations(
    reads: ReadStore, budgets: Sequence[BudgetRecord]
) -> dict[str, tuple[Reconciliation, list[LineItemRecord]]]:
    """Each budget's reconciliation and lines: three statements for all of them."""
    contents = await reads.contents_of_budgets([b.id for b in budgets])
    found: dict[str, tuple[Reconciliation, list[LineItemRecord]]] = {}
    for budget in budgets:
        content = contents[budget.id]
        state = export_state(budget, content.lines, content.modifications, content.entries)
        found[budget.id] = (reconciliation_of(state), content.lines)
    return found


async def budget_report(reads: ReadStore, budget_id: str) -> BudgetReport:
    budgets = await reads.budgets([budget_id], None)
    if not budgets:
        raise ReportError(f"no budget {budget_id}")
    budget = budgets[0]
    (project,) = await reads.projects([budget.project_id], None)
    (company,) = await reads.companies([budget.company_id])
    reconciliation, lines = (await _reconciliations(reads, [budget]))[budget.id]
    descriptions = {line.id: line.description or line.cost_code_description for line in lines}
    return BudgetReport(company, project, budget, reconciliation, descriptions)


async def company_report(reads: ReadStore, company_id: str) -> CompanyReport:
    companies = await reads.companies([company_id])
    if not companies:
        raise ReportError(f"no company {company_id}")
    projects = await reads.company_projects(company_id)
    budgets = {b.project_id: b for b in await reads.budgets_by_project(company_id, [p.id for p in projects])}
    found = await _reconciliations(reads, list(budgets.values()))
    rows = [
        ProjectTotals(project, budgets[project.id], found[budgets[project.id].id][0])
        for project in projects
        if project.id in budgets
    ]
    return CompanyReport(companies[0], rows)


# --- CSV ----------------------------------------------------------------------------------------------------


def _amounts(line: ReconciliationLine) -> list[str]:
    values = [line.revised_amount, line.exported, line.posted, line.pending, line.unsent, line.difference]
    return [amount_text(value) for value in values]


def _headers(currency: str) -> list[str]:
    return [f"{AMOUNT_COLUMNS[0]} ({currency})", *AMOUNT_COLUMNS[1:]]


def budget_csv(report: BudgetReport) -> str:
    header = ["Cost code", "Cost type", "Sub job", "Description", *_headers(report.company.currency)]
    rows: list[Sequence[str]] = [header]
    for line in report.reconciliation.lines:
        description = report.descriptions.get(line.line_item_id or "", "")
        rows.append([line.cost_code, line.cost_type, line.sub_job or "", description, *_amounts(line)])
    rows.append(["Total", "", "", "", *_amounts(report.reconciliation.totals)])
    return csv_document(rows)


def company_csv(report: CompanyReport) -> str:
    rows: list[Sequence[str]] = [
        ["Project number", "Project name", "Budget", *_headers(report.company.currency), "Balanced"]
    ]
    for row in report.projects:
        balanced = "yes" if row.reconciliation.balanced else "no"
        project = row.project
        rows.append([project.number, project.name, row.budget.id, *_amounts(row.reconciliation.totals), balanced])
    rows.append(["Total", "", "", *_amounts(report.totals), "yes" if report.balanced else "no"])
    return csv_document(rows)


# --- JSON -----------------------------------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return format_decimal(to_amount(value))


def line_json(line: ReconciliationLine) -> dict[str, Any]:
    return {
        "costCode": line.cost_code,
        "costType": line.cost_type,
        "subJob": line.sub_job,
        "lineItemId": line.line_item_id,
        "revisedAmount": _money(line.revised_amount),
        "exported": _money(line.exported),
        "posted": _money(line.posted),
        "pending": _money(line.pending),
        "unsent": _money(line.unsent),
        "difference": _money(line.difference),
    }


def _totals_json(line: ReconciliationLine) -> dict[str, Any]:
    return {k: v for k, v in line_json(line).items() if k not in ("costCode", "costType", "subJob", "lineItemId")}


def budget_json(report: BudgetReport) -> dict[str, Any]:
    return {
        "budget": report.budget.id,
        "project": {"id": report.project.id, "number": report.project.number, "name": report.project.name},
        "currency": report.company.currency,
        "lines": [
            {**line_json(line), "description": report.descriptions.get(line.line_item_id or "")}
            for line in report.reconciliation.lines
        ],
        "totals": _totals_json(report.reconciliation.totals),
        "balanced": report.reconciliation.balanced,
    }


def company_json(report: CompanyReport) -> dict[str, Any]:
    return {
        "company": report.company.id,
        "currency": report.company.currency,
        "projects": [
            {
                "project": {"id": row.project.id, "number": row.project.number, "name": row.project.name},
                "budget": row.budget.id,
                **_totals_json(row.reconciliation.totals),
                "balanced": row.reconciliation.balanced,
            }
            for row in report.projects
        ],
        "totals": _totals_json(report.totals),
        "balanced": report.balanced,
    }


__all__ = ["ReportError", "budget_csv", "budget_json", "budget_report", "company_csv", "company_json",
           "company_report"]
