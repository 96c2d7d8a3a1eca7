"""Email over SMTP (aiosmtplib), one connection per message, with the moment of hand-over exposed.

`BUDGETBRIDGE_SMTP_URL` names the server: `smtp://host:port` (plain), `smtp+starttls://host:587` (STARTTLS
required) or `smtps://host:465` (TLS from the start); `user:password@` in the URL or
`BUDGETBRIDGE_SMTP_USERNAME` / `BUDGETBRIDGE_SMTP_PASSWORD` log in.

`SmtpMailer.send` speaks the protocol step by step so the caller learns when the message is about to leave:
`before_data` runs after the server accepted the sender and the recipient and before DATA. Until then nothing
can have been delivered; the notifier commits "handed over" there (see resolvers.notifications).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


class DeliveryError(Exception):
    """A message was not delivered. `retryable`: a later attempt may succeed (the server or the network was
    unavailable, a 4xx answer); otherwise the server refused it for good (a 5xx answer)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Abandoned(Exception):
    """The caller said not to send after all (`before_data` returned False): the row is no longer ours."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    local_hostname: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
    ) -> SmtpConfig:
        """ValueError with a message a person can act on for anything but smtp://, smtp+starttls://, smtps://."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not an SMTP URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"use smtp://host:port, smtp+starttls://host:587 or smtps://host:465, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"the SMTP URL names no host: {url!r}")
        security, default_port = SCHEMES[scheme]
        return cls(
            host=parts.hostname,
            port=port or default_port,
            security=security,
            username=username if username is not None else (unquote(parts.username) if parts.username else None),
            password=password if password is not None else (unquote(parts.password) if parts.password else None),
            timeout=timeout,
            local_hostname=local_hostname,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _refusal(exc: aiosmtplib.SMTPResponseException, what: str) -> DeliveryError:
    # 4xx: try again later. 5xx: refused for good, except a failed login, which a corrected setting fixes.
    retryable = exc.code < 500 or isinstance(exc, aiosmtplib.SMTPAuthenticationError)
    return DeliveryError(f"the SMTP server refused {what}: {exc.code} {exc.message}".strip(), retryable=retryable)


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(
        self, sender: str, recipient: str, message: bytes, before_data: Callable[[], Awaitable[bool]]
    ) -> None:
        """Deliver `message` to the server for `recipient`; DeliveryError if it was not accepted, Abandoned
        if `before_data` said to stop."""
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            username=c.username,
            password=c.password,
            timeout=c.timeout,
            local_hostname=c.local_hostname,
        )
        step = "the connection"
        try:
            await smtp.connect()
            step = "the sender"
            await smtp.mail(sender)
            step = "the recipient"
            await smtp.rcpt(recipient)
            if not await before_data():
                raise Abandoned()
            step = "the message"
            await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, step) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # unreachable, disconnected, timed out, TLS failed
            detail = str(exc) or type(exc).__name__
            reason = f"could not deliver to the SMTP server at {c.where}: {detail}"
            raise DeliveryError(reason, retryable=True) from None
        finally:
            if smtp.is_connected:
                with contextlib.suppress(Exception):
                    await smtp.quit()
            smtp.close()
