"""The service layer of every mutation: load -> domain decision -> writes + event -> (commit in
resolvers.service). Each public function returns the ids of what the payload shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import budget as wf
from domain import events as ev
from domain import permissions
from domain.budget import ExportStatus, RequestAction
from domain.errors import DomainError, DomainErrors, invalid, not_found
from domain.events import BudgetEvent
from domain.export import request_kind
from domain.money import AMOUNT_PLACES, QUANTITY_PLACES, has_at_most_places, to_amount
from domain.permissions import Actor, PermissionLevel, ProjectAccess
from erp.base import Connector, ConnectorError, JobSpec
from persistence import event_log, reads, writes
from persistence.ids import new_id
from persistence.tables import (
    budgets,
    cost_codes,
    cost_types,
    erp_requests,
    export_entries,
    line_items,
    modifications,
    project_permissions,
    projects,
    request_lines,
)
from resolvers.budget_state import budget_state, load_export_state, send_conditions
from resolvers.context import Context
from resolvers.exports import enqueue
from resolvers.loaders import access_from_row
from resolvers.service import Outcome, Result, run_mutation
from resolvers.transitions import apply_request_action

SYNC_TIMEOUT_SECONDS = 30.0


async def _access(conn: AsyncConnection, actor: Actor, project_id: str) -> ProjectAccess:
    rows = await reads.access_rows(conn, actor.user_id, [project_id])
    return access_from_row(rows[0] if rows else None)


async def _event(ctx: Context, conn: AsyncConnection, event: BudgetEvent) -> None:
    await event_log.append(conn, ctx.actor.company_id, event, ctx.services.clock())


def _connector(ctx: Context) -> Connector | None:
    return ctx.services.connectors.get(ctx.viewer.erp_connector, ctx.viewer.erp_settings)


def _text(value: str | None, field: list[str], *, max_len: int, required: bool = False) -> str | None:
    text = value.strip() if value is not None else None
    if required and not text:
        raise invalid("must not be empty", field)
    if text is not None and len(text) > max_len:
        raise invalid(f"must be at most {max_len} characters", field)
    return text or None


def _amount(value: Decimal | None, field: list[str], *, positive: bool = False) -> Decimal:
    if value is None:
        raise invalid("an amount is required", field)
    if not has_at_most_places(value, AMOUNT_PLACES):
        raise invalid(f"amounts have at most {AMOUNT_PLACES} fraction digits", field)
    if positive and value <= 0:
        raise invalid("must be greater than 0", field)
    return to_amount(value)


def _quantity(value: Decimal | None, field: list[str]) -> Decimal | None:
    if value is not None and not has_at_most_places(value, QUANTITY_PLACES):
        raise invalid(f"at most {QUANTITY_PLACES} fraction digits", field)
    return value


# --- company set-up ---------------------------------------------------------------------------------


async def create_project(ctx: Context, name: str, number: str) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        wf.require_none([permissions.company_admin_refusal(actor, "creating a project")])
        clean_name = _text(name, ["input", "name"], max_len=200, required=True)
        clean_number = _text(number, ["input", "number"], max_len=60, required=True)
        taken = await uow.conn.execute(
            select(projects.c.id).where(projects.c.company_id == actor.company_id, projects.c.number == clean_number)
        )
        if taken.first() is not None:
            raise invalid(f"project number {clean_number} is already used", ["input", "number"])
        project_id, now = new_id("Project"), ctx.services.clock()
        await writes.insert_row(
            uow.conn,
            projects,
            id=project_id,
            company_id=actor.company_id,
            name=clean_name,
            number=clean_number,
            created_at=now,
        )
        await writes.insert_row(
            uow.conn,
            budgets,
            id=new_id("Budget"),
            company_id=actor.company_id,
            project_id=project_id,
            locked=False,
            version=1,
            export_status="NOT_SENT",
            request_count=0,
        )
        await writes.insert_row(
            uow.conn,
            project_permissions,
            user_id=actor.user_id,
            project_id=project_id,
            budget_permission=PermissionLevel.ADMIN.name,
            grants=[],
        )
        return {"project": project_id}

    return await run_mutation(ctx, "createProject", body)


async def create_cost_list_entry(ctx: Context, kind: str, code: str, label: str) -> Outcome:
    """createCostCode / createCostType: the two company lists differ only in their label column."""
    actor = ctx.actor
    table, label_column = (cost_codes, "description") if kind == "costCode" else (cost_types, "name")

    async def body(uow: Any) -> Result:
        what = "a cost code" if kind == "costCode" else "a cost type"
        wf.require_none([permissions.company_admin_refusal(actor, f"creating {what}")])
        clean_code = _text(code, ["input", "code"], max_len=table.c.code.type.length, required=True)
        clean_label = _text(label, ["input", label_column], max_len=200, required=True)
        taken = await uow.conn.execute(
            select(table.c.id).where(table.c.company_id == actor.company_id, table.c.code == clean_code)
        )
        if taken.first() is not None:
            raise invalid(f"code {clean_code} already exists", ["input", "code"])
        row_id = new_id("CostCode" if kind == "costCode" else "CostType")
        await writes.insert_row(
            uow.conn,
            table,
            id=row_id,
            company_id=actor.company_id,
            code=clean_code,
            erp_synced=False,
            **{label_column: clean_label},
        )
        return {kind: row_id}

    return await run_mutation(ctx, f"create_{kind}", body)


async def sync_project_to_erp(ctx: Context, project_id: str) -> Outcome:
    """The connector call happens between two short transactions: an ERP is another system, and holding
    our locks across its latency would stall every writer of the company."""
    actor = ctx.actor
    connector = _connector(ctx)
    async with ctx.db.read() as conn:
        project = (await reads.rows_by_ids(conn, projects, [project_id], actor.company_id) or [None])[0]
        if project is None:
            return Outcome(errors=[not_found("project", ["projectId"])])
        refusal = permissions.sync_project_refusal(actor, await _access(conn, actor, project_id))
        if refusal is not None:
            return Outcome(errors=[refusal])
        if connector is None:
            return Outcome(errors=[DomainError("ERP_NOT_CONNECTED", "the company has no ERP connection")])
        budget = (await reads.budgets_by_project(conn, actor.company_id, [project_id]))[0]
        lines = await reads.lines_of_budgets(conn, [budget.id])
        code_ids = {r.cost_code_id for r in lines}
        type_ids = {r.cost_type_id for r in lines}
        codes = await reads.rows_by_ids(conn, cost_codes, list(code_ids), actor.company_id)
        types = await reads.rows_by_ids(conn, cost_types, list(type_ids), actor.company_id)
    spec = JobSpec(
        company_id=actor.company_id,
        project_id=project.id,
        number=project.number,
        name=project.name,
        cost_codes=tuple((c.code, c.description) for c in codes),
        cost_types=tuple((t.code, t.name) for t in types),
        pairs=tuple(sorted({(r.cost_code, r.cost_type) for r in lines})),
    )
    try:
        job_id = await asyncio.wait_for(connector.sync_job(spec), SYNC_TIMEOUT_SECONDS)
    except (ConnectorError, TimeoutError) as exc:
        message = str(exc) if isinstance(exc, ConnectorError) else "the ERP did not answer in time"
        return Outcome(errors=[DomainError("ERP_SYNC_FAILED", f"the ERP refused the job sync: {message}")])

    async def body(uow: Any) -> Result:
        await writes.update_row(uow.conn, projects, project.id, erp_job_id=job_id)
        if code_ids:
            await uow.conn.execute(update(cost_codes).where(cost_codes.c.id.in_(code_ids)).values(erp_synced=True))
        if type_ids:
            await uow.conn.execute(update(cost_types).where(cost_types.c.id.in_(type_ids)).values(erp_synced=True))
        status = ExportStatus(budget.export_status)
        await _event(
            ctx,
            uow.conn,
            BudgetEvent(
                type="ProjectSyncedToErp",
                project_id=project.id,
                budget_id=budget.id,
                status=status,
                previous_status=status,
                actor_id=actor.user_id,
                data={"erpJobId": job_id},
            ),
        )
        return {"project": project.id}

    return await run_mutation(ctx, "syncProjectToERP", body)


# --- line items -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineFields:
    cost_code_id: str
    cost_type_id: str
    sub_job: str | None
    description: str | None
    original_amount: Decimal
    quantity: Decimal | None = None
    unit_of_measure: str | None = None
    unit_cost: Decimal | None = None


@dataclass(frozen=True)
class KnownCodes:
    """The company's cost code / cost type ids among those an input names (one statement each)."""

    cost_codes: frozenset[str]
    cost_types: frozenset[str]

    @classmethod
    async def load(cls, conn: AsyncConnection, actor: Actor, items: list[LineFields]) -> KnownCodes:
        codes = await reads.rows_by_ids(conn, cost_codes, [i.cost_code_id for i in items], actor.company_id)
        types = await reads.rows_by_ids(conn, cost_types, [i.cost_type_id for i in items], actor.company_id)
        return cls(frozenset(r.id for r in codes), frozenset(r.id for r in types))


