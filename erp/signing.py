"""The signature on every webhook request, in both directions (BudgetBridge -> integrator, and the
integrator's callbacks back to BudgetBridge).

    X-BudgetBridge-Timestamp: 1718000000                      (Unix seconds, when the request was signed)
    X-BudgetBridge-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed text, so a captured request cannot be replayed later with a fresh
timestamp, and a receiver refuses signatures older (or newer) than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-BudgetBridge-Timestamp"
SIGNATURE_HEADER = "X-BudgetBridge-Signature"
DELIVERY_HEADER = "X-BudgetBridge-Delivery"
EVENT_HEADER = "X-BudgetBridge-Event"

SCHEME = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300
_HEX_DIGITS = frozenset("0123456789abcdef")
_MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; anything longer is not a timestamp


def signed_text(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode("ascii") + body


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-BudgetBridge-Signature value for `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode("utf-8"), signed_text(timestamp, body), hashlib.sha256).hexdigest()
    return SCHEME + digest


def parse_timestamp(value: str | None) -> int | None:
    """Plain ASCII digits only (no sign, spaces, fraction or exponent), else None."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > _MAX_TIMESTAMP_DIGITS:
        return None
    return int(value)


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True only when the signature is well-formed, made with `secret` over exactly `body` and the given
    timestamp, and that timestamp is within `tolerance` seconds of `now` (either side)."""
    if not secret:
        return False
    timestamp = parse_timestamp(timestamp_header)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    if signature_header is None or not signature_header.startswith(SCHEME):
        return False
    received = signature_header[len(SCHEME):].lower()
    if len(received) != hashlib.sha256().digest_size * 2 or not set(received) <= _HEX_DIGITS:
        return False
    expected = sign(secret, timestamp, body)[len(SCHEME):]
    return hmac.compare_digest(expected.encode("ascii"), received.encode("ascii"))


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "verify",
]
