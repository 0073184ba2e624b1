"""Where a webhook may go: http(s) URLs whose host resolves only to public addresses.

Guards against server-side request forgery: loopback, private, link-local, multicast and other
non-public addresses are refused unless an allowed network covers them; cloud metadata addresses
are refused always. IPv4 embedded in IPv6 (mapped, 6to4, NAT64) is unwrapped first.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

# Cloud instance-metadata endpoints: refused even when an allowed network covers them.
METADATA_ADDRESSES: frozenset[Address] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)
_EMBEDS_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0:0/96",  # SIIT
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


class UnsafeURL(ValueError):
    """A webhook URL that is not http(s) or reaches an address webhooks may not go to."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class Unresolved(UnsafeURL):
    """The host did not resolve: refused at submission, but a passing DNS failure at delivery."""


def _embedded_v4(ip: Address) -> Address:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if not (ip.is_loopback or ip.is_unspecified) and any(ip in net for net in _EMBEDS_V4):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_problem(ip: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why a webhook may not go to this address, or None when it may."""
    ip = _embedded_v4(ip)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or (ip.version == 6 and ip not in _GLOBAL_UNICAST_V6):
        return "a non-public address"
    return None


def resolve_checked(
    host: str, port: int, allowed: Sequence[Network] = (), resolver: Resolver = socket.getaddrinfo
) -> list[tuple[Any, ...]]:
    """Resolve `host`; every address it resolves to must be allowed (else UnsafeURL). Returns the
    getaddrinfo entries, so the caller connects to exactly the addresses that were checked."""
    try:
        infos = list(resolver(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError) as exc:
        raise Unresolved(f"host {host!r} does not resolve ({exc})") from exc
    if not infos:
        raise Unresolved(f"host {host!r} does not resolve")
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        problem = address_problem(ip, allowed)
        if problem:
            raise UnsafeURL(
                f"host {host!r} resolves to {ip}, {problem}; webhooks go to public addresses only "
                "(REELFORGE_WEBHOOK_ALLOWED_NETWORKS lists exceptions)"
            )
    return infos


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or UnsafeURL."""
    if not url.isascii() or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UnsafeURL("must be ASCII without spaces or control characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("must be an http(s) URL")
    if not parts.hostname:
        raise UnsafeURL("must name a host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def check_url(url: str, allowed: Sequence[Network] = (), resolver: Resolver = socket.getaddrinfo) -> None:
    """Refuse non-http(s) URLs and hosts resolving to loopback, private, link-local, metadata or
    other non-public addresses (unless an allowed network covers them)."""
    _, host, port, _ = split_url(url)
    resolve_checked(host, port, allowed, resolver)