def _validated_line(item: LineFields, path: list[str], known: KnownCodes) -> dict[str, Any]:
    """The row values of one input line, or every reason it is invalid at once."""
    errors: list[DomainError] = []

    def check(fn: Any) -> Any:
        try:
            return fn()
        except DomainError as exc:
            errors.append(exc)
            return None

    amount = check(lambda: _amount(item.original_amount, [*path, "originalAmount"]))
    quantity = check(lambda: _quantity(item.quantity, [*path, "quantity"]))
    unit_cost = check(lambda: _quantity(item.unit_cost, [*path, "unitCost"]))
    sub_job = check(lambda: _text(item.sub_job, [*path, "subJob"], max_len=60)) or ""
    description = check(lambda: _text(item.description, [*path, "description"], max_len=500))
    uom = check(lambda: _text(item.unit_of_measure, [*path, "unitOfMeasure"], max_len=20))
    if item.cost_code_id not in known.cost_codes:
        errors.append(not_found("cost code", [*path, "costCodeId"]))
    if item.cost_type_id not in known.cost_types:
        errors.append(not_found("cost type", [*path, "costTypeId"]))
    if errors:
        raise DomainErrors(errors)
    return {
        "cost_code_id": item.cost_code_id,
        "cost_type_id": item.cost_type_id,
        "sub_job": sub_job,
        "description": description,
        "original_amount": amount,
        "quantity": quantity,
        "unit_of_measure": uom,
        "unit_cost": unit_cost,
    }


