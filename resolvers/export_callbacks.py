"""An integrator's callbacks about an export it accepted (`POST /erp/callbacks/webhook`, app.webhook_callbacks).

`success` -> AWAITING_POSTING (or SYNCED when the company's ERP posts at once); `failure` -> EXPORT_FAILED with
the integrator's messages; `posted` -> SYNCED, only once the export is written. The domain decides
(domain.callbacks): an identical replay of one that already took effect answers with the current status and
changes nothing; anything that does not fit the request's state (`posted` before the export is written, any
callback after a terminal status that is not a replay) is refused (`CallbackRejectedError`, a 409 with the
code NOT_PENDING) and changes nothing.

`posted` carries the posting journal's control totals (`entryCount`, `totalAmount`), checked exactly as
`confirmJobCostPosting` checks them (domain.posting): totals that differ from the request's exported entries
are refused with POSTING_TOTALS_MISMATCH, missing totals the connection requires with VALIDATION_FAILED (both
a 409 carrying the code). Given totals are checked on a repeat too: a repeat is the same callback.
Each is one unit of work through `run_unit`, moving the request with the same steps as the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.callbacks import CallbackKind, CallbackReport, RecordedOutcome, callback_action, failure_message
from domain.errors import DomainError, DomainErrors
from domain.posting import control_totals, posting_totals_refusals
from domain.status import ExportStatus, RequestAction
from persistence.records import BudgetRecord, ErpRequestRecord
from persistence.unit_of_work import AbstractUnitOfWork
from resolvers.context import Services
from resolvers.export_pipeline import exported, failed, locked_request
from resolvers.service import run_unit
from resolvers.transitions import apply_request_action, request_entries

WEBHOOK = "webhook"


class CallbackRejectedError(Exception):
    """The callback is authentic but does not fit the request's state (e.g. success for a synced request), or
    its posting totals do not fit the request's entries. `code` is the ErrorCode of the refusal (NOT_PENDING,
    POSTING_TOTALS_MISMATCH, VALIDATION_FAILED), None for an export nobody knows."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PostingTotals:
    """The control totals of a `posted` callback, as the integrator sent them (None: not sent)."""

    entry_count: int | None = None
    total_amount: Decimal | None = None


NO_TOTALS = PostingTotals()


async def webhook_secret_for_export(services: Services, export_id: str) -> str | None:
    """The secret the callback about `export_id` must be signed with: its company's webhook secret. None for
    an unknown export, or one whose company does not export through a webhook with a secret."""

    async def body(uow: AbstractUnitOfWork) -> str | None:
        request = await uow.requests.by_export_id(export_id)
        if request is None:
            return None
        company = await uow.companies.get(request.company_id)
        if company is None or company.erp_connector != WEBHOOK:
            return None
        secret = (company.erp_settings or {}).get("secret")
        return secret if isinstance(secret, str) and secret else None

    return await run_unit(services, body)


async def apply_callback(
    services: Services,
    export_id: str,
    status: str,
    *,
    erp_reference: str | None = None,
    message: str | None = None,
    totals: PostingTotals = NO_TOTALS,
    company_id: str | None = None,
) -> str:
    """Apply one callback; returns the request's status after it (its current one for a replay). With
    `company_id` (an API token's company) an export of another company is unknown."""
    now = services.clock()
    try:
        kind = CallbackKind(status)
    except ValueError:
        raise CallbackRejectedError("status must be success, failure or posted") from None
    report = CallbackReport(kind, erp_reference=erp_reference, message=message)

    async def body(uow: AbstractUnitOfWork) -> str:
        found = await uow.requests.by_export_id(export_id)
        if found is not None and company_id is not None and found.company_id != company_id:
            found = None
        locked = await locked_request(uow, found.id) if found is not None else None
        if locked is None:
            raise CallbackRejectedError("unknown export")
        request, budget = locked
        try:
            new = await _apply(services, uow, request, budget, report, now, totals)
        except DomainErrors as exc:
            first = exc.errors[0]
            raise CallbackRejectedError("; ".join(e.message for e in exc.errors), first.code.value) from None
        except DomainError as exc:
            raise CallbackRejectedError(exc.message, exc.code.value) from None
        if new is None:  # it already took effect: a replay changes nothing
            return request.status
        await uow.jobs.close_awaiting_callback(request.id, now)
        return new.value

    return await run_unit(services, body)


async def _apply(
    services: Services,
    uow: AbstractUnitOfWork,
    request: ErpRequestRecord,
    budget: BudgetRecord,
    report: CallbackReport,
    now: datetime,
    totals: PostingTotals,
) -> ExportStatus | None:
    """The request's new status, None for a replay of a callback that already took effect."""
    recorded = RecordedOutcome(ExportStatus(request.status), request.erp_reference, request.failure_message)
    requires_posting = await _requires_posting(services, uow, request.company_id)
    action = callback_action(report, recorded, requires_posting=requires_posting)
    if report.kind is CallbackKind.POSTED:
        await _check_posting_totals(services, uow, request, totals, repeat=action is None)
    if action is None:
        return None
    if action is RequestAction.EXPORT_FAILED:
        return await failed(uow, request, budget, now, failure_message(report))
    if action is RequestAction.CONFIRM_POSTING:  # the posting's reference, if given, as confirmJobCostPosting keeps it
        reference = report.erp_reference or request.erp_reference
        return await apply_request_action(
            uow, budget, request, action, actor_id=None, at=now, posted_at=now, erp_reference=reference
        )
    return await exported(uow, request, budget, now, report.erp_reference, requires_posting)


async def _requires_posting(services: Services, uow: AbstractUnitOfWork, company_id: str) -> bool:
    company = await uow.companies.get(company_id)
    connector = services.connectors.get(company.erp_connector, company.erp_settings) if company else None
    return connector.capabilities.requires_posting if connector is not None else True


async def _check_posting_totals(
    services: Services, uow: AbstractUnitOfWork, request: ErpRequestRecord, totals: PostingTotals, *, repeat: bool
) -> None:
    """Refuse (DomainErrors) a `posted` callback whose totals differ from the request's entries, or that lacks
    totals the connection requires (not asked of a repeat: the first one was checked)."""
    company = await uow.companies.get(request.company_id)
    connector = services.connectors.get(company.erp_connector, company.erp_settings) if company else None
    required = connector.requires_posting_totals if connector is not None and not repeat else False
    exported = control_totals(e.amount for e in await request_entries(uow, request))
    errors = posting_totals_refusals(exported, totals.entry_count, totals.total_amount, required=required, path=())
    if errors:
        raise DomainErrors(errors)
