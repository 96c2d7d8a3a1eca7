"""erp.url_safety: outgoing webhook URLs may not reach into the server's own network unless allowed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from erp.url_safety import UnsafeUrlError, check_url


def resolver(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


DNS = resolver(
    {
        "hooks.slack.com": ["34.226.36.34", "2600:1f18:24e6:b900::64"],
        "internal.example.com": ["10.0.0.5"],
        "mixed.example.com": ["34.226.36.34", "192.168.1.20"],
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
        "empty.example.com": [],
    }
)


async def test_a_public_https_url_passes_as_given() -> None:
    url = " https://hooks.slack.com/services/T000/B000/XXXX "
    assert await check_url(url, resolve=DNS) == url.strip()
    assert await check_url("https://34.226.36.34:8443/hook") == "https://34.226.36.34:8443/hook"


@pytest.mark.parametrize(
    "url,reason",
    [
        ("http://hooks.slack.com/x", "must use https"),
        ("ftp://hooks.slack.com/x", "must be an https:// URL"),
        ("https:///nohost", "has no host"),
        ("https://hooks.slack.com:99999/x", "not a valid URL"),
        ("https://127.0.0.1/x", "(127.0.0.1)"),
        ("https://[::1]/x", "(::1)"),
        ("https://10.1.2.3/x", "(10.1.2.3)"),
        ("https://172.16.0.1/x", "(172.16.0.1)"),
        ("https://192.168.0.10/x", "(192.168.0.10)"),
        ("https://169.254.169.254/latest/meta-data", "(169.254.169.254)"),
        ("https://100.100.100.200/", "(100.100.100.200)"),
        ("https://[fd00:ec2::254]/", "(fd00:ec2::254)"),
        ("https://[fe80::1]/", "(fe80::1)"),
        ("https://0.0.0.0/", "(0.0.0.0)"),
        ("https://224.0.0.1/", "(224.0.0.1)"),
        ("https://internal.example.com/hook", "(10.0.0.5)"),
        ("https://mixed.example.com/hook", "(192.168.1.20)"),  # every address counts
        ("https://metadata.example.com/", "(169.254.169.254)"),
        ("https://mapped.example.com/", "(::ffff:7f00:1)"),  # 127.0.0.1 inside IPv6
        ("https://unknown.example.com/", "cannot be resolved"),
        ("https://empty.example.com/", "resolves to no address"),
    ],
)
async def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError) as refused:
        await check_url(url, resolve=DNS)
    assert reason in str(refused.value)


async def test_names_are_resolved_by_the_system_resolver() -> None:
    with pytest.raises(UnsafeUrlError, match="non-public address"):
        await check_url("https://localhost:8443/hook")  # /etc/hosts: no network needed


async def test_the_administrator_may_allow_the_private_network_and_http() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://internal.example.com/hook", "http://10.0.0.5/x"):
        assert await check_url(url, allow_private_network=True, resolve=DNS) == url
    with pytest.raises(UnsafeUrlError, match="must be an https:// URL"):
        await check_url("file:///etc/passwd", allow_private_network=True)
