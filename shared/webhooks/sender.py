"""One webhook POST, made safely: only to addresses that passed the URL check (resolved once, so DNS
rebinding cannot redirect it), no redirects followed, the response read up to a limit, the whole
exchange cut at a timeout. The outcome says whether to retry and what `Retry-After` asked for."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from shared.jobs import now
from shared.webhooks.urlsafety import Resolver, Unresolved, UnsafeURL, resolve_checked, split_url


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    retryable: bool
    retry_after_s: float | None = None
    """The receiver's `Retry-After` (429/503), in seconds."""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Guarded:
    """Connects only to addresses that passed the URL check, resolved once (no DNS rebinding).

    All the addresses share one deadline: a name with many unreachable addresses must not stretch an
    attempt past its timeout (and past the attempt's lease, which would send it twice)."""

    def __init__(self, allowed: Any, resolver: Resolver, deadline: float) -> None:
        self.allowed = allowed
        self.resolver = resolver
        self.deadline = deadline
        """`time.monotonic()` by which a connection must be made."""

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        last: OSError | None = None
        for family, socktype, proto, _, sockaddr in resolve_checked(host, port, self.allowed, self.resolver):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"could not connect to {host}:{port} in time")
            sock = socket.socket(family, socktype, proto)
            try:
                sock.settimeout(left if timeout is None else min(timeout, left))
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"could not connect to {host}:{port}")


class _HTTPConnection(http.client.HTTPConnection):
    guard: _Guarded

    def connect(self) -> None:
        self.sock = self.guard.connect(self.host, self.port, self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    guard: _Guarded
    tls: ssl.SSLContext

    def connect(self) -> None:
        raw = self.guard.connect(self.host, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _connection(
    url: str, allowed: Any, resolver: Resolver, timeout_s: float
) -> tuple[http.client.HTTPConnection, str]:
    """A connection that reaches only checked addresses, and the request path; UnsafeURL if refused."""
    scheme, host, port, path = split_url(url)
    guard = _Guarded(allowed, resolver, deadline=time.monotonic() + timeout_s)
    conn: http.client.HTTPConnection
    if scheme == "https":
        tls = ssl.create_default_context()
        conn = _HTTPSConnection(host, port, timeout=timeout_s, context=tls)
        conn.guard, conn.tls = guard, tls
    else:
        conn = _HTTPConnection(host, port, timeout=timeout_s)
        conn.guard = guard
    return conn, path


def _exchange(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str], max_bytes: int
) -> tuple[int, str | None, float | None]:
    """Send the POST; (status, Location, Retry-After seconds) after reading at most `max_bytes`."""
    conn.request(
        "POST",
        path,
        body=body,
        headers={**headers, "content-type": "application/json", "user-agent": "ReelForge-Webhooks/1"},
    )
    resp = conn.getresponse()
    received = 0
    while received < max_bytes:
        chunk = resp.read(min(max_bytes - received, 16 * 1024))
        if not chunk:
            break
        received += len(chunk)
    return resp.status, resp.getheader("location"), parse_retry_after(resp.getheader("retry-after"))


def _answered(status: int, location: str | None, retry_after: float | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(status, None, retryable=False)
    if 300 <= status < 400:
        return Outcome(status, f"redirect to {(location or '?')[:200]} not followed", retryable=False)
    return Outcome(
        status, f"HTTP {status}", retryable=status == 429 or status >= 500, retry_after_s=retry_after
    )


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allowed: Any = (),
    timeout_s: float = 10.0,
    max_response_bytes: int = 64 * 1024,
    resolver: Resolver = socket.getaddrinfo,
) -> Outcome:
    """One POST. Redirects are not followed; at most `max_response_bytes` of the answer are read;
    the whole exchange is cut at `timeout_s`."""
    try:
        conn, path = _connection(url, allowed, resolver, timeout_s)
    except UnsafeURL as exc:
        return Outcome(None, f"refused: {exc.rule}", retryable=False)
    # A receiver trickling bytes resets the socket timeout on each one: cut the whole exchange here.
    cut = threading.Event()
    timer = threading.Timer(timeout_s, _abort, args=(conn, cut))
    timer.daemon = True
    timer.start()
    try:
        return _answered(*_exchange(conn, path, body, headers, max_response_bytes))
    except Unresolved as exc:
        return Outcome(None, exc.rule, retryable=True)
    except UnsafeURL as exc:
        return Outcome(None, f"refused: {exc.rule}", retryable=False)
    except (ValueError, http.client.InvalidURL) as exc:
        return Outcome(None, f"refused: not a valid request URL ({exc})", retryable=False)
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set() or isinstance(exc, TimeoutError):
            return Outcome(None, f"timed out after {timeout_s:g}s", retryable=True)
        return Outcome(None, f"{type(exc).__name__}: {exc}", retryable=True)
    finally:
        timer.cancel()
        conn.close()


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now()).total_seconds())


def _abort(conn: http.client.HTTPConnection, cut: threading.Event) -> None:
    cut.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
