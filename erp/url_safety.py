"""Whether the server may call a URL that an administrator typed: outgoing webhooks (a company's chat channel,
an integrator's endpoint) must not reach into the server's own network.

`check_url` accepts only https, resolves the host and refuses the URL when any address it resolves to is not
a public (global) address: loopback, private ranges, link-local (which includes the cloud metadata address
169.254.169.254), shared address space (100.64.0.0/10), unique-local IPv6, multicast, reserved and
unspecified addresses, and IPv4 addresses hidden in IPv6 (`::ffff:127.0.0.1`). Every address counts: a name
that resolves to one public and one private address is refused.

`allow_private_network=True` (the administrator's explicit choice, e.g. an integrator on the same network,
or a test receiver on 127.0.0.1) accepts http and any address.

A check at save time cannot stop a name that is re-pointed later (DNS rebinding): callers that deliver long
after saving check again before each delivery (the notifier does).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the host resolves to (as text)
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class UnsafeUrlError(ValueError):
    """The URL may not be called; the message says why in words an administrator can act on."""


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, through the system resolver (without blocking the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: Address) -> bool:
    """A global unicast address, also once an IPv4 address embedded in IPv6 is unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and not is_public(embedded):
            return False
        if address.teredo is not None and not all(is_public(a) for a in address.teredo):
            return False
    return address.is_global and not address.is_multicast


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # a scope id (fe80::1%eth0) is not part of the address


async def _addresses(host: str, port: int, resolve: Resolver) -> list[Address]:
    try:
        return [_address(host)]
    except ValueError:
        pass  # a name, not an address literal: resolve it
    try:
        found = await resolve(host, port)
    except OSError as exc:
        raise UnsafeUrlError(f"the host {host!r} cannot be resolved ({exc})") from None
    if not found:
        raise UnsafeUrlError(f"the host {host!r} resolves to no address")
    try:
        return [_address(a) for a in found]
    except ValueError as exc:
        raise UnsafeUrlError(f"the host {host!r} resolves to something that is not an address ({exc})") from None


async def check_url(url: str, *, allow_private_network: bool = False, resolve: Resolver | None = None) -> str:
    """The URL, stripped, if the server may call it; UnsafeUrlError (with the reason) if not."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"not a valid URL: {url!r} ({exc})") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private_network else ("https",)
    if scheme not in allowed:
        if scheme == "http":
            raise UnsafeUrlError(
                "the URL must use https (plain http is accepted only with --allow-private-network)"
            )
        raise UnsafeUrlError(f"the URL must be an https:// URL, not {url!r}")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError(f"the URL has no host: {url!r}")
    if allow_private_network:
        return text
    port = port or (443 if scheme == "https" else 80)
    addresses = await _addresses(host, port, resolve or resolve_host)
    private = [str(a) for a in addresses if not is_public(a)]
    if private:
        raise UnsafeUrlError(
            f"the host {host!r} is a loopback, private, link-local or otherwise non-public address "
            f"({', '.join(private)}); use --allow-private-network if the server should call it anyway"
        )
    return text
