"""The ERP request state machine, pair by pair, against DOMAIN.md's workflow diagram and table."""

from __future__ import annotations

import pytest

from domain import events
from domain.errors import DomainError
from domain.requests import EVENTS
from domain.status import TRANSITIONS, ExportStatus, RequestAction, transition

S, A = ExportStatus, RequestAction

# The refusal codes a user sees (API error codes).
NP = "NOT_PENDING"  # the request is not in the status the action starts from
AD = "ALREADY_DECIDED"  # accept/reject on a request an approver already decided
NF = "NOT_FAILED"  # retry on a request that did not fail

# Column order of the table below.
ACTIONS = (
    A.RETRIEVE,
    A.ACCEPT,
    A.REJECT,
    A.EXPORT_WRITTEN,
    A.EXPORT_POSTED,
    A.EXPORT_FAILED,
    A.RETRY,
    A.CONFIRM_POSTING,
)

# Written from DOMAIN.md: an ExportStatus cell is where the action leads, a string cell is the refusal code.
# "Decided" statuses are the ones an approver's ACCEPT or REJECT led to: REJECTED and everything after
# EXPORTING. NOT_SENT and RETRIEVED were never decided, so accepting/rejecting there is NOT_PENDING.
# fmt: off
TABLE: dict[ExportStatus, tuple[ExportStatus | str, ...]] = {
    #                      RETRIEVE     ACCEPT       REJECT      EXPORT_WRITTEN
    #                      EXPORT_POSTED  EXPORT_FAILED    RETRY        CONFIRM_POSTING
    S.NOT_SENT:           (NP,          NP,          NP,         NP,
                           NP,            NP,              NF,          NP),
    S.PENDING_ACCEPTANCE: (S.RETRIEVED, S.EXPORTING, S.REJECTED, NP,
                           NP,            NP,              NF,          NP),
    S.RETRIEVED:          (NP,          NP,          NP,         NP,
                           NP,            NP,              NF,          NP),
    S.REJECTED:           (NP,          AD,          AD,         NP,
                           NP,            NP,              NF,          NP),
    S.EXPORTING:          (NP,          AD,          AD,         S.AWAITING_POSTING,
                           S.SYNCED,      S.EXPORT_FAILED, NF,          NP),
    S.EXPORT_FAILED:      (NP,          AD,          AD,         NP,
                           NP,            NP,              S.EXPORTING, NP),
    S.AWAITING_POSTING:   (NP,          AD,          AD,         NP,
                           NP,            NP,              NF,          S.SYNCED),
    S.SYNCED:             (NP,          AD,          AD,         NP,
                           NP,            NP,              NF,          NP),
}
# fmt: on

EXPECTED: dict[tuple[ExportStatus, RequestAction], ExportStatus | str] = {
    (status, action): cell
    for status, row in TABLE.items()
    for action, cell in zip(ACTIONS, row, strict=True)
}

PAIRS = [(status, action) for status in ExportStatus for action in RequestAction]


def test_the_expectation_table_covers_every_status_and_every_action() -> None:
    assert set(ACTIONS) == set(RequestAction)
    assert set(TABLE) == set(ExportStatus)
    assert set(EXPECTED) == set(PAIRS)
    assert len(PAIRS) == len(ExportStatus) * len(RequestAction)


def test_transitions_allow_exactly_the_moves_of_the_workflow_diagram() -> None:
    allowed = {pair: cell for pair, cell in EXPECTED.items() if isinstance(cell, ExportStatus)}
    assert allowed == TRANSITIONS


@pytest.mark.parametrize(
    ("status", "action"), PAIRS, ids=[f"{s.value}-{a.value}" for s, a in PAIRS]
)
def test_every_status_and_action_pair_moves_or_is_refused_with_its_code(
    status: ExportStatus, action: RequestAction
) -> None:
    expected = EXPECTED[(status, action)]
    if isinstance(expected, ExportStatus):
        assert transition(status, action) is expected
        assert TRANSITIONS[(status, action)] is expected
    else:
        assert (status, action) not in TRANSITIONS
        with pytest.raises(DomainError) as refused:
            transition(status, action)
        assert refused.value.code == expected
        assert status.value in refused.value.message


def test_a_pending_request_can_be_accepted_exported_and_posted() -> None:
    status = S.PENDING_ACCEPTANCE
    for action in (A.ACCEPT, A.EXPORT_WRITTEN, A.CONFIRM_POSTING):
        status = transition(status, action)
    assert status is S.SYNCED


def test_instant_posting_erp_goes_straight_from_exporting_to_synced() -> None:
    assert transition(transition(S.PENDING_ACCEPTANCE, A.ACCEPT), A.EXPORT_POSTED) is S.SYNCED


def test_a_failed_export_can_be_retried_and_then_succeed() -> None:
    status = transition(S.EXPORTING, A.EXPORT_FAILED)
    assert status is S.EXPORT_FAILED
    status = transition(status, A.RETRY)
    assert status is S.EXPORTING
    assert transition(status, A.EXPORT_WRITTEN) is S.AWAITING_POSTING


def test_a_rejected_request_cannot_be_accepted_afterwards() -> None:
    with pytest.raises(DomainError) as refused:
        transition(S.REJECTED, A.ACCEPT)
    assert refused.value.code == "ALREADY_DECIDED"


def test_an_accepted_request_can_no_longer_be_retrieved() -> None:
    with pytest.raises(DomainError) as refused:
        transition(S.EXPORTING, A.RETRIEVE)
    assert refused.value.code == "NOT_PENDING"


def test_a_retrieved_request_cannot_be_decided() -> None:
    for action in (A.ACCEPT, A.REJECT):
        with pytest.raises(DomainError) as refused:
            transition(S.RETRIEVED, action)
        assert refused.value.code == "NOT_PENDING"


def test_posting_can_only_be_confirmed_while_awaiting_posting() -> None:
    with pytest.raises(DomainError) as refused:
        transition(S.SYNCED, A.CONFIRM_POSTING)
    assert refused.value.code == "NOT_PENDING"


@pytest.mark.parametrize("status", [S.RETRIEVED, S.REJECTED, S.SYNCED])
def test_withdrawn_and_synced_requests_are_final(status: ExportStatus) -> None:
    assert not [action for (source, action) in TRANSITIONS if source is status]


def test_every_action_has_its_own_audit_event_class_named_in_the_past_tense() -> None:
    assert set(EVENTS) == set(RequestAction)
    assert len(set(EVENTS.values())) == len(RequestAction)
    for event_class in EVENTS.values():
        assert issubclass(event_class, events.BudgetEvent)
        assert event_class.__name__.endswith(("ed", "Sent", "Written", "Retrieved")), event_class.__name__
