"""Budget lines and modifications: create, change, delete, bulk import, and moving money between lines.

Every change of an amount asks the domain whether the lines it touches and the budget's totals stay within
13 integer digits (`wf.require_amounts_in_range`), from the totals read under the budget's lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from domain import budget as wf
from domain.budget import ImportRow, LineAmounts
from domain.errors import DomainError, DomainErrors, not_found
from domain.money import ZERO
from persistence.ids import new_id
from persistence.records import LineItemRecord, ModificationRecord
from persistence.unit_of_work import AbstractUnitOfWork, NewLineItem
from resolvers import input_validation as check
from resolvers.budget_state import budget_state
from resolvers.change_targets import budget_for_change, line_for_change
from resolvers.context import Context
from resolvers.input_validation import LineFields, ValidLine
from resolvers.service import Changed, Outcome, run_mutation


async def _known_codes(
    ctx: Context, uow: AbstractUnitOfWork, items: Sequence[LineFields]
) -> tuple[frozenset[str], frozenset[str]]:
    """The company's cost code / cost type ids among those the input names (one statement each)."""
    company = ctx.actor.company_id
    codes = await uow.cost_codes.get_many(company, [i.cost_code_id for i in items])
    types = await uow.cost_types.get_many(company, [i.cost_type_id for i in items])
    return frozenset(c.id for c in codes), frozenset(t.id for t in types)


def _new_line(ctx: Context, budget_id: str, line: ValidLine, line_id: str, position: int) -> NewLineItem:
    return NewLineItem(
        id=line_id,
        company_id=ctx.actor.company_id,
        budget_id=budget_id,
        cost_code_id=line.cost_code_id,
        cost_type_id=line.cost_type_id,
        sub_job=line.sub_job,
        description=line.description,
        original_amount=line.original_amount,
        quantity=line.quantity,
        unit_of_measure=line.unit_of_measure,
        unit_cost=line.unit_cost,
        position=position,
        created_at=ctx.services.clock(),
    )


def _amounts(line: LineItemRecord, field: Sequence[str] | None = None) -> LineAmounts:
    """The line's stored amounts (`field`: the input a refusal about it is blamed on)."""
    label = f"line {line.cost_code}/{line.cost_type}" + (f"/{line.sub_job}" if line.sub_job else "")
    return LineAmounts(line.original_amount, line.modifications_amount, label, tuple(field) if field else None)


def _updatable(line: ValidLine) -> dict[str, Any]:
    return {
        "description": line.description,
        "original_amount": line.original_amount,
        "quantity": line.quantity,
        "unit_of_measure": line.unit_of_measure,
        "unit_cost": line.unit_cost,
    }


