"""One DataLoader per relation, each answering a whole batch of keys with one statement (or a fixed few),
through the app's ReadStore. Every loader is scoped to the viewer's company: a key of another company
simply finds nothing, and without a viewer nothing is found at all.

Loaders take the read store and the viewer's ids, not the request context, so `resolvers.context` can
build and type them without an import cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from domain import permissions
from domain.permissions import ProjectAccess
from persistence.keyset import Position
from persistence.reads import ReadStore
from persistence.records import (
    BudgetRecord,
    BudgetTotalsRecord,
    CompanyRecord,
    CostCodeRecord,
    CostTypeRecord,
    ErpRequestRecord,
    LineItemRecord,
    ProjectRecord,
    RequestEntryRecord,
    RequestLineRecord,
    UserRecord,
)
from resolvers.budget_state import ExportState, export_state
from resolvers.views import LineItemView, ModificationView, line_item_views, modification_views

V = TypeVar("V")
L = TypeVar("L", bound=DataLoader[Any, Any])

# (budget id, after (position, line id), limit, whether erpSynced is computed)
LinePageKey = tuple[str, Position | None, int, bool]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Id = TypeVar("Id", bound=_Identified)


def _in_order(keys: Sequence[str], found: Sequence[Id]) -> list[Id | None]:
    by_id = {record.id: record for record in found}
    return [by_id.get(key) for key in keys]


def _grouped(keys: Sequence[str], found: Sequence[V], key_of: Callable[[V], str]) -> list[list[V]]:
    groups: dict[str, list[V]] = defaultdict(list)
    for item in found:
        groups[key_of(item)].append(item)
    return [groups.get(key, []) for key in keys]


class Loaders:
    """Each loader is built on first use: a live subscription gets fresh loaders for every event, and most
    events are answered from a shared execution (resolvers.shared_execution) that uses none of them.
    Records known in advance are `seed`ed, and handed to their loader when (if ever) it is built."""

    def __init__(self, reads: ReadStore, company_id: str | None, user_id: str | None) -> None:
        self._reads = reads
        self._company = company_id
        self._user = user_id
        self._seeds: dict[str, dict[Any, Any]] = {}

    def seed(self, loader: str, key: Any, value: Any) -> None:
        """Prime `loader` with a record read elsewhere, now if it exists, else when it is built."""
        built = self.__dict__.get(loader)
        if isinstance(built, DataLoader):
            built.prime(key, value)
        else:
            self._seeds.setdefault(loader, {})[key] = value

    def _seeded(self, name: str, loader: L) -> L:
        seeds = self._seeds.pop(name, None)
        if seeds:
            loader.prime_many(seeds)
        return loader

    @cached_property
    def company(self) -> DataLoader[str, CompanyRecord | None]:
        return self._seeded("company", self._by_id(lambda ids, _company: self._reads.companies(ids)))

    @cached_property
    def user(self) -> DataLoader[str, UserRecord | None]:
        return self._seeded("user", self._by_id(self._reads.users))

    @cached_property
    def project(self) -> DataLoader[str, ProjectRecord | None]:
        return self._seeded("project", self._by_id(self._reads.projects))

    @cached_property
    def budget(self) -> DataLoader[str, BudgetRecord | None]:
        return self._seeded("budget", self._by_id(self._reads.budgets))

    @cached_property
    def cost_code(self) -> DataLoader[str, CostCodeRecord | None]:
        return self._seeded("cost_code", self._by_id(self._reads.cost_codes))

    @cached_property
    def cost_type(self) -> DataLoader[str, CostTypeRecord | None]:
        return self._seeded("cost_type", self._by_id(self._reads.cost_types))

    @cached_property
    def erp_request(self) -> DataLoader[str, ErpRequestRecord | None]:
        return self._seeded("erp_request", self._by_id(self._reads.requests))

    @cached_property
    def access(self) -> DataLoader[str, ProjectAccess]:
        return self._seeded("access", DataLoader(self._load_access))

    @cached_property
    def budget_by_project(self) -> DataLoader[str, BudgetRecord | None]:
        return self._seeded("budget_by_project", DataLoader(self._load_budget_by_project))

    @cached_property
    def budget_totals(self) -> DataLoader[str, BudgetTotalsRecord | None]:
        return self._seeded("budget_totals", DataLoader(self._load_totals))

    @cached_property
    def line_page(self) -> DataLoader[LinePageKey, list[LineItemView]]:
        return self._seeded("line_page", DataLoader(self._load_line_pages))

    @cached_property
    def line_item(self) -> DataLoader[str, LineItemView | None]:
        return self._seeded("line_item", DataLoader(self._load_line_items))

    @cached_property
    def line_item_unsynced(self) -> DataLoader[str, LineItemView | None]:
        """Lines by id without erpSynced (None): for a selection that does not ask for it."""
        return self._seeded("line_item_unsynced", DataLoader(self._load_unsynced_line_items))

    @cached_property
    def modifications(self) -> DataLoader[str, list[ModificationView]]:
        return self._seeded("modifications", DataLoader(self._load_modifications))

    @cached_property
    def modification(self) -> DataLoader[str, ModificationView | None]:
        return self._seeded("modification", DataLoader(self._load_modification))

    @cached_property
    def requests_of_budget(self) -> DataLoader[str, list[ErpRequestRecord]]:
        return self._seeded("requests_of_budget", DataLoader(self._load_requests_of_budgets))

    @cached_property
    def request_lines(self) -> DataLoader[str, list[RequestLineRecord]]:
        return self._seeded("request_lines", DataLoader(self._load_request_lines))

    @cached_property
    def request_entries(self) -> DataLoader[str, list[RequestEntryRecord]]:
        return self._seeded("request_entries", DataLoader(self._load_request_entries))

    @cached_property
    def export_state(self) -> DataLoader[BudgetRecord, ExportState]:
        # Keyed by the budget record the caller already holds (cached by its id): no re-read of the budget.
        return self._seeded("export_state", DataLoader(self._load_export_states, cache_key_fn=lambda budget: budget.id))

    def _by_id(self, read: Callable[[Sequence[str], str], Awaitable[Sequence[Id]]]) -> DataLoader[str, Id | None]:
        async def load(ids: Sequence[str]) -> list[Id | None]:
            if self._company is None:
                return [None for _ in ids]
            return _in_order(ids, await read(ids, self._company))

        return DataLoader(load)

    async def _load_access(self, project_ids: Sequence[str]) -> list[ProjectAccess]:
        if self._user is None:
            return [permissions.NO_ACCESS for _ in project_ids]
        found = await self._reads.access(self._user, project_ids)
        return [found.get(p, permissions.NO_ACCESS) for p in project_ids]

    async def _load_budget_by_project(self, project_ids: Sequence[str]) -> list[BudgetRecord | None]:
        if self._company is None:
            return [None for _ in project_ids]
        found = {b.project_id: b for b in await self._reads.budgets_by_project(self._company, project_ids)}
        return [found.get(p) for p in project_ids]

    async def _load_totals(self, budget_ids: Sequence[str]) -> list[BudgetTotalsRecord | None]:
        found = {t.budget_id: t for t in await self._reads.budget_totals(budget_ids)}
        return [found.get(b) for b in budget_ids]

    async def _views(self, lines: list[LineItemRecord]) -> list[LineItemView]:
        """Records -> views with erpSynced: two more statements for the whole batch."""
        if not lines:
            return []
        inputs = await self._reads.sync_inputs_of_lines([line.id for line in lines])
        return line_item_views(lines, inputs.modifications, inputs.entries)

    async def _load_line_pages(self, keys: Sequence[LinePageKey]) -> list[list[LineItemView]]:
        """One statement per distinct (after, limit) for all the budgets' pages; erpSynced only for the pages
        that select it (two statements for all of those)."""
        groups: dict[tuple[Position | None, int], set[str]] = defaultdict(set)
        for budget_id, after, limit, _synced in keys:
            groups[(after, limit)].add(budget_id)
        wanted = {(budget_id, after, limit) for budget_id, after, limit, synced in keys if synced}
        found: dict[tuple[str, Position | None, int], list[LineItemRecord]] = defaultdict(list)
        for (after, limit), budget_ids in groups.items():
            for line in await self._reads.line_item_pages(sorted(budget_ids), after=after, limit=limit):
                found[(line.budget_id, after, limit)].append(line)
        to_sync = [line for page, lines in found.items() if page in wanted for line in lines]
        synced = {view.id: view for view in await self._views(to_sync)}
        pages: dict[LinePageKey, list[LineItemView]] = {}
        for key in keys:
            budget_id, after, limit, with_sync = key
            lines = found.get((budget_id, after, limit), [])
            pages[key] = [synced[line.id] for line in lines] if with_sync else line_item_views(lines, None, None)
        return [pages[key] for key in keys]

    async def _load_line_items(self, ids: Sequence[str]) -> list[LineItemView | None]:
        if self._company is None:
            return [None for _ in ids]
        return _in_order(ids, await self._views(await self._reads.line_items(ids, self._company)))

    async def _load_unsynced_line_items(self, ids: Sequence[str]) -> list[LineItemView | None]:
        if self._company is None:
            return [None for _ in ids]
        return _in_order(ids, line_item_views(await self._reads.line_items(ids, self._company), None, None))

    async def _load_modifications(self, budget_ids: Sequence[str]) -> list[list[ModificationView]]:
        found = await self._reads.modifications_of_budgets(budget_ids)
        views = modification_views(found.modifications, found.entries)
        return _grouped(budget_ids, views, lambda view: view.budget_id)

    async def _load_modification(self, ids: Sequence[str]) -> list[ModificationView | None]:
        if self._company is None:
            return [None for _ in ids]
        found = await self._reads.modifications(ids, self._company)
        return _in_order(ids, modification_views(found.modifications, found.entries))

    async def _load_requests_of_budgets(self, budget_ids: Sequence[str]) -> list[list[ErpRequestRecord]]:
        return _grouped(budget_ids, await self._reads.requests_of_budgets(budget_ids), lambda r: r.budget_id)

    async def _load_request_lines(self, request_ids: Sequence[str]) -> list[list[RequestLineRecord]]:
        return _grouped(request_ids, await self._reads.request_lines(request_ids), lambda r: r.request_id)

    async def _load_request_entries(self, request_ids: Sequence[str]) -> list[list[RequestEntryRecord]]:
        return _grouped(request_ids, await self._reads.request_entries(request_ids), lambda r: r.request_id)

    async def _load_export_states(self, budgets: Sequence[BudgetRecord]) -> list[ExportState]:
        contents = await self._reads.contents_of_budgets([b.id for b in budgets])
        return [
            export_state(b, contents[b.id].lines, contents[b.id].modifications, contents[b.id].entries)
            for b in budgets
        ]
