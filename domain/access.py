"""Taking access back: whether a bearer token still opens its user's account.

Tokens are stateless (HS256 JWTs), so what an administrator takes back is kept on the user: `disabled_at`
(every token refused while it is set; enabling gives the same tokens back) and `tokens_valid_after` (a
revocation: a token issued before it is refused for good).

JWT `iat` is whole seconds, so a revocation cannot tell a token issued at 12:00:00.2 from one issued at
12:00:00.8. The two rules below keep it exact anyway:

- a revocation at instant T makes tokens valid from the *next* whole second, floor(T) + 1: every token issued
  before T has iat <= floor(T) and is refused, including those of T's own second;
- an issuer asked for a token before that second has begun waits for it (at most a second), so a token asked
  for after the revocation, even within the same second, carries iat >= floor(T) + 1 and works.

A token issued concurrently with a revocation (its issuer read the user before the revocation committed) may
be refused; that is the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class AccessRefusal(Enum):
    """Why a correctly signed, unexpired token no longer opens the account."""

    NO_SUCH_USER = "NO_SUCH_USER"  # deleted (or never existed)
    REVOKED = "REVOKED"  # issued before the user's tokens were revoked
    DISABLED = "DISABLED"  # the account is disabled


@dataclass(frozen=True)
class AccountAccess:
    """What of a user decides whether their tokens work."""

    disabled_at: datetime | None
    tokens_valid_after: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


def token_refusal(account: AccountAccess | None, issued_at: int) -> AccessRefusal | None:
    """None when a token issued at `issued_at` (JWT iat, whole seconds since the epoch) opens the account.

    A revoked token learns nothing more about the account (it is refused as revoked whether or not the account
    is also disabled)."""
    if account is None:
        return AccessRefusal.NO_SUCH_USER
    if account.tokens_valid_after is not None and issued_at < whole_seconds(account.tokens_valid_after):
        return AccessRefusal.REVOKED
    if account.disabled:
        return AccessRefusal.DISABLED
    return None


def tokens_valid_after_revocation(now: datetime) -> datetime:
    """The whole second from which tokens are valid again after a revocation at `now`: the next one."""
    return now.replace(microsecond=0) + timedelta(seconds=1)


def seconds_until_issuable(now: datetime, tokens_valid_after: datetime | None) -> float:
    """How long an issuer waits before stamping a token at `now` so that it is not refused as revoked
    (0: issue now). At most a second after a revocation."""
    if tokens_valid_after is None or now >= tokens_valid_after:
        return 0.0
    return (tokens_valid_after - now).total_seconds()


def whole_seconds(instant: datetime) -> int:
    """Seconds since the epoch, rounded down, as JWT `iat` counts them."""
    return int(instant.timestamp() // 1)


def lives_too_long(issued_at: int, expires_at: int, now: int, max_seconds: int) -> bool:
    """True when a token lives longer than allowed: its exp is more than `max_seconds` after its iat or
    after now (an exp in year 9999 is refused however the token came about)."""
    return expires_at - issued_at > max_seconds or expires_at - now > max_seconds
