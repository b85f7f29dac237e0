"""Which URLs Loom may call: the guard against server-side request forgery (SSRF).

``http(s)`` without credentials, and every address the host resolves to public (unless
``LOOM_WEBHOOKS_ALLOW_PRIVATE_URLS``). Checked at registration and again before every attempt, which then
connects to the checked address (:func:`resolve_target`), against DNS rebinding. docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from services.core.webhooks.errors import WebhookUrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2000
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check_syntax(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a host and no credentials; else ``ValueError``."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError("only http and https URLs are allowed")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not contain credentials")
    if port == 0:
        raise ValueError("the URL's port must be 1 to 65535")
    if any(c.isspace() for c in url):
        raise ValueError("the URL must not contain spaces")
    return url


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether Loom may connect to ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


@dataclass(frozen=True)
class Target:
    """Where to send a request for a URL: the URL with the checked address in place of the host, the
    ``Host`` header to send, and the name for TLS (SNI and certificate checks)."""

    url: str
    host_header: str
    tls_name: str | None
    address: IPAddress


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlRefused(f"The URL's host does not resolve ({type(exc).__name__}).") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])  # drop an IPv6 zone id
        if address not in found:
            found.append(address)
    if not found:
        raise WebhookUrlRefused("The URL's host does not resolve.")
    return found


def _split(url: str) -> tuple[SplitResult, str, int]:
    try:
        check_syntax(url)
    except ValueError as exc:
        raise WebhookUrlRefused(f"The URL is refused: {exc}.") from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts, host, parts.port or SCHEMES[parts.scheme]


async def check_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Refuse (``WebhookUrlRefused``) a URL Loom must not call; returns the addresses it resolves to
    (none are looked up when ``allow_private`` is set: any address would do)."""
    _parts, host, port = _split(url)
    if allow_private:
        return []
    addresses = await resolve(host, port)
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        # Every address must be public: a client may connect to any of them.
        raise WebhookUrlRefused(
            "The URL resolves to an address that is not public (private, loopback, link-local, multicast "
            "or reserved)."
        )
    return addresses


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve and check ``url`` now, and say how to reach the checked address (see the module's doc)."""
    parts, host, port = _split(url)
    addresses = await resolve(host, port)
    if not allow_private and not all(is_public(a) for a in addresses):
        raise WebhookUrlRefused("The URL resolves to an address that is not public.")
    address = addresses[0]
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = f"{literal}:{port}"
    pinned = parts._replace(netloc=netloc).geturl()
    default_port = SCHEMES[parts.scheme] == port
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if default_port else f"{shown_host}:{port}"
    return Target(pinned, host_header, host if parts.scheme == "https" else None, address)
