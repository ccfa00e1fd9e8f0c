"""The client's address behind reverse proxies (`trusted_proxies`).

A request's `remote` is the TCP peer, unless that peer is a trusted proxy: then it is the
right-most `X-Forwarded-For` hop that is not a trusted proxy — the address the nearest untrusted
party connected from. What a client writes further left is never believed, and a peer that is
not a trusted proxy cannot set its address at all. The auth-failure throttle, the policy's
`request.remote`, the audit trail and the access log all see this address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: tuple[IPNetwork, ...]
) -> str | None:
    """The client's address: `peer`, or behind trusted proxies the right-most untrusted hop.

    Hops are read right to left, each written by the hop after it; an unreadable one ends the
    walk at the last trusted hop (whoever sent the garbage is not believed).
    """
    if not _trusted(_address(peer or ""), trusted):
        return peer
    client = peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


def forwarded_client(trusted: tuple[IPNetwork, ...]) -> Middleware:
    """A middleware that gives each request its client's address as `request.remote`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted:
            forwarded_for = request.headers.getall("X-Forwarded-For", [])
            remote = client_address(request.remote, forwarded_for, trusted)
            if remote is not None and remote != request.remote:
                request = request.clone(remote=remote)
        return await handler(request)

    return middleware
