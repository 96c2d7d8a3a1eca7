"""The rules of taking access back, at whole-second resolution (domain.access)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.access import (
    AccessRefusal,
    AccountAccess,
    lives_too_long,
    seconds_until_issuable,
    token_refusal,
    tokens_valid_after_revocation,
    whole_seconds,
)

SECOND = datetime(2026, 12, 1, 17, 0, 0, tzinfo=UTC)
S = whole_seconds(SECOND)
OPEN = AccountAccess(disabled_at=None, tokens_valid_after=None)


def at(seconds: float) -> datetime:
    return SECOND + timedelta(seconds=seconds)


@pytest.mark.parametrize("revoked_at", [0.0, 0.5, 0.999999])
def test_a_revocation_refuses_every_token_of_its_own_second_and_before(revoked_at: float) -> None:
    account = AccountAccess(disabled_at=None, tokens_valid_after=tokens_valid_after_revocation(at(revoked_at)))
    assert account.tokens_valid_after == at(1)
    assert token_refusal(account, S - 3600) is AccessRefusal.REVOKED
    assert token_refusal(account, S) is AccessRefusal.REVOKED  # issued at .2 before a revocation at .5: refused
    assert token_refusal(account, S + 1) is None


def test_an_issuer_in_the_revocations_second_waits_for_the_next_one_and_no_longer() -> None:
    valid_after = tokens_valid_after_revocation(at(0.5))
    assert seconds_until_issuable(at(0.8), valid_after) == pytest.approx(0.2)
    assert seconds_until_issuable(at(1), valid_after) == 0
    assert seconds_until_issuable(at(7.3), valid_after) == 0
    assert seconds_until_issuable(at(0.8), None) == 0
    assert token_refusal(AccountAccess(None, valid_after), whole_seconds(at(1))) is None


def test_a_disabled_account_refuses_its_tokens_and_a_revoked_token_learns_nothing_more() -> None:
    disabled = AccountAccess(disabled_at=at(-60), tokens_valid_after=None)
    assert token_refusal(disabled, S) is AccessRefusal.DISABLED
    both = AccountAccess(disabled_at=at(-60), tokens_valid_after=at(1))
    assert token_refusal(both, S) is AccessRefusal.REVOKED
    assert token_refusal(both, S + 1) is AccessRefusal.DISABLED
    assert token_refusal(None, S) is AccessRefusal.NO_SUCH_USER
    assert token_refusal(OPEN, S) is None


def test_whole_seconds_round_down_like_jwt_iat() -> None:
    assert whole_seconds(at(0.999999)) == S
    assert whole_seconds(at(1)) == S + 1


@pytest.mark.parametrize(("issued", "expires", "now", "too_long"), [
    (S, S + 60, S, False),
    (S, S + 61, S, True),  # exp - iat over the maximum
    (S - 30, S + 30, S, False),
    (S + 10, S + 65, S, True),  # exp - now over the maximum (an issuer whose clock runs ahead)
    (S, 253402300799, S, True),  # year 9999
])
def test_a_token_may_live_at_most_the_maximum(issued: int, expires: int, now: int, too_long: bool) -> None:
    assert lives_too_long(issued, expires, now, 60) is too_long
