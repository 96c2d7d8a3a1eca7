"""One DataLoader per relation, each answering a whole batch of keys with one statement (or a fixed few).
Every loader is scoped to the viewer's company: a key of another company simply finds nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Row
from strawberry.dataloader import DataLoader

from domain import permissions
from domain.permissions import Grant, PermissionLevel, ProjectAccess
from persistence import queries, reads
from persistence.database import Database
from persistence.records import BudgetRecord
from persistence.tables import (
    budgets,
    companies,
    cost_codes,
    cost_types,
    erp_requests,
    modifications,
    projects,
    users,
)
from resolvers.budget_state import ExportState, export_state
from resolvers.context import Viewer
from resolvers.views import LineItemView, ModificationView, line_item_views, modification_views

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LinePageKey = tuple[str, int | None, int]  # (budget id, after position, limit)


def access_from_row(row: Row | None) -> ProjectAccess:
    if row is None:
        return permissions.NO_ACCESS
    return ProjectAccess(PermissionLevel[row.budget_permission], frozenset(Grant(g) for g in (row.grants or [])))


class Loaders:
    def __init__(self, db: Database, viewer: Viewer | None) -> None:
        self._db = db
        self._company = viewer.actor.company_id if viewer else None
        self._user = viewer.actor.user_id if viewer else None
        by_id = self._by_id
        self.company = by_id(companies, company_scoped=False)
        self.user = by_id(users)
        self.project = by_id(projects)
        self.budget = by_id(budgets)
        self.cost_code = by_id(cost_codes)
        self.cost_type = by_id(cost_types)
        self.erp_request = by_id(erp_requests)
        self.access: DataLoader[str, ProjectAccess] = DataLoader(self._load_access)
        self.budget_by_project: DataLoader[str, Row | None] = DataLoader(self._load_budget_by_project)
        self.budget_totals: DataLoader[str, Row | None] = DataLoader(self._load_totals)
        self.line_page: DataLoader[LinePageKey, list[LineItemView]] = DataLoader(self._load_line_pages)
        self.line_item: DataLoader[str, LineItemView | None] = DataLoader(self._load_line_items)
        self.modifications: DataLoader[str, list[ModificationView]] = DataLoader(self._load_modifications)
        self.modification: DataLoader[str, ModificationView | None] = DataLoader(self._load_modification)
        self.requests_of_budget: DataLoader[str, list[Row]] = DataLoader(self._load_requests_of_budgets)
        self.request_lines: DataLoader[str, list[Row]] = DataLoader(self._load_request_lines)
        self.export_state: DataLoader[str, ExportState | None] = DataLoader(self._load_export_states)

    async def _read(self, query: Callable[..., Awaitable[V]], *args: Any, **kwargs: Any) -> V:
        async with self._db.read() as conn:
            return await query(conn, *args, **kwargs)

    def _by_id(self, table: Any, company_scoped: bool = True) -> DataLoader[str, Row | None]:
        async def load(ids: Sequence[str]) -> list[Row | None]:
            company = self._company if company_scoped else None
            rows = await self._read(reads.rows_by_ids, table, ids, company)
            found = {row.id: row for row in rows}
            return [found.get(i) for i in ids]

        return DataLoader(load)

    async def _load_access(self, project_ids: Sequence[str]) -> list[ProjectAccess]:
        if self._user is None:
            return [permissions.NO_ACCESS for _ in project_ids]
        rows = await self._read(reads.access_rows, self._user, project_ids)
        found = {row.project_id: row for row in rows}
        return [access_from_row(found.get(p)) for p in project_ids]

    async def _load_budget_by_project(self, project_ids: Sequence[str]) -> list[Row | None]:
        rows = await self._read(reads.budgets_by_project, self._company, project_ids)
        found = {row.project_id: row for row in rows}
        return [found.get(p) for p in project_ids]

    async def _load_totals(self, budget_ids: Sequence[str]) -> list[Row | None]:
        rows = await self._read(reads.budget_totals, budget_ids)
        found = {row.budget_id: row for row in rows}
        return [found.get(b) for b in budget_ids]

    async def _views(self, rows: list[Row]) -> list[LineItemView]:
        """Rows -> views with erpSynced: two more statements for the whole batch."""
        if not rows:
            return []
        ids = [row.id for row in rows]
        async with self._db.read() as conn:
            mod_rows = await reads.modifications_touching(conn, ids)
            entry_rows = await reads.entries_of_lines(conn, ids)
        return line_item_views(rows, mod_rows, entry_rows)

    async def _load_line_pages(self, keys: Sequence[LinePageKey]) -> list[list[LineItemView]]:
        groups: dict[tuple[int | None, int], list[str]] = defaultdict(list)
        for budget_id, after, limit in keys:
            groups[(after, limit)].append(budget_id)
        group_of: list[tuple[int | None, int]] = []
        rows = []
        for (after, limit), budget_ids in groups.items():
            group_rows = await self._read(reads.line_item_pages, budget_ids, after_position=after, limit=limit)
            rows += group_rows
            group_of += [(after, limit)] * len(group_rows)
        views = await self._views(rows)
        pages: dict[LinePageKey, list[LineItemView]] = defaultdict(list)
        for (after, limit), view in zip(group_of, views, strict=True):
            pages[(view.budget_id, after, limit)].append(view)
        return [pages.get(key, []) for key in keys]

    async def _load_line_items(self, ids: Sequence[str]) -> list[LineItemView | None]:
        rows = await self._read(reads.line_items_by_ids, ids, self._company)
        found = {v.id: v for v in await self._views(rows)}
        return [found.get(i) for i in ids]

    async def _load_modifications(self, budget_ids: Sequence[str]) -> list[list[ModificationView]]:
        async with self._db.read() as conn:
            rows = await reads.modifications_of_budgets(conn, budget_ids)
            entry_rows = await reads.entries_of_budgets(conn, budget_ids) if rows else []
        grouped: dict[str, list[ModificationView]] = defaultdict(list)
        for view in modification_views(rows, entry_rows):
            grouped[view.budget_id].append(view)
        return [grouped.get(b, []) for b in budget_ids]

    async def _load_modification(self, ids: Sequence[str]) -> list[ModificationView | None]:
        async with self._db.read() as conn:
            rows = await reads.rows_by_ids(conn, modifications, ids, self._company)
            entry_rows = await reads.entries_of_budgets(conn, list({r.budget_id for r in rows})) if rows else []
        found = {v.id: v for v in modification_views(rows, entry_rows)}
        return [found.get(i) for i in ids]

    async def _load_requests_of_budgets(self, budget_ids: Sequence[str]) -> list[list[Row]]:
        rows = await self._read(reads.requests_of_budgets, budget_ids)
        grouped: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row.budget_id].append(row)
        return [grouped.get(b, []) for b in budget_ids]

    async def _load_export_states(self, budget_ids: Sequence[str]) -> list[ExportState | None]:
        """The export state of several budgets in four statements (a list of budgets asking for
        sendBlockers costs the same as one)."""
        async with self._db.read() as conn:
            found = await queries.by_ids(conn, budgets, BudgetRecord, budget_ids, self._company)
            ids = [b.id for b in found]
            lines = await queries.lines_of_budgets(conn, ids)
            mods = await queries.modifications_of_budgets(conn, ids)
            entries = await queries.entries_of_budgets(conn, ids)
        states = {
            b.id: export_state(
                b,
                [r for r in lines if r.budget_id == b.id],
                [m for m in mods if m.budget_id == b.id],
                [e for e in entries if e.budget_id == b.id],
            )
            for b in found
        }
        return [states.get(b) for b in budget_ids]

    async def _load_request_lines(self, request_ids: Sequence[str]) -> list[list[Row]]:
        rows = await self._read(reads.lines_of_requests, request_ids)
        grouped: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row.request_id].append(row)
        return [grouped.get(r, []) for r in request_ids]
