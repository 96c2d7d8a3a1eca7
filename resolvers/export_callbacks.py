"""An integrator's callbacks about an export it accepted (`POST /erp/callbacks/webhook`, app.webhook_callbacks).

`success` -> AWAITING_POSTING (or SYNCED when the company's ERP posts at once); `failure` -> EXPORT_FAILED with
the integrator's messages; `posted` -> SYNCED (straight from EXPORTING too). Callbacks are idempotent and
strict: repeating one that already took effect answers with the current status and changes nothing; one
that does not fit the request's state is refused (`CallbackRejectedError`, a 409) and changes nothing.

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
# Statuses a `posted` callback may find its request in (a repeat included).
POSTABLE = frozenset(s.value for s in (ExportStatus.EXPORTING, ExportStatus.AWAITING_POSTING, ExportStatus.SYNCED))
DEFAULT_FAILURE = "the integrator reported a failure"


class CallbackRejectedError(Exception):
    """The callback is authentic but does not fit the request's state (e.g. success for a synced request), or
    its posting totals do not fit the request's entries. `code` is the ErrorCode of a refusal the API also
    gives (POSTING_TOTALS_MISMATCH, VALIDATION_FAILED), else None."""

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
    """Apply one callback; returns the request's status after it (its current one for a repeat). With
    `company_id` (an API token's company) an export of another company is unknown."""
    now = services.clock()

    async def body(uow: AbstractUnitOfWork) -> str:
        found = await uow.requests.by_export_id(export_id)
        if found is not None and company_id is not None and found.company_id != company_id:
            found = None
        locked = await locked_request(uow, found.id) if found is not None else None
        if locked is None:
            raise CallbackRejectedError("unknown export")
        request, budget = locked
        try:
            new = await _apply(services, uow, request, budget, status, now, erp_reference, message, totals)
        except DomainErrors as exc:
            first = exc.errors[0]
            raise CallbackRejectedError("; ".join(e.message for e in exc.errors), first.code.value) from None
        except DomainError as exc:
            raise CallbackRejectedError(exc.message) from None
        if new is None:  # it already took effect: a repeat changes nothing
            return request.status
        await uow.jobs.close_awaiting_callback(request.id, now)
        return new.value

    return await run_unit(services, body)


async def _apply(
    services: Services,
    uow: AbstractUnitOfWork,
    request: ErpRequestRecord,
    budget: BudgetRecord,
    status: str,
    now: datetime,
    erp_reference: str | None,
    message: str | None,
    totals: PostingTotals = NO_TOTALS,
) -> ExportStatus | None:
    """The request's new status, None for a repeat of a callback that already took effect."""
    current = ExportStatus(request.status)
    if status == "success":
        if current is not ExportStatus.EXPORTING:
            return None
        requires_posting = await _requires_posting(services, uow, request.company_id)
        return await exported(uow, request, budget, now, erp_reference, requires_posting)
    if status == "failure":
        if current is not ExportStatus.EXPORTING:
            return None
        return await failed(uow, request, budget, now, message or DEFAULT_FAILURE)
    if status == "posted":
        await _check_posting_totals(services, uow, request, totals, repeat=current is ExportStatus.SYNCED)
        if current is ExportStatus.SYNCED:
            return None
        if current is ExportStatus.EXPORTING:
            await exported(uow, request, budget, now, erp_reference, True)
            locked = await locked_request(uow, request.id)  # re-read: the request moved and the budget's version
            if locked is None:
                raise CallbackRejectedError("unknown export")
            request, budget = locked
        return await apply_request_action(
            uow, budget, request, RequestAction.CONFIRM_POSTING, actor_id=None, at=now, posted_at=now
        )
    raise CallbackRejectedError("status must be success, failure or posted")


async def _requires_posting(services: Services, uow: AbstractUnitOfWork, company_id: str) -> bool:
    company = await uow.companies.get(company_id)
    connector = services.connectors.get(company.erp_connector, company.erp_settings) if company else None
    return connector.capabilities.requires_posting if connector is not None else True


async def _check_posting_totals(
    services: Services, uow: AbstractUnitOfWork, request: ErpRequestRecord, totals: PostingTotals, *, repeat: bool
) -> None:
    """Refuse (DomainErrors) a `posted` callback whose totals differ from the request's entries, or that lacks
    totals the connection requires (not asked of a repeat: the first one was checked)."""
    if request.status not in POSTABLE:
        return  # the transition refuses it
    company = await uow.companies.get(request.company_id)
    connector = services.connectors.get(company.erp_connector, company.erp_settings) if company else None
    required = connector.requires_posting_totals if connector is not None and not repeat else False
    exported = control_totals(e.amount for e in await request_entries(uow, request))
    errors = posting_totals_refusals(exported, totals.entry_count, totals.total_amount, required=required, path=())
    if errors:
        raise DomainErrors(errors)
