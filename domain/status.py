"""The status of an ERP request and the one table of how it may move.

TRANSITIONS is the single source of truth for what an ERP request may do next; `transition` gives the next
status or the refusal a user sees.
"""

from __future__ import annotations

import enum

from domain.errors import DomainError, ErrorCode


class ExportStatus(enum.Enum):
    NOT_SENT = "NOT_SENT"
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE"
    RETRIEVED = "RETRIEVED"
    REJECTED = "REJECTED"
    EXPORTING = "EXPORTING"
    EXPORT_FAILED = "EXPORT_FAILED"
    AWAITING_POSTING = "AWAITING_POSTING"
    SYNCED = "SYNCED"


class RequestAction(enum.Enum):
    RETRIEVE = "RETRIEVE"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    EXPORT_WRITTEN = "EXPORT_WRITTEN"  # the connector wrote the entries; posting still to come
    EXPORT_POSTED = "EXPORT_POSTED"  # the connector wrote entries that the ERP posts at once
    EXPORT_FAILED = "EXPORT_FAILED"
    RETRY = "RETRY"
    CONFIRM_POSTING = "CONFIRM_POSTING"


S, A = ExportStatus, RequestAction

TRANSITIONS: dict[tuple[ExportStatus, RequestAction], ExportStatus] = {
    (S.PENDING_ACCEPTANCE, A.RETRIEVE): S.RETRIEVED,
    (S.PENDING_ACCEPTANCE, A.ACCEPT): S.EXPORTING,
    (S.PENDING_ACCEPTANCE, A.REJECT): S.REJECTED,
    (S.EXPORTING, A.EXPORT_WRITTEN): S.AWAITING_POSTING,
    (S.EXPORTING, A.EXPORT_POSTED): S.SYNCED,
    (S.EXPORTING, A.EXPORT_FAILED): S.EXPORT_FAILED,
    (S.EXPORT_FAILED, A.RETRY): S.EXPORTING,
    (S.AWAITING_POSTING, A.CONFIRM_POSTING): S.SYNCED,
}

# Statuses a request can no longer be decided from once an approver acted on it.
DECIDED = frozenset({S.EXPORTING, S.EXPORT_FAILED, S.AWAITING_POSTING, S.SYNCED, S.REJECTED})
# While the latest request is in one of these, lines and modifications are frozen.
EDITS_FROZEN = frozenset({S.PENDING_ACCEPTANCE, S.EXPORTING})
# While the latest request is in one of these, neither a send nor an unlock may happen.
IN_PROGRESS = frozenset({S.PENDING_ACCEPTANCE, S.EXPORTING, S.EXPORT_FAILED})
UNLOCKABLE = frozenset({S.NOT_SENT, S.RETRIEVED, S.REJECTED, S.SYNCED})
# Entries of requests in these statuses were never exported: a later send carries them again.
WITHDRAWN = frozenset({S.RETRIEVED, S.REJECTED})
# The connector wrote these requests' entries to the ERP (and the ERP acknowledged it). A failed export wrote
# nothing: the file connectors validate before writing and drop files atomically, the embedded ledger writes
# in one transaction, an integrator's failure means it wrote nothing; a crash after a write is not a failure
# (the job is claimed again and the target de-duplicates). So EXPORT_FAILED is not written, it is pending.
# One exception, rare and safe: a worker that dies after the write during the export's last allowed attempt
# leaves EXPORT_FAILED ("interrupted during its last attempt", resolvers.export_pipeline.claim) although the
# ERP may hold the entries; its retry writes nothing twice (the targets de-duplicate) and records them.
WRITTEN = frozenset({S.AWAITING_POSTING, S.SYNCED})
# Sent and not (yet) written: the approver has not decided, the export runs, or it failed and may be retried.
SENT_NOT_WRITTEN = frozenset({S.PENDING_ACCEPTANCE, S.EXPORTING, S.EXPORT_FAILED})


def transition(status: ExportStatus, action: RequestAction) -> ExportStatus:
    """The next status, or the refusal a user sees for trying `action` on a request in `status`."""
    nxt = TRANSITIONS.get((status, action))
    if nxt is not None:
        return nxt
    if action in (A.ACCEPT, A.REJECT) and status in DECIDED:
        raise DomainError(ErrorCode.ALREADY_DECIDED, f"the request was already decided (status {status.value})")
    if action is A.RETRY:
        raise DomainError(ErrorCode.NOT_FAILED, f"only a failed export can be retried (status {status.value})")
    if action is A.CONFIRM_POSTING:
        raise DomainError(ErrorCode.NOT_PENDING, f"the request is not awaiting posting (status {status.value})")
    raise DomainError(ErrorCode.NOT_PENDING, f"the request is not pending acceptance (status {status.value})")
