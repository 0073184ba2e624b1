"""Stand-ins for the network in webhook tests: made-up DNS names, and the loopback exception."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def fake_resolver(table: dict[str, list[str]]) -> Any:
    """getaddrinfo for made-up names, recording every lookup."""
    calls: list[str] = []

    def resolve(host: str, port: int, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for ip in table[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve
