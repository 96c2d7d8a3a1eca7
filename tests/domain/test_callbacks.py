"""domain.callbacks: which move an integrator's callback makes in each request status, which ones are
identical replays, and which are refused (NOT_PENDING)."""

from __future__ import annotations

import pytest

from domain.callbacks import CallbackKind, CallbackReport, RecordedOutcome, callback_action
from domain.errors import DomainError, ErrorCode
from domain.status import TRANSITIONS, ExportStatus, RequestAction

S, A, K = ExportStatus, RequestAction, CallbackKind
REF = "JC-42"


def decide(kind: CallbackKind, status: ExportStatus, *, reference: str | None = None, message: str | None = None,
           recorded_reference: str | None = REF, recorded_message: str | None = None,
           requires_posting: bool = True) -> RequestAction | None:
    return callback_action(
        CallbackReport(kind, erp_reference=reference, message=message),
        RecordedOutcome(status, recorded_reference, recorded_message),
        requires_posting=requires_posting,
    )


# The only moves: each is a move of the transition table.
MOVES = {
    (K.SUCCESS, S.EXPORTING): A.EXPORT_WRITTEN,
    (K.FAILURE, S.EXPORTING): A.EXPORT_FAILED,
    (K.POSTED, S.AWAITING_POSTING): A.CONFIRM_POSTING,
}
# Identical replays: the request already records what the callback says.
REPLAYS = {(K.SUCCESS, S.AWAITING_POSTING), (K.SUCCESS, S.SYNCED), (K.POSTED, S.SYNCED), (K.FAILURE, S.EXPORT_FAILED)}


@pytest.mark.parametrize("status", list(ExportStatus))
@pytest.mark.parametrize("kind", list(CallbackKind))
def test_every_status_and_callback(kind: CallbackKind, status: ExportStatus) -> None:
    report = {"reference": REF} if kind is not K.FAILURE else {"message": "closed"}
    recorded = {"recorded_message": "closed"}
    if (kind, status) in MOVES:
        action = decide(kind, status, **report, **recorded)  # type: ignore[arg-type]
        assert action is MOVES[(kind, status)]
        assert (status, action) in TRANSITIONS
    elif (kind, status) in REPLAYS:
        assert decide(kind, status, **report, **recorded) is None  # type: ignore[arg-type]
    else:
        with pytest.raises(DomainError) as refused:
            decide(kind, status, **report, **recorded)  # type: ignore[arg-type]
        assert refused.value.code is ErrorCode.NOT_PENDING
        assert status.value in refused.value.message


def test_success_where_the_erp_posts_at_once_syncs() -> None:
    assert decide(K.SUCCESS, S.EXPORTING, requires_posting=False) is A.EXPORT_POSTED


@pytest.mark.parametrize("status", [S.PENDING_ACCEPTANCE, S.EXPORTING])
def test_posted_before_the_export_is_written_says_so(status: ExportStatus) -> None:
    with pytest.raises(DomainError, match="cannot come before the export is written"):
        decide(K.POSTED, status)


def test_a_replay_must_say_the_same() -> None:
    assert decide(K.SUCCESS, S.SYNCED) is None  # no reference: says nothing against the one kept
    assert decide(K.SUCCESS, S.SYNCED, reference=REF) is None
    with pytest.raises(DomainError, match="a repeat must carry the same erpReference"):
        decide(K.SUCCESS, S.SYNCED, reference="JC-43")
    with pytest.raises(DomainError, match="a repeat must carry the same erpReference"):
        decide(K.POSTED, S.SYNCED, reference="JC-43")
    assert decide(K.FAILURE, S.EXPORT_FAILED, recorded_message="the integrator reported a failure") is None
    with pytest.raises(DomainError, match="a repeat must carry the same messages"):
        decide(K.FAILURE, S.EXPORT_FAILED, message="another reason", recorded_message="closed")
