"""The loaders on a fake read store, without a database: one read per batch, answers in key order, nothing
for a context without a viewer, and export states computed from the records the store returns."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from domain.permissions import NO_ACCESS, PermissionLevel, ProjectAccess
from persistence.reads import BudgetContents, ReadStore
from persistence.records import BudgetRecord, LineItemRecord, UserRecord
from resolvers.loaders import Loaders

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMPANY = "cmp_1"


def user(user_id: str, company_id: str = COMPANY) -> UserRecord:
    return UserRecord(user_id, company_id, f"{user_id}@example.com", user_id, False, False, "NONE", NOW)


def budget(budget_id: str) -> BudgetRecord:
    return BudgetRecord(budget_id, COMPANY, f"prj_{budget_id}", True, NOW, "usr_a", 3, "NOT_SENT", None, 0)


def line(line_id: str, budget_id: str, amount: str) -> LineItemRecord:
    return LineItemRecord(
        line_id, COMPANY, budget_id, "cc_1", "ct_1", "", None, Decimal(amount), Decimal("0.00"), None, None, None,
        1, NOW, "03-300", "Concrete", False, "L", "Labour", True,
    )


class FakeReads(ReadStore):
    def __init__(self) -> None:  # no database
        self.calls: list[tuple[str, tuple[str, ...], str | None]] = []
        self.users_stored = {u.id: u for u in (user("usr_a"), user("usr_b"), user("usr_x", "cmp_2"))}

    async def users(self, ids: Sequence[str], company_id: str | None) -> list[UserRecord]:
        self.calls.append(("users", tuple(ids), company_id))
        return [u for i in ids if (u := self.users_stored.get(i)) and u.company_id == company_id]

    async def access(self, user_id: str, project_ids: Sequence[str]) -> dict[str, ProjectAccess]:
        self.calls.append(("access", tuple(project_ids), user_id))
        return {"prj_1": ProjectAccess(PermissionLevel.STANDARD)}

    async def contents_of_budgets(self, budget_ids: Sequence[str]) -> dict[str, BudgetContents]:
        self.calls.append(("contents", tuple(budget_ids), None))
        return {b: BudgetContents(lines=[line(f"li_{b}", b, "12.50")]) for b in budget_ids}


async def test_a_batch_of_keys_is_one_read_answered_in_key_order() -> None:
    reads = FakeReads()
    loaders = Loaders(reads, COMPANY, "usr_a")
    found = await asyncio.gather(*(loaders.user.load(i) for i in ("usr_b", "usr_missing", "usr_a", "usr_x")))
    assert [u.id if u else None for u in found] == ["usr_b", None, "usr_a", None]  # usr_x: another company
    assert reads.calls == [("users", ("usr_b", "usr_missing", "usr_a", "usr_x"), COMPANY)]
    assert (await loaders.user.load("usr_a")) is found[2]  # cached for the rest of the request
    assert len(reads.calls) == 1


async def test_without_a_viewer_nothing_is_read_or_found() -> None:
    reads = FakeReads()
    loaders = Loaders(reads, None, None)
    assert await loaders.user.load("usr_a") is None
    assert await loaders.access.load("prj_1") is NO_ACCESS
    assert await loaders.line_item.load("li_1") is None
    assert reads.calls == []


async def test_access_defaults_to_no_access_for_projects_without_a_grant() -> None:
    loaders = Loaders(FakeReads(), COMPANY, "usr_a")
    granted, other = await asyncio.gather(loaders.access.load("prj_1"), loaders.access.load("prj_2"))
    assert granted.budget_permission is PermissionLevel.STANDARD
    assert other is NO_ACCESS


async def test_export_states_are_computed_from_the_budget_records_given_in_one_read() -> None:
    reads = FakeReads()
    loaders = Loaders(reads, COMPANY, "usr_a")
    first, second = budget("bgt_1"), budget("bgt_2")
    states = await asyncio.gather(loaders.export_state.load(first), loaders.export_state.load(second))
    assert reads.calls == [("contents", ("bgt_1", "bgt_2"), None)]  # the budgets themselves are not re-read
    assert [s.budget.id for s in states] == ["bgt_1", "bgt_2"]
    assert [(p.line.id, p.original_budget) for p in states[0].pending] == [("li_bgt_1", Decimal("12.50"))]
    assert states[0].unsynced_cost_codes == ("03-300",) and states[0].unsynced_cost_types == ()
    assert await loaders.export_state.load(budget("bgt_1")) is states[0]  # cached by the budget's id