async def create_line_item(ctx: Context, budget_id: str, item: LineFields, expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        line = check.valid_line(item, ["input", "item"], *await _known_codes(ctx, uow, [item]))
        line_id = new_id("BudgetLineItem")
        duplicate = line.key in await uow.line_items.keys_of_budget(budget.id)
        change = wf.add_line(
            budget_state(budget),
            access,
            actor.user_id,
            line_id=line_id,
            amount=line.original_amount,
            duplicate=duplicate,
        )
        field = ("input", "item", "originalAmount")
        new = LineAmounts(line.original_amount, ZERO, "the new line", field)
        totals = await uow.line_items.totals(budget.id)
        wf.require_amounts_in_range([new], totals.replacing(None, new), field)
        position = await uow.line_items.next_position(budget.id)
        await uow.line_items.add_many([_new_line(ctx, budget.id, line, line_id, position)])
        saved = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(line_item_id=line_id, budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "createBudgetLineItem", body)


def _line_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The checked values of the fields an update names (absent fields stay as they are)."""
    values: dict[str, Any] = {}
    if "original_amount" in changes:
        values["original_amount"] = check.amount(changes["original_amount"], ["input", "originalAmount"])
    for name, graphql_name in (("quantity", "quantity"), ("unit_cost", "unitCost")):
        if name in changes:
            values[name] = check.quantity(changes[name], ["input", graphql_name])
    if "description" in changes:
        values["description"] = check.text(changes["description"], ["input", "description"], max_len=500)
    if "unit_of_measure" in changes:
        values["unit_of_measure"] = check.text(changes["unit_of_measure"], ["input", "unitOfMeasure"], max_len=20)
    return values


async def update_line_item(ctx: Context, line_id: str, changes: Mapping[str, Any], expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        amount_changes = "original_amount" in changes
        found = await line_for_change(ctx, uow, line_id, ["input", "id"], expected, totals=amount_changes)
        line, budget = found.line, found.budget
        change = wf.change_line(budget_state(budget), found.access, actor.user_id, line_id=line.id)
        values = _line_changes(changes)
        if amount_changes:
            assert found.totals is not None
            field = ("input", "originalAmount")
            before = _amounts(line)
            after = replace(before, original=values["original_amount"], field=field)
            wf.require_amounts_in_range([after], found.totals.replacing(before, after), field)
        if not values:  # an update that names no field changes nothing, not even the version
            return Changed(line_item_id=line.id, budget_id=budget.id, line_item=line, budget=budget)
        line = await uow.line_items.update(line, values)
        budget = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(line_item_id=line.id, budget_id=budget.id, line_item=line, budget=budget)

    return await run_mutation(ctx, "updateBudgetLineItem", body)


async def delete_line_item(ctx: Context, line_id: str, expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        found = await line_for_change(ctx, uow, line_id, ["id"], expected, totals=True)
        line, budget = found.line, found.budget
        change = wf.delete_line(
            budget_state(budget),
            found.access,
            actor.user_id,
            line_id=line.id,
            was_exported=bool(await uow.entries.of_lines([line.id])),
            has_modifications=bool(await uow.modifications.touching([line.id])),
        )
        # Removing a line can take a total out of range too (when it offset others).
        assert found.totals is not None
        wf.require_amounts_in_range([], found.totals.replacing(_amounts(line), None), ["id"])
        await uow.line_items.delete(line.id)
        saved = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "deleteBudgetLineItem", body)


async def import_line_items(ctx: Context, budget_id: str, items: Sequence[LineFields], expected: int | None) -> Outcome:
    """All or nothing: every bad row is reported (with its index in `field`), and then nothing changes."""
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        known_codes, known_types = await _known_codes(ctx, uow, items)
        valid: dict[ImportRow, ValidLine] = {}
        row_errors: list[DomainError] = []
        for index, item in enumerate(items):
            path = ("input", "items", str(index))
            try:
                line = check.valid_line(item, path, known_codes, known_types)
            except DomainErrors as exc:
                row_errors += exc.errors
                continue
            valid[ImportRow(path, line.key, line.original_amount)] = line
        plan = wf.plan_import(
            budget_state(budget),
            access,
            actor.user_id,
            list(valid),
            await uow.line_items.keys_of_budget(budget.id),
            row_errors,
        )
        await _import_amounts_in_range(uow, budget.id, plan)
        position = await uow.line_items.next_position(budget.id)
        await uow.line_items.add_many(
            [
                _new_line(ctx, budget.id, valid[row], new_id("BudgetLineItem"), position + offset)
                for offset, row in enumerate(plan.new_rows)
            ]
        )
        await uow.line_items.update_many({line_id: _updatable(valid[row]) for row, line_id in plan.updates})
        saved = await uow.save_with_event(
            budget, plan.change.budget, actor.company_id, plan.change.event, ctx.services.clock()
        )
        return Changed(budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "importBudgetLineItems", body)


async def _import_amounts_in_range(uow: AbstractUnitOfWork, budget_id: str, plan: wf.ImportPlan) -> None:
    """Every imported row's amounts and the budget's totals after the import stay within range."""
    totals = await uow.line_items.totals(budget_id)
    current = {line.id: line for line in await uow.line_items.of_budget(budget_id)} if plan.updates else {}
    changed: list[LineAmounts] = []
    for row in plan.new_rows:
        new = LineAmounts(row.original_amount, ZERO, f"items[{row.path[-1]}]", (*row.path, "originalAmount"))
        totals = totals.replacing(None, new)
        changed.append(new)
    for row, line_id in plan.updates:
        before = _amounts(current[line_id])
        after = replace(before, original=row.original_amount, field=(*row.path, "originalAmount"))
        totals = totals.replacing(before, after)
        changed.append(after)
    wf.require_amounts_in_range(changed, totals, ["input", "items"])


async def create_modification(
    ctx: Context,
    budget_id: str,
    from_id: str | None,
    to_id: str | None,
    amount: Decimal,
    notes: str | None,
    expected: int | None,
) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        modification_id = new_id("BudgetModification")
        number = await uow.modifications.next_number(budget.id)
        change = wf.add_modification(
            budget_state(budget),
            access,
            actor.user_id,
            modification_id=modification_id,
            number=number,
            amount=amount,
            from_line_id=from_id,
            to_line_id=to_id,
        )
        value = check.amount(amount, ["input", "amount"])
        clean_notes = check.text(notes, ["input", "notes"], max_len=check.MAX_NOTES)
        moved: dict[str, Decimal] = {}  # line id -> its change
        lines: list[LineItemRecord] = []
        for line_id, field in ((from_id, "fromLineItemId"), (to_id, "toLineItemId")):
            if line_id is None:
                continue
            check.identifier(line_id, ["input", field])
            line = await uow.line_items.get(actor.company_id, line_id)
            if line is None or line.budget_id != budget.id:
                raise not_found("budget line item", ["input", field])
            moved[line_id] = value if line_id == to_id else -value
            lines.append(line)
        totals = await uow.line_items.totals(budget.id)
        after_lines: list[LineAmounts] = []
        for line in lines:
            before = _amounts(line)
            after = replace(
                before, modifications=before.modifications + moved[line.id], field=("input", "amount")
            )
            totals = totals.replacing(before, after)
            after_lines.append(after)
        wf.require_amounts_in_range(after_lines, totals, ["input", "amount"])
        for line_id, delta in moved.items():
            await uow.line_items.add_to_modifications(line_id, delta)
        await uow.modifications.add(
            ModificationRecord(
                id=modification_id,
                company_id=actor.company_id,
                budget_id=budget.id,
                number=number,
                from_line_item_id=from_id,
                to_line_item_id=to_id,
                amount=value,
                notes=clean_notes,
                created_at=ctx.services.clock(),
                created_by_id=actor.user_id,
            )
        )
        saved = await uow.save_with_event(budget, change.budget, actor.company_id, change.event, ctx.services.clock())
        return Changed(modification_id=modification_id, budget_id=budget.id, budget=saved)

    return await run_mutation(ctx, "createBudgetModification", body)
