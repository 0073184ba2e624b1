"""The webhook delivery HTTP client against a local receiver: what is retried, what is refused
before connecting, and how far one attempt may go (redirects, response size, time)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shared.webhooks.sender import parse_retry_after, post
from tests.loopback import LoopbackServer
from tests.unit.shared.webhooks.fakes import LOOPBACK, fake_resolver


class Receiver:
    """A local HTTP server answering each POST by a behaviour chosen per path."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.written: dict[str, int] = {}
        self.server = LoopbackServer(self._answer)
        self.port = self.server.port

    def _answer(self, request: BaseHTTPRequestHandler, body: bytes) -> int | None:
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.path == "/redirect":
            return _reply(request, 302, Location="http://169.254.169.254/latest/meta-data/")
        if request.path.startswith("/retry-after/"):
            return _reply(request, 429, **{"Retry-After": request.path.removeprefix("/retry-after/")})
        if request.path == "/huge":
            self.written[request.path] = _endless_body(request)
            return None
        if request.path == "/slow":
            time.sleep(3)
            return 200
        return int(request.path.strip("/") or 200)


def _reply(request: BaseHTTPRequestHandler, status: int, **headers: str) -> None:
    request.send_response(status)
    for name, value in {**headers, "Content-Length": "0"}.items():
        request.send_header(name, value)
    request.end_headers()


def _endless_body(request: BaseHTTPRequestHandler) -> int:
    """A 200 whose body (no length) runs to a gigabyte unless the client hangs up; the bytes sent."""
    request.send_response(200)
    request.send_header("Connection", "close")
    request.end_headers()
    chunk, sent = b"x" * 65536, 0
    try:
        while sent < 1 << 30:
            request.wfile.write(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.stop()


def _post(url: str, **kw: Any) -> Any:
    kw.setdefault("allowed", LOOPBACK)
    return post(url, b"{}", {"webhook-id": "msg_t"}, **kw)


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [(200, True, False), (204, True, False), (400, False, False), (404, False, False), (410, False, False),
     (429, False, True), (500, False, True), (503, False, True)],
)  # fmt: skip
def test_status_codes_decide_retries(receiver: Receiver, status: int, ok: bool, retryable: bool) -> None:
    out = _post(f"http://127.0.0.1:{receiver.port}/{status}")
    assert (out.status_code, out.ok, out.retryable) == (status, ok, retryable)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _post(f"http://127.0.0.1:{port}/")
    assert out.status_code is None and out.retryable and out.error


def test_refused_address_is_checked_at_delivery_and_never_connected(receiver: Receiver) -> None:
    # The name resolved to a public address at submission; now it resolves to a private one.
    resolver = fake_resolver({"rebound.test": ["10.0.0.7"]})
    out = _post(f"http://rebound.test:{receiver.port}/200", resolver=resolver)
    assert out.status_code is None and not out.retryable
    assert "refused" in (out.error or "") and "private" in (out.error or "")
    assert resolver.calls == ["rebound.test"] and receiver.requests == []
    # Without the loopback exception, even our own receiver is refused.
    assert "loopback" in (_post(f"http://127.0.0.1:{receiver.port}/200", allowed=()).error or "")
    assert receiver.requests == []


def test_connects_to_the_address_that_was_checked(receiver: Receiver) -> None:
    resolver = fake_resolver({"hooks.test": ["127.0.0.1"]})
    out = _post(f"http://hooks.test:{receiver.port}/200", resolver=resolver)
    assert out.ok and resolver.calls == ["hooks.test"]
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.test:{receiver.port}"


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    out = _post(f"http://127.0.0.1:{receiver.port}/redirect")
    assert out.status_code == 302 and not out.ok and not out.retryable
    assert "169.254.169.254" in (out.error or "") and "not followed" in (out.error or "")
    assert [r["path"] for r in receiver.requests] == ["/redirect"]


def test_response_read_is_bounded(receiver: Receiver) -> None:
    t0 = time.monotonic()
    out = _post(f"http://127.0.0.1:{receiver.port}/huge", timeout_s=5, max_response_bytes=64 * 1024)
    assert out.ok and out.error is None
    assert time.monotonic() - t0 < 4
    deadline = time.monotonic() + 5
    while "/huge" not in receiver.written and time.monotonic() < deadline:
        time.sleep(0.05)
    # The server stopped once we hung up: far less than the gigabyte it meant to send.
    assert receiver.written["/huge"] < 64 * 1024 * 1024


def test_whole_attempt_is_cut_at_the_timeout(receiver: Receiver) -> None:
    t0 = time.monotonic()
    out = _post(f"http://127.0.0.1:{receiver.port}/slow", timeout_s=1)
    assert time.monotonic() - t0 < 2.5
    assert out.status_code is None and out.retryable and "timed out" in (out.error or "")


def test_retry_after_is_read(receiver: Receiver) -> None:
    out = _post(f"http://127.0.0.1:{receiver.port}/retry-after/30")
    assert (out.status_code, out.retryable, out.retry_after_s) == (429, True, 30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_passing_dns_failure_at_delivery_is_retried() -> None:
    out = _post("http://no-such-host.invalid/", resolver=fake_resolver({}))
    assert out.status_code is None and out.retryable and "does not resolve" in (out.error or "")


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: the kernel drops new SYNs, so connects hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    yield port
    for c in fillers:
        c.close()
    server.close()


def test_many_unreachable_addresses_share_one_deadline(blackhole: int) -> None:
    # Four addresses that never answer: one timeout for all of them, not one each.
    resolver = fake_resolver({"many.test": ["127.0.0.1"] * 4})
    t0 = time.monotonic()
    out = _post(f"http://many.test:{blackhole}/", timeout_s=1, resolver=resolver)
    assert time.monotonic() - t0 < 2.5
    assert out.status_code is None and out.retryable and "timed out" in (out.error or "")