async def _existing_line(conn: AsyncConnection, budget_id: str, values: dict[str, Any]) -> Row | None:
    stmt = select(line_items).where(
        line_items.c.budget_id == budget_id,
        line_items.c.cost_code_id == values["cost_code_id"],
        line_items.c.cost_type_id == values["cost_type_id"],
        line_items.c.sub_job == values["sub_job"],
    )
    return (await conn.execute(stmt)).first()


_UPDATABLE = ("description", "original_amount", "quantity", "unit_of_measure", "unit_cost")


def _duplicate(path: list[str]) -> DomainError:
    return DomainError(
        "DUPLICATE_LINE_ITEM", "the budget already has a line with this cost code, cost type and sub job", tuple(path)
    )


async def _budget_for_change(
    ctx: Context, conn: AsyncConnection, budget_id: str, expected: int | None
) -> tuple[Row, ProjectAccess]:
    row = await writes.budget_for_update(conn, ctx.actor.company_id, budget_id)
    access = await _access(conn, ctx.actor, row.project_id)
    if not permissions.can_view_project(ctx.actor, access):
        raise not_found("budget", ["input", "budgetId"])
    writes.check_version(row, expected)
    return row, access


def _line_event(kind: str, budget: Row, actor: Actor, **data: str) -> BudgetEvent:
    status = ExportStatus(budget.export_status)
    return BudgetEvent(
        type=kind,
        project_id=budget.project_id,
        budget_id=budget.id,
        status=status,
        previous_status=status,
        actor_id=actor.user_id,
        data=data,
    )


