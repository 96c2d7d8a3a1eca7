"""An integrator's callback about an export (`success`, `failure`, `posted`), decided against its request.

The callback is another system's report, so it moves a request only along the transition table, and only
from the status it is about:

* `success` (the ERP has the entries) moves an EXPORTING request to AWAITING_POSTING, or to SYNCED where the
  ERP posts at once;
* `failure` moves an EXPORTING request to EXPORT_FAILED;
* `posted` moves an AWAITING_POSTING request to SYNCED. Before the export is written (EXPORTING or earlier)
  it is refused: posting cannot be confirmed for entries the integrator has not yet reported as written
  (the integrator reports `success` first).

Anything else is refused (a 409, nothing changes), except an identical replay: a callback that says exactly
what the request already records (`success` with the reference it keeps, once written; the same `failure`
message, while failed; `posted`, once SYNCED). Integrators retry a callback whose answer they did not get,
so a replay answers 200 with the current status and changes nothing. A callback after a terminal status
(SYNCED, REJECTED, RETRIEVED) that is not such a replay is refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from domain.errors import DomainError, ErrorCode
from domain.status import WRITTEN, ExportStatus, RequestAction

S, A = ExportStatus, RequestAction


class CallbackKind(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    POSTED = "posted"


@dataclass(frozen=True)
class RecordedOutcome:
    """What the request records that a callback may repeat."""

    status: ExportStatus
    erp_reference: str | None
    failure_message: str | None


@dataclass(frozen=True)
class CallbackReport:
    kind: CallbackKind
    erp_reference: str | None = None
    message: str | None = None  # `failure`: the integrator's messages, joined


DEFAULT_FAILURE = "the integrator reported a failure"


def failure_message(report: CallbackReport) -> str:
    return report.message or DEFAULT_FAILURE


def _same_reference(report: CallbackReport, recorded: RecordedOutcome) -> bool:
    # A callback without a reference says nothing about it; one with a reference must name the one kept.
    return report.erp_reference is None or report.erp_reference == recorded.erp_reference


def is_replay(report: CallbackReport, recorded: RecordedOutcome) -> bool:
    """The callback says what the request already records: it took effect before."""
    if not _reached(report.kind, recorded.status):
        return False
    if report.kind is CallbackKind.FAILURE:
        return recorded.failure_message == failure_message(report)
    return _same_reference(report, recorded)


def callback_action(
    report: CallbackReport, recorded: RecordedOutcome, *, requires_posting: bool
) -> RequestAction | None:
    """The move the callback makes, None for an identical replay, or the refusal (NOT_PENDING) it gets."""
    status = recorded.status
    if report.kind is CallbackKind.SUCCESS and status is S.EXPORTING:
        return A.EXPORT_WRITTEN if requires_posting else A.EXPORT_POSTED
    if report.kind is CallbackKind.FAILURE and status is S.EXPORTING:
        return A.EXPORT_FAILED
    if report.kind is CallbackKind.POSTED and status is S.AWAITING_POSTING:
        return A.CONFIRM_POSTING
    if is_replay(report, recorded):
        return None
    raise DomainError(ErrorCode.NOT_PENDING, _refusal(report, recorded))


def _refusal(report: CallbackReport, recorded: RecordedOutcome) -> str:
    kind, status = report.kind.value, recorded.status
    if report.kind is CallbackKind.POSTED and status in (S.PENDING_ACCEPTANCE, S.EXPORTING):
        return (
            f"a posted callback cannot come before the export is written (status {status.value}): report "
            "success first"
        )
    if _reached(report.kind, status):
        what = "messages" if report.kind is CallbackKind.FAILURE else "erpReference"
        return (
            f"the {kind} callback differs from the one the request records (status {status.value}): a repeat "
            f"must carry the same {what}"
        )
    return f"a {kind} callback does not fit the request's status {status.value}"


def _reached(kind: CallbackKind, status: ExportStatus) -> bool:
    """The request is where this kind of callback leaves it."""
    if kind is CallbackKind.SUCCESS:
        return status in WRITTEN
    if kind is CallbackKind.FAILURE:
        return status is S.EXPORT_FAILED
    return status is S.SYNCED


__all__ = [
    "DEFAULT_FAILURE",
    "CallbackKind",
    "CallbackReport",
    "RecordedOutcome",
    "callback_action",
    "failure_message",
    "is_replay",
]
