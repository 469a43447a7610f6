"""Where a webhook may point: http(s) to public addresses only, checked on the resolved
addresses at creation and again before each delivery, which then connects to the very
address that was checked (a name re-resolving elsewhere meanwhile changes nothing)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The URL is not one we post to; the reason is for the operator's log."""


@dataclass(frozen=True)
class Target:
    """A checked destination: the URL to request, naming the checked address instead of the
    host, with the host for the `Host` header and for TLS (SNI and certificate check)."""

    url: str
    host: str
    host_header: str
    address: IPAddress


def parse(url: str) -> SplitResult:
    """The URL split up, if it is an absolute http(s) URL with a host; else AddressRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as problem:
        raise AddressRefused(f"not a URL: {problem}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise AddressRefused("not http or https")
    if not parts.hostname:
        raise AddressRefused("no host")
    if any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise AddressRefused("control characters or spaces")
    return parts


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared, reserved,
    documentation or multicast (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(url: str, *, allow_private: bool) -> Target:
    """The address to connect to for `url`. Every address the host resolves to must be
    public (unless `allow_private`), so no answer among several can reach inside."""
    parts = parse(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError) as problem:
        raise AddressRefused(f"{host} does not resolve: {problem}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    refused = [str(address) for address in addresses if not is_public(address)]
    if refused and not allow_private:
        raise AddressRefused(f"{host} resolves to a non-public address ({', '.join(refused)})")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{port}"
    return Target(
        url=parts._replace(netloc=netloc).geturl(),
        host=host,
        host_header=parts.netloc.rpartition("@")[2],
        address=address,
    )
