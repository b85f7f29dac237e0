"""The SSRF guard: only http(s) URLs without credentials; hosts must resolve to public addresses only
(IPv4 hidden in IPv6 included) unless private ones are allowed; delivery connects to the checked address."""

from __future__ import annotations

import ipaddress

import pytest

from services.core.webhooks.errors import WebhookUrlRefused
from services.core.webhooks.urls import check_syntax, check_url, is_public, resolve_target


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "file:///etc/passwd",
        "gopher://example.org/",
        "//example.org/hook",
        "https:///hook",
        "https://user:pass@example.org/hook",
        "https://example.org:0/hook",
        "https://example.org:99999/hook",
        "https://exa mple.org/hook",
        "https://example.org/" + "x" * 2000,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each has its own message
        check_syntax(url)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.10",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.0.1]/",
        "http://10.0.0.7/",
    ],
)
async def test_urls_reaching_private_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(WebhookUrlRefused):
        await check_url(url, allow_private=False)
    assert await check_url(url, allow_private=True) == []


async def test_the_scheme_rule_holds_even_when_private_addresses_are_allowed() -> None:
    with pytest.raises(WebhookUrlRefused):
        await check_url("ftp://127.0.0.1/", allow_private=True)


async def test_a_public_literal_address_passes() -> None:
    assert await check_url("https://8.8.8.8/hook", allow_private=False) == [ipaddress.ip_address("8.8.8.8")]


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(WebhookUrlRefused):
        await check_url("https://no-such-host.invalid/hook", allow_private=False)


async def test_delivery_connects_to_the_checked_address_with_the_original_host() -> None:
    target = await resolve_target("http://localhost:8123/hooks?a=1", allow_private=True)
    assert target.address.is_loopback
    literal = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    assert target.url == f"http://{literal}:8123/hooks?a=1"
    assert target.host_header == "localhost:8123"
    assert target.tls_name is None

    secure = await resolve_target("https://[::1]/x", allow_private=True)
    assert secure.url == "https://[::1]:443/x"
    assert secure.host_header == "[::1]"
    assert secure.tls_name == "::1"

    with pytest.raises(WebhookUrlRefused):
        await resolve_target("http://localhost:8123/hooks", allow_private=False)