async def create_line_item(ctx: Context, budget_id: str, item: LineFields, expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, access = await _budget_for_change(ctx, conn, budget_id, expected)
        values = _validated_line(item, ["input", "item"], await KnownCodes.load(conn, actor, [item]))
        wf.require_none(wf.line_edit_blockers(budget_state(budget), access, new_line_amount=values["original_amount"]))
        if await _existing_line(conn, budget.id, values) is not None:
            raise _duplicate(["input", "item"])
        line_id = new_id("BudgetLineItem")
        await writes.insert_row(
            conn,
            line_items,
            id=line_id,
            company_id=actor.company_id,
            budget_id=budget.id,
            modifications_amount=Decimal("0.00"),
            position=await writes.next_line_position(conn, budget.id),
            created_at=ctx.services.clock(),
            **values,
        )
        await writes.bump_budget(conn, budget)
        await _event(ctx, conn, _line_event(ev.LINE_ITEM_CREATED, budget, actor, lineItemId=line_id))
        return {"lineItem": line_id, "budget": budget.id}

    return await run_mutation(ctx, "createBudgetLineItem", body)


async def _line_for_change(ctx: Context, conn: AsyncConnection, line_id: str, field: list[str]) -> Row:
    line = (await reads.rows_by_ids(conn, line_items, [line_id], ctx.actor.company_id) or [None])[0]
    if line is None:
        raise not_found("budget line item", field)
    return line


async def update_line_item(ctx: Context, line_id: str, changes: dict[str, Any], expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        line = await _line_for_change(ctx, conn, line_id, ["input", "id"])
        budget, access = await _budget_for_change(ctx, conn, line.budget_id, expected)
        wf.require_none(wf.line_edit_blockers(budget_state(budget), access))
        values: dict[str, Any] = {}
        if "original_amount" in changes:
            values["original_amount"] = _amount(changes["original_amount"], ["input", "originalAmount"])
        for name, graphql_name in (("quantity", "quantity"), ("unit_cost", "unitCost")):
            if name in changes:
                values[name] = _quantity(changes[name], ["input", graphql_name])
        if "description" in changes:
            values["description"] = _text(changes["description"], ["input", "description"], max_len=500)
        if "unit_of_measure" in changes:
            values["unit_of_measure"] = _text(changes["unit_of_measure"], ["input", "unitOfMeasure"], max_len=20)
        if values:
            await writes.update_row(conn, line_items, line.id, **values)
            await writes.bump_budget(conn, budget)
            await _event(ctx, conn, _line_event(ev.LINE_ITEM_UPDATED, budget, actor, lineItemId=line.id))
        return {"lineItem": line.id, "budget": budget.id}

    return await run_mutation(ctx, "updateBudgetLineItem", body)


async def delete_line_item(ctx: Context, line_id: str, expected: int | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        line = await _line_for_change(ctx, conn, line_id, ["id"])
        budget, access = await _budget_for_change(ctx, conn, line.budget_id, expected)
        wf.require_none(wf.line_edit_blockers(budget_state(budget), access))
        if await reads.entries_of_lines(conn, [line.id]):
            raise invalid("the line was part of an ERP request: set its original amount to 0 instead", ["id"])
        if await reads.modifications_touching(conn, [line.id]):
            raise invalid("the line has budget modifications and cannot be deleted", ["id"])
        await conn.execute(delete(line_items).where(line_items.c.id == line.id))
        await writes.bump_budget(conn, budget)
        await _event(ctx, conn, _line_event(ev.LINE_ITEM_DELETED, budget, actor, lineItemId=line.id))
        return {"budget": budget.id}

    return await run_mutation(ctx, "deleteBudgetLineItem", body)


async def import_line_items(ctx: Context, budget_id: str, items: list[LineFields], expected: int | None) -> Outcome:
    """All or nothing: every bad row is reported (with its index in `field`), and then nothing changes."""
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, access = await _budget_for_change(ctx, conn, budget_id, expected)
        wf.require_none(
            wf.line_edit_blockers(budget_state(budget), access, new_line_amount=Decimal(0))
            if budget.locked
            else wf.line_edit_blockers(budget_state(budget), access)
        )
        if not items:
            raise invalid("no items to import", ["input", "items"])
        known = await KnownCodes.load(conn, actor, items)
        existing = {
            (r.cost_code_id, r.cost_type_id, r.sub_job): r.id
            for r in (
                await conn.execute(
                    select(
                        line_items.c.id, line_items.c.cost_code_id, line_items.c.cost_type_id, line_items.c.sub_job
                    ).where(line_items.c.budget_id == budget.id)
                )
            )
        }
        errors: list[DomainError] = []
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        position = await writes.next_line_position(conn, budget.id)
        now = ctx.services.clock()
        for index, item in enumerate(items):
            path = ["input", "items", str(index)]
            try:
                values = _validated_line(item, path, known)
            except DomainErrors as exc:
                errors += exc.errors
                continue
            key = (values["cost_code_id"], values["cost_type_id"], values["sub_job"])
            if key in seen:
                errors.append(_duplicate(path))
                continue
            seen.add(key)
            line_id = existing.get(key)
            if line_id is None:
                if budget.locked and values["original_amount"] != 0:
                    errors.append(
                        DomainError(
                            "BUDGET_LOCKED",
                            "a locked budget only takes new lines of amount 0",
                            (*path, "originalAmount"),
                        )
                    )
                    continue
                inserts.append(
                    {
                        "id": new_id("BudgetLineItem"),
                        "company_id": actor.company_id,
                        "budget_id": budget.id,
                        "modifications_amount": Decimal("0.00"),
                        "position": position,
                        "created_at": now,
                        **values,
                    }
                )
                position += 1
            elif budget.locked:
                errors.append(
                    DomainError("BUDGET_LOCKED", "the budget is locked: existing lines are read-only", tuple(path))
                )
            else:
                updates.append({"line_id": line_id, **{k: v for k, v in values.items() if k in _UPDATABLE}})
        if errors:
            raise DomainErrors(errors)
        if inserts:
            await conn.execute(insert(line_items), inserts)
        if updates:
            await conn.execute(
                update(line_items)
                .where(line_items.c.id == bindparam("line_id"))
                .values({name: bindparam(name) for name in _UPDATABLE}),
                updates,
            )
        created, updated = len(inserts), len(updates)
        if errors:
            raise DomainErrors(errors)
        await writes.bump_budget(conn, budget)
        await _event(
            ctx, conn, _line_event(ev.LINE_ITEMS_IMPORTED, budget, actor, created=str(created), updated=str(updated))
        )
        return {"budget": budget.id}

    return await run_mutation(ctx, "importBudgetLineItems", body)


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

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, access = await _budget_for_change(ctx, conn, budget_id, expected)
        wf.require_none(wf.modification_blockers(budget_state(budget), access))
        value = _amount(amount, ["input", "amount"], positive=True)
        if from_id is None and to_id is None:
            raise invalid("name the line the amount moves from, to, or both", ["input", "toLineItemId"])
        if from_id == to_id:
            raise invalid("the amount must move between two different lines", ["input", "toLineItemId"])
        clean_notes = _text(notes, ["input", "notes"], max_len=2000)
        for line_id, field in ((from_id, "fromLineItemId"), (to_id, "toLineItemId")):
            if line_id is None:
                continue
            line = (await reads.rows_by_ids(conn, line_items, [line_id], actor.company_id) or [None])[0]
            if line is None or line.budget_id != budget.id:
                raise not_found("budget line item", ["input", field])
            delta = value if line_id == to_id else -value
            await conn.execute(
                update(line_items)
                .where(line_items.c.id == line_id)
                .values(modifications_amount=line_items.c.modifications_amount + delta)
            )
        mod_id = new_id("BudgetModification")
        number = await writes.next_modification_number(conn, budget.id)
        await writes.insert_row(
            conn,
            modifications,
            id=mod_id,
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
        await writes.bump_budget(conn, budget)
        await _event(
            ctx, conn, _line_event(ev.MODIFICATION_CREATED, budget, actor, modificationId=mod_id, number=str(number))
        )
        return {"modification": mod_id, "budget": budget.id}

    return await run_mutation(ctx, "createBudgetModification", body)


# --- lock, send, retrieve, unlock ---------------------------------------------------------------------


async def lock_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        budget, access = await _budget_for_change(ctx, uow.conn, budget_id, expected)
        wf.require_none(wf.lock_blockers(budget_state(budget), access))
        await writes.bump_budget(
            uow.conn, budget, locked=True, locked_at=ctx.services.clock(), locked_by_id=actor.user_id
        )
        await _event(ctx, uow.conn, _line_event(ev.BUDGET_LOCKED, budget, actor))
        return {"budget": budget.id}

    return await run_mutation(ctx, "lockBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def unlock_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        budget, access = await _budget_for_change(ctx, uow.conn, budget_id, expected)
        wf.require_none(wf.unlock_blockers(budget_state(budget), access))
        await writes.bump_budget(uow.conn, budget, locked=False, locked_at=None, locked_by_id=None)
        await _event(ctx, uow.conn, _line_event(ev.BUDGET_UNLOCKED, budget, actor))
        return {"budget": budget.id}

    return await run_mutation(ctx, "unlockBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def send_to_erp(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor
    connector = _connector(ctx)

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, access = await _budget_for_change(ctx, conn, budget_id, expected)
        project = (await reads.rows_by_ids(conn, projects, [budget.project_id], actor.company_id))[0]
        state = await load_export_state(conn, budget)
        conditions = send_conditions(state, connector.capabilities if connector else None, project)
        wf.require_none(wf.send_blockers(state.budget, access, conditions))
        now = ctx.services.clock()
        request_id = new_id("ErpRequest")
        sequence = budget.request_count + 1
        await writes.insert_row(
            conn,
            erp_requests,
            id=request_id,
            company_id=actor.company_id,
            budget_id=budget.id,
            project_id=budget.project_id,
            sequence=sequence,
            kind=request_kind(state.exported),
            status=ExportStatus.PENDING_ACCEPTANCE.value,
            sent_at=now,
            sent_by_id=actor.user_id,
            export_id=f"bb-{request_id.removeprefix('req_')}",
        )
        await conn.execute(
            insert(request_lines),
            [
                {
                    "request_id": request_id,
                    "position": position,
                    "line_item_id": p.line.id,
                    "cost_code": p.line.cost_code,
                    "cost_type": p.line.cost_type,
                    "sub_job": p.line.sub_job,
                    "description": p.line.description,
                    "original_budget": p.original_budget,
                    "budget_changes": p.budget_changes,
                    "revised_estimate": p.revised_estimate,
                    "is_new_line": p.is_new_line,
                }
                for position, p in enumerate(state.pending, start=1)
            ],
        )
        await conn.execute(
            insert(export_entries),
            [
                {
                    "id": new_id("ExportEntry"),
                    "request_id": request_id,
                    "budget_id": budget.id,
                    "line_item_id": e.line_item_id,
                    "kind": e.kind.value,
                    "source_id": e.source_id,
                    "amount": e.amount,
                }
                for p in state.pending
                for e in p.entries
            ],
        )
        await writes.bump_budget(
            conn,
            budget,
            export_status=ExportStatus.PENDING_ACCEPTANCE.value,
            last_request_id=request_id,
            request_count=sequence,
        )
        await _event(
            ctx,
            conn,
            BudgetEvent(
                type=ev.BUDGET_SENT,
                project_id=budget.project_id,
                budget_id=budget.id,
                erp_request_id=request_id,
                previous_status=ExportStatus(budget.export_status),
                status=ExportStatus.PENDING_ACCEPTANCE,
                actor_id=actor.user_id,
            ),
        )
        return {"erpRequest": request_id, "budget": budget.id}

    return await run_mutation(ctx, "sendToERP", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def _request_for_change(ctx: Context, conn: AsyncConnection, request_id: str) -> tuple[Row, Row]:
    request = (await reads.rows_by_ids(conn, erp_requests, [request_id], ctx.actor.company_id) or [None])[0]
    if request is None:
        raise not_found("ERP request", ["input", "erpRequestId"])
    budget = await writes.budget_for_update(conn, ctx.actor.company_id, request.budget_id)
    # Re-read under the budget's lock: the status we decide on is the committed one.
    request = (await reads.rows_by_ids(conn, erp_requests, [request_id], ctx.actor.company_id))[0]
    return budget, request


async def retrieve_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, access = await _budget_for_change(ctx, conn, budget_id, expected)
        wf.require_none(wf.retrieve_blockers(budget_state(budget), access))
        request = (await reads.rows_by_ids(conn, erp_requests, [budget.last_request_id], actor.company_id))[0]
        now = ctx.services.clock()
        await apply_request_action(
            conn,
            budget,
            request,
            RequestAction.RETRIEVE,
            actor_id=actor.user_id,
            at=now,
            retrieved_at=now,
            retrieved_by_id=actor.user_id,
        )
        return {"erpRequest": request.id, "budget": budget.id}

    return await run_mutation(ctx, "retrieveBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def decide_export(ctx: Context, request_id: str, decision: str, reason: str | None, key: str | None) -> Outcome:
    actor = ctx.actor
    action = RequestAction.ACCEPT if decision == "ACCEPT" else RequestAction.REJECT

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, request = await _request_for_change(ctx, conn, request_id)
        clean_reason = (reason or "").strip() or None
        wf.require_none(wf.decide_blockers(actor, ExportStatus(request.status), action, clean_reason))
        now = ctx.services.clock()
        await apply_request_action(
            conn,
            budget,
            request,
            action,
            actor_id=actor.user_id,
            at=now,
            reason=clean_reason,
            decided_at=now,
            decided_by_id=actor.user_id,
            rejection_reason=clean_reason if action is RequestAction.REJECT else None,
        )
        if action is RequestAction.ACCEPT:
            await enqueue(conn, actor.company_id, request.id, now)
        return {"erpRequest": request.id, "budget": budget.id}

    kick = (lambda _result: ctx.services.kick_exports()) if action is RequestAction.ACCEPT else None
    return await run_mutation(
        ctx, "decideExport", body, idempotency_key=key, fingerprint_of=[request_id, decision, reason], after_commit=kick
    )


async def retry_export(ctx: Context, request_id: str, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, request = await _request_for_change(ctx, conn, request_id)
        wf.require_none([permissions.decide_refusal(actor)])
        now = ctx.services.clock()
        await apply_request_action(
            conn, budget, request, RequestAction.RETRY, actor_id=actor.user_id, at=now, failure_message=None
        )
        await enqueue(conn, actor.company_id, request.id, now)
        return {"erpRequest": request.id, "budget": budget.id}

    return await run_mutation(
        ctx,
        "retryExport",
        body,
        idempotency_key=key,
        fingerprint_of=[request_id],
        after_commit=lambda _r: ctx.services.kick_exports(),
    )


async def confirm_posting(ctx: Context, request_id: str, erp_reference: str | None, key: str | None) -> Outcome:
    actor = ctx.actor
    connector = _connector(ctx)
    async with ctx.db.read() as conn:
        request = (await reads.rows_by_ids(conn, erp_requests, [request_id], actor.company_id) or [None])[0]
    if (
        request is not None
        and request.status == ExportStatus.AWAITING_POSTING.value
        and connector is not None
        and permissions.confirm_posting_refusal(actor) is None
    ):
        # Posting is recorded in the ERP first (idempotent), then here.
        await connector.mark_posted(request.export_id)

    async def body(uow: Any) -> Result:
        conn = uow.conn
        budget, req = await _request_for_change(ctx, conn, request_id)
        wf.require_none([permissions.confirm_posting_refusal(actor)])
        values: dict[str, Any] = {"posted_at": ctx.services.clock()}
        reference = _text(erp_reference, ["input", "erpReference"], max_len=200)
        if reference:
            values["erp_reference"] = reference
        await apply_request_action(
            conn, budget, req, RequestAction.CONFIRM_POSTING, actor_id=actor.user_id, at=values["posted_at"], **values
        )
        return {"erpRequest": req.id, "budget": budget.id}

    return await run_mutation(
        ctx, "confirmJobCostPosting", body, idempotency_key=key, fingerprint_of=[request_id, erp_reference]
    )
