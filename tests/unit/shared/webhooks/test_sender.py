"""Webhook signing, URL safety and the delivery HTTP client, without the stack.

Signatures are checked with the `standardwebhooks` reference package, not with our own code.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.jobs import JobRecord, now
from shared.schemas import Progress
from shared.settings import Settings
from shared.states import JobStatus
from shared.webhooks.deliveries import next_attempt_at, retry_delay
from shared.webhooks.events import event_for
from shared.webhooks.sender import parse_retry_after, post
from shared.webhooks.signing import SECRET_PREFIX, new_secret, sign, signed_headers
from shared.webhooks.urlsafety import UnsafeURL, address_problem, check_url

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


# Signing.


def test_secret_is_whsec_with_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and a != b
    assert len(base64.b64decode(a.removeprefix(SECRET_PREFIX))) == 32


def test_signature_verifies_with_the_reference_implementation() -> None:
    secret = new_secret()
    body = b'{"type":"job.completed","data":{"id":"j1"}}'
    ts = int(time.time())
    headers = signed_headers([secret], "msg_1", ts, body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(ts)
    assert Webhook(secret).verify(body, headers) == {"type": "job.completed", "data": {"id": "j1"}}
    # Any change to the body, id or timestamp breaks it; so does another secret.
    for bad_body, bad_headers in [
        (body + b" ", headers),
        (body, {**headers, "webhook-id": "msg_2"}),
        (body, {**headers, "webhook-timestamp": str(ts - 1)}),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(bad_body, bad_headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    # The README's recipe, written out: what a receiver without the package does.
    import hashlib
    import hmac

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_x.1700000000.{}", hashlib.sha256).digest())
    assert sign(secret, "msg_x", 1700000000, b"{}") == "v1," + expected.decode()


def test_two_secrets_sign_with_two_signatures_each_verifying() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = signed_headers([new, old], "msg_r", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


# URL safety.


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_address_rules(ip: str, problem: str | None) -> None:
    found = address_problem(ipaddress.ip_address(ip))
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_allowed_networks_open_loopback_but_never_metadata() -> None:
    assert address_problem(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("127.0.0.2"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), LOOPBACK) is not None
    everything = [ipaddress.ip_network("0.0.0.0/0")]
    assert "metadata" in (address_problem(ipaddress.ip_address("169.254.169.254"), everything) or "")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://example.com/x", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
        ("http:///nohost", "host"),
        ("http://example.com:99999/", "valid URL"),
        ("http://hooks.internal.test/x", "10.20.30.40, a private address"),
        ("https://mixed.test/x", "a loopback address"),
        ("http://nowhere.test/x", "does not resolve"),
    ],
)
def test_check_url_refuses(url: str, rule: str) -> None:
    resolver = fake_resolver({"hooks.internal.test": ["10.20.30.40"], "mixed.test": ["1.1.1.1", "::1"]})
    with pytest.raises(UnsafeURL) as exc:
        check_url(url, (), resolver)
    assert rule in exc.value.rule


def test_check_url_accepts_public_hosts() -> None:
    check_url(
        "https://hooks.example.test/in?x=1", (), fake_resolver({"hooks.example.test": ["93.184.215.14"]})
    )


# The delivery client.


class Receiver:
    """A local HTTP server answering each POST by a behaviour chosen per path."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.written: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/huge":
                    self.send_response(200)
                    self.send_header("Connection", "close")  # no length: the body runs until we stop
                    self.end_headers()
                    chunk, sent = b"x" * 65536, 0
                    try:
                        while sent < 1 << 30:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass
                    receiver.written[self.path] = sent
                elif self.path.startswith("/retry-after/"):
                    self.send_response(429)
                    self.send_header("Retry-After", self.path.removeprefix("/retry-after/"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/slow":
                    time.sleep(3)
                    self.send_response(200)
                    self.end_headers()
                else:
                    status = int(self.path.strip("/") or 200)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


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


# Retries and events.


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    s = Settings(webhook_retry_base_s=5, webhook_retry_max_delay_s=60)
    assert [retry_delay(s, n, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    assert retry_delay(s, 3, lambda: 0.0) == 10  # jitter: half to all of the step
    assert retry_delay(s, 30, lambda: 1.0) == 60


def test_retry_after_is_read_and_honoured_up_to_the_cap(receiver: Receiver) -> None:
    out = _post(f"http://127.0.0.1:{receiver.port}/retry-after/30")
    assert (out.status_code, out.retryable, out.retry_after_s) == (429, True, 30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    s = Settings(webhook_retry_base_s=1, webhook_retry_max_delay_s=60, webhook_retry_window_s=3600)
    t0 = now()
    waited = (next_attempt_at(s, t0, 1, lambda: 1.0, retry_after_s=30) - t0).total_seconds()  # type: ignore[operator]
    assert 30 <= waited < 31
    capped = (next_attempt_at(s, t0, 1, lambda: 1.0, retry_after_s=9999) - t0).total_seconds()  # type: ignore[operator]
    assert 60 <= capped < 61


def test_retries_stop_at_the_window() -> None:
    s = Settings(webhook_retry_base_s=10, webhook_retry_window_s=3600)
    assert next_attempt_at(s, now(), 1, lambda: 1.0) is not None
    assert next_attempt_at(s, now() - timedelta(seconds=3595), 1, lambda: 1.0) is None


def _job(status: JobStatus, step: int = 0) -> JobRecord:
    job = JobRecord(id="j", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=status)
    job.progress = Progress(step=step, total=4)
    return job


@pytest.mark.parametrize(
    ("after", "before", "step", "event"),
    [
        (JobStatus.RUNNING, JobStatus.QUEUED, 0, "started"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 2, "progress"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 0, None),  # a takeover by another worker
        (JobStatus.SUCCEEDED, JobStatus.RUNNING, 4, "completed"),
        (JobStatus.FAILED, JobStatus.RUNNING, 1, "completed"),
        (JobStatus.CANCELED, JobStatus.QUEUED, 0, "completed"),
        (JobStatus.EXPIRED, JobStatus.QUEUED, 0, "completed"),
    ],
)
def test_events_from_state_changes(after: JobStatus, before: JobStatus, step: int, event: str | None) -> None:
    assert event_for(_job(after, step), before) == event


def test_delivery_worker_never_imports_torch() -> None:
    code = (
        "import sys, shared.webhooks.delivery; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "address", ["64:ff9b:1::7f00:1", "::7f00:1", "::ffff:0:7f00:1", "fec0::1", "fc00::1", "ff02::1"]
)
def test_embedded_and_non_unicast_ipv6_forms_are_refused(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "url", ["https://example.com/é", "https://example.com/a b", "https://example.com/\x00"]
)
def test_urls_needing_encoding_are_refused_at_submission(url: str) -> None:
    with pytest.raises(UnsafeURL, match="percent-encode"):
        check_url(url)


def test_a_passing_dns_failure_at_delivery_is_retried() -> None:
    out = _post("http://no-such-host.invalid/", resolver=fake_resolver({}))
    assert out.status_code is None and out.retryable and "does not resolve" in (out.error or "")
