"""Whether the server may call a URL that an administrator typed: outgoing webhooks (a company's chat channel,
an integrator's endpoint) must not reach into the server's own network.

`check_url` accepts only https, resolves the host and refuses the URL when any address it resolves to is not
a public (global) address: loopback, private ranges, link-local (which includes the cloud metadata address
169.254.169.254), shared address space (100.64.0.0/10), unique-local IPv6, multicast, reserved and
unspecified addresses, and IPv4 addresses hidden in IPv6 (`::ffff:127.0.0.1`). Every address counts: a name
that resolves to one public and one private address is refused.

`allow_private_network=True` (the administrator's explicit choice, e.g. an integrator on the same network,
or a test receiver on 127.0.0.1) accepts http and any address.

A check at save time cannot stop a name that is re-pointed later (DNS rebinding), and a check right before a
request cannot either (the name may resolve differently a millisecond later, when the HTTP client resolves it
again). `public_only_transport` closes that gap: its connections resolve the host once, refuse the connection
if any address is not public, and connect to exactly the address that was checked (TLS still verifies the
certificate for the host name). Clients of an administrator's URL use it unless that URL was saved with
--allow-private-network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the host resolves to (as text)
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class UnsafeUrlError(ValueError):
    """The URL may not be called; the message says why in words an administrator can act on."""


class UnsafeAddressError(UnsafeUrlError):
    """At connect time, the host resolved to an address that is not public (a name re-pointed since it was
    saved): nothing was sent."""


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


def non_public(addresses: Iterable[Address]) -> list[str]:
    return [str(a) for a in addresses if not is_public(a)]


def refusal(host: str, private: list[str]) -> str:
    return (
        f"the host {host!r} is a loopback, private, link-local or otherwise non-public address "
        f"({', '.join(private)}); use --allow-private-network if the server should call it anyway"
    )


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
    private = non_public(addresses)
    if private:
        raise UnsafeUrlError(refusal(host, private))
    return text


# --- at connect time ---------------------------------------------------------------------------------------


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with one change: `connect_tcp` resolves the host itself, refuses
    (UnsafeAddressError) when any address is not public, and connects to the checked address, so the HTTP
    client never resolves the name a second time. A name that cannot be resolved is a ConnectError (try
    again later), like a refused connection."""

    def __init__(self, resolve: Resolver | None = None, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._resolve = resolve or resolve_host
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await _addresses(host, port, self._resolve)
        except UnsafeUrlError as exc:  # no address: as unreachable as a refused connection
            raise httpcore.ConnectError(str(exc)) from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took too long") from None
        private = non_public(addresses)
        if private:
            raise UnsafeAddressError(refusal(host, private))
        failure: Exception | None = None
        for address in addresses:  # each one checked above; the first that answers
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeAddressError("a Unix socket is not a public address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def public_only_transport(resolve: Resolver | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through PublicOnlyBackend. A client given a transport
    uses no environment proxy (a proxy would connect on our behalf, to an address we did not check)."""
    transport = httpx.AsyncHTTPTransport()
    # httpx takes no network backend; its connection pool is rebuilt around ours, with httpx's TLS context
    # (certificates verified as usual, for the host name of the URL).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=PublicOnlyBackend(resolve)
    )
    return transport
