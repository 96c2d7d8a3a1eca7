"""The ERP request lifecycle a user drives: send, retrieve, the approver's decision, retry, and the ERP's
confirmation that the entries were posted in Job Cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain import budget as wf
from domain import permissions
from domain.errors import DomainError
from domain.export import request_kind
from domain.money import ZERO
from domain.posting import control_totals, posting_totals_refusals
from domain.status import ExportStatus, RequestAction, transition
from persistence.ids import new_id
from persistence.records import ErpRequestRecord, ExportEntryRecord, RequestLineRecord
from persistence.unit_of_work import AbstractUnitOfWork, NewExportEntry
from resolvers import input_validation as check
from resolvers.budget_state import budget_state, conditions_for_send, export_state
from resolvers.change_targets import budget_for_change, request_for_change
from resolvers.company_setup import connector_of
from resolvers.context import Context
from resolvers.service import Changed, Outcome, run_mutation, run_unit
from resolvers.transitions import apply_request_action, request_entries


async def send_to_erp(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor
    connector = connector_of(ctx)

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        project = await uow.projects.get(actor.company_id, budget.project_id)
        assert project is not None
        state = export_state(
            budget,
            await uow.line_items.of_budget(budget.id),
            await uow.modifications.of_budget(budget.id),
            await uow.entries.of_budget(budget.id),
        )
        now = ctx.services.clock()
        conditions = conditions_for_send(state, connector, project, now.date())
        request_id = new_id("ErpRequest")
        change = wf.send(state.budget, access, conditions, actor.user_id, request_id=request_id)
        await uow.requests.add(
            ErpRequestRecord(
                id=request_id,
                company_id=actor.company_id,
                budget_id=budget.id,
                project_id=budget.project_id,
                sequence=change.budget.request_count,
                kind=request_kind(state.exported),
                status=ExportStatus.PENDING_ACCEPTANCE.value,
                sent_at=now,
                sent_by_id=actor.user_id,
                decided_at=None,
                decided_by_id=None,
                rejection_reason=None,
                retrieved_at=None,
                retrieved_by_id=None,
                exported_at=None,
                posted_at=None,
                erp_reference=None,
                failure_message=None,
                export_attempts=0,
                export_id=f"bb-{request_id.removeprefix('req_')}",
                total_original_budget=sum((p.original_budget for p in state.pending), ZERO),
            ),
            [
                RequestLineRecord(
                    request_id=request_id,
                    position=position,
                    line_item_id=p.line.id,
                    cost_code=p.line.cost_code,
                    cost_type=p.line.cost_type,
                    sub_job=p.line.sub_job,
                    description=p.line.description,
                    original_budget=p.original_budget,
                    budget_changes=p.budget_changes,
                    revised_estimate=p.revised_estimate,
                    is_new_line=p.is_new_line,
                )
                for position, p in enumerate(state.pending, start=1)
            ],
        )
        await uow.entries.add_many(
            [
                NewExportEntry(
                    id=new_id("ExportEntry"),
                    request_id=request_id,
                    budget_id=budget.id,
                    line_item_id=e.line_item_id,
                    kind=e.kind.value,
                    source_id=e.source_id,
                    amount=e.amount,
                )
                for p in state.pending
                for e in p.entries
            ]
        )
        await uow.save_with_event(budget, change.budget, actor.company_id, change.event, now)
        return Changed(erp_request_id=request_id, budget_id=budget.id)

    return await run_mutation(ctx, "sendToERP", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def retrieve_budget(ctx: Context, budget_id: str, expected: int | None, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, access = await budget_for_change(ctx, uow, budget_id, expected)
        wf.require_none(wf.retrieve_blockers(budget_state(budget), access))
        assert budget.last_request_id is not None  # a pending budget has a latest request
        request = await uow.requests.get(actor.company_id, budget.last_request_id)
        assert request is not None
        now = ctx.services.clock()
        await apply_request_action(
            uow,
            budget,
            request,
            RequestAction.RETRIEVE,
            actor_id=actor.user_id,
            at=now,
            retrieved_at=now,
            retrieved_by_id=actor.user_id,
        )
        return Changed(erp_request_id=request.id, budget_id=budget.id)

    return await run_mutation(ctx, "retrieveBudget", body, idempotency_key=key, fingerprint_of=[budget_id, expected])


async def decide_export(ctx: Context, request_id: str, decision: str, reason: str | None, key: str | None) -> Outcome:
    actor = ctx.actor
    action = RequestAction.ACCEPT if decision == "ACCEPT" else RequestAction.REJECT

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, request = await request_for_change(ctx, uow, request_id)
        clean_reason = check.text(reason, ["input", "reason"], max_len=check.MAX_REASON)
        wf.require_none(wf.decide_blockers(actor, ExportStatus(request.status), action, clean_reason))
        now = ctx.services.clock()
        await apply_request_action(
            uow,
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
            await uow.jobs.enqueue(actor.company_id, request.id, now)
        return Changed(erp_request_id=request.id, budget_id=budget.id)

    kick = ctx.services.kick_exports if action is RequestAction.ACCEPT else None
    return await run_mutation(
        ctx, "decideExport", body, idempotency_key=key, fingerprint_of=[request_id, decision, reason], after_commit=kick
    )


async def retry_export(ctx: Context, request_id: str, key: str | None) -> Outcome:
    actor = ctx.actor

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, request = await request_for_change(ctx, uow, request_id)
        wf.require_none([permissions.decide_refusal(actor)])
        now = ctx.services.clock()
        await apply_request_action(
            uow, budget, request, RequestAction.RETRY, actor_id=actor.user_id, at=now, failure_message=None
        )
        await uow.jobs.enqueue(actor.company_id, request.id, now)
        return Changed(erp_request_id=request.id, budget_id=budget.id)

    return await run_mutation(
        ctx,
        "retryExport",
        body,
        idempotency_key=key,
        fingerprint_of=[request_id],
        after_commit=ctx.services.kick_exports,
    )


async def confirm_posting(
    ctx: Context,
    request_id: str,
    erp_reference: str | None,
    key: str | None,
    *,
    entry_count: int | None = None,
    total_amount: Decimal | None = None,
) -> Outcome:
    """The ERP's word that a request's entries are posted, with the posting journal's control totals when the
    caller has them (required when the company's connection says so): totals that differ from the request's
    exported entries refuse it (domain.posting), and then the ERP is not told the entries are posted either."""
    actor = ctx.actor
    connector = connector_of(ctx)
    required = connector.requires_posting_totals if connector is not None else False
    try:
        reference = check.text(erp_reference, ["input", "erpReference"], max_len=200)
        count = check.count(entry_count, ["input", "entryCount"])
        total = check.optional_amount(total_amount, ["input", "totalAmount"])
    except DomainError as exc:
        return Outcome(errors=[exc])

    def refusals(request: ErpRequestRecord, entries: list[ExportEntryRecord]) -> list[DomainError]:
        """Every reason to refuse, in the order a user fixes them: permission, status, then the totals."""
        denied = permissions.confirm_posting_refusal(actor)
        if denied is not None:
            return [denied]
        try:
            transition(ExportStatus(request.status), RequestAction.CONFIRM_POSTING)
        except DomainError as exc:
            return [exc]
        exported = control_totals(e.amount for e in entries)
        return posting_totals_refusals(exported, count, total, required=required)

    async def current(uow: AbstractUnitOfWork) -> tuple[ErpRequestRecord, list[ExportEntryRecord]] | None:
        request = await uow.requests.get(actor.company_id, request_id)
        return (request, await request_entries(uow, request)) if request is not None else None

    found = await run_unit(ctx.services, current)
    marked_in_erp = found is not None and connector is not None and not refusals(*found)
    if marked_in_erp:
        # Posting is recorded in the ERP first (idempotent), then here; only a confirmation that will not be
        # refused gets this far.
        assert found is not None and connector is not None
        await connector.mark_posted(found[0].export_id)

    async def body(uow: AbstractUnitOfWork) -> Changed:
        budget, req = await request_for_change(ctx, uow, request_id)
        if marked_in_erp and req.status == ExportStatus.SYNCED.value:
            # The worker's posting detection saw the posting we just made in the ERP and recorded it first:
            # what the caller asked for holds, so this is the same success, not a refusal; the reference the
            # caller gave (the worker had none) is kept.
            if reference:
                await uow.requests.update(req.id, erp_reference=reference)
                await uow.companies.touch(budget.company_id)  # a queryable change with no event of its own
            return Changed(erp_request_id=req.id, budget_id=budget.id)
        wf.require_none(refusals(req, await request_entries(uow, req)))
        now = ctx.services.clock()
        values: dict[str, Any] = {"posted_at": now}
        if reference:
            values["erp_reference"] = reference
        await apply_request_action(
            uow, budget, req, RequestAction.CONFIRM_POSTING, actor_id=actor.user_id, at=now, **values
        )
        return Changed(erp_request_id=req.id, budget_id=budget.id)

    return await run_mutation(
        ctx,
        "confirmJobCostPosting",
        body,
        idempotency_key=key,
        # The totals join the fingerprint only when given, so keys stored before they existed still replay.
        fingerprint_of=[request_id, erp_reference]
        + ([entry_count, None if total is None else str(total)] if (count, total) != (None, None) else []),
    )
