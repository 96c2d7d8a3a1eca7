"""A real SMTP server for the notification tests: aiosmtpd on 127.0.0.1, in the test's event loop.

It keeps every message it accepted (`MailServer.received`, parsed MIME) and announces each one, so a test
waits for mail on an event, never on the clock. It can be started on a socket that was reserved (bound but not
listening) while the test ran with the server "down", and it can refuse recipients with a given reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.waiting import Changes


@dataclass(frozen=True)
class Mail:
    """One accepted message: the envelope and the parsed MIME."""

    mail_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        # A subject that fits on a line of its own is folded onto one ("Subject:\r\n Budget ..."); mail
        # programs drop the folding white space, as this does.
        return str(self.message["Subject"]).strip()

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_type() == f"text/{subtype}", f"no text/{subtype} part"
        content = body.get_content()
        assert isinstance(content, str)
        return content.replace("\r\n", "\n")  # SMTP's line ends, as the reader's mail program shows them

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


@dataclass
class MailServer:
    port: int = 0
    received: list[Mail] = field(default_factory=list)
    refuse_recipients: dict[str, str] = field(default_factory=dict)  # address -> reply (e.g. "550 no such user")
    changes: Changes = field(default_factory=Changes)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.received if address in m.recipients]

    async def wait_for(self, count: int, *, timeout: float = 20.0) -> list[Mail]:
        await self.changes.until(
            lambda: len(self.received) >= count,
            timeout=timeout,
            what=lambda: f"{count} messages at the SMTP server (got {len(self.received)})",
        )
        return self.received

    # aiosmtpd's handler hooks
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_recipients:
            return self.refuse_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content
        self.received.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content)))
        self.changes.notify()
        return "250 Message accepted for delivery"


def reserved_socket() -> socket.socket:
    """A loopback port that refuses connections (bound, not listening) until a server listens on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def running_smtp(
    mail: MailServer | None = None, *, sock: socket.socket | None = None
) -> AsyncIterator[MailServer]:
    """Serve `mail` (a fresh MailServer by default) on `sock` (a new loopback port by default) until the block ends."""
    mail = mail or MailServer()
    sock = sock or reserved_socket()
    mail.port = int(sock.getsockname()[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mail, hostname="mail.test", ident="BudgetBridge test SMTP", loop=loop), sock=sock
    )
    try:
        yield mail
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()
