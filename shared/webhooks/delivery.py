"""The webhook delivery worker: a light Celery worker on its own queue; it never imports torch.

    python -m celery -A shared.webhooks.delivery worker -Q reelforge.webhooks -P threads -c 8

Each task makes one attempt of one delivery. Retries are not Celery countdowns (those outlive the
broker's visibility timeout and come back twice): a failed attempt puts the delivery in a Redis
sorted set by due time, and a poller thread here sends the next attempt when it comes due. The
attempt number travels with the task, so a duplicate task finds its attempt already made and stops.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown

from shared.broker import make_celery
from shared.jobs import now
from shared.schemas import WebhookAttempt
from shared.settings import Settings, get_settings
from shared.storage import make_storage
from shared.views import resign_links
from shared.webhooks.events import (
    DELIVER_TASK,
    WEBHOOK_QUEUE,
    DeliveryStore,
    SecretStore,
    lease_s,
    next_attempt_at,
    signed_headers,
)
from shared.webhooks.urlsafety import Resolver, Unresolved, UnsafeURL, resolve_checked, split_url

log = logging.getLogger(__name__)
settings = get_settings()
app = make_celery(settings)
READY_PREFIX = "rf:webhooks:consumer:"
"""`<prefix><worker name>` exists while a delivery worker's poller runs."""


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
    """Connects only to addresses that passed the URL check, resolved once (no DNS rebinding)."""

    def __init__(self, allowed: Any, resolver: Resolver) -> None:
        self.allowed = allowed
        self.resolver = resolver

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        last: OSError | None = None
        for family, socktype, proto, _, sockaddr in resolve_checked(host, port, self.allowed, self.resolver):
            sock = socket.socket(family, socktype, proto)
            try:
                sock.settimeout(timeout)
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
        scheme, host, port, path = split_url(url)
    except UnsafeURL as exc:
        return Outcome(None, f"refused: {exc.rule}", retryable=False)
    guard = _Guarded(allowed, resolver)
    conn: http.client.HTTPConnection
    if scheme == "https":
        tls = ssl.create_default_context()
        conn = _HTTPSConnection(host, port, timeout=timeout_s, context=tls)
        conn.guard, conn.tls = guard, tls
    else:
        conn = _HTTPConnection(host, port, timeout=timeout_s)
        conn.guard = guard
    # A receiver trickling bytes resets the socket timeout on each one: cut the whole exchange here.
    cut = threading.Event()
    timer = threading.Timer(timeout_s, _abort, args=(conn, cut))
    timer.daemon = True
    timer.start()
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={**headers, "content-type": "application/json", "user-agent": "ReelForge-Webhooks/1"},
        )
        resp = conn.getresponse()
        received = 0
        while received < max_response_bytes:
            chunk = resp.read(min(max_response_bytes - received, 16 * 1024))
            if not chunk:
                break
            received += len(chunk)
        status, location = resp.status, resp.getheader("location")
        retry_after = parse_retry_after(resp.getheader("retry-after"))
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
    if 200 <= status < 300:
        return Outcome(status, None, retryable=False)
    if 300 <= status < 400:
        return Outcome(status, f"redirect to {(location or '?')[:200]} not followed", retryable=False)
    return Outcome(
        status, f"HTTP {status}", retryable=status == 429 or status >= 500, retry_after_s=retry_after
    )


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


class Deliverer:
    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.r = client or redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.deliveries = DeliveryStore(self.r, settings.job_ttl_s)
        self.secrets = SecretStore(self.r, settings.webhook_secret_overlap_s)
        self.rand = random.random
        self.storage = make_storage(settings)

    def fresh_body(self, body: str) -> bytes:
        """The event as recorded, with its video links signed again: a retry hours later must not
        hand out a link that has expired. Everything else stays as it was at the event."""
        event = json.loads(body)
        if isinstance(event.get("data"), dict):
            event["data"] = resign_links(event["data"], self.storage)
        return json.dumps(event, separators=(",", ":")).encode()

    def attempt(self, job_id: str, delivery_id: str, attempt: int) -> None:
        """Make attempt number `attempt` of a delivery, unless it was made or the delivery ended."""
        lock = f"rf:whlock:{delivery_id}"
        if not self.r.set(lock, "1", nx=True, px=int(lease_s(self.settings) * 1000)):
            return  # another thread or worker is making an attempt of it now
        try:
            d = self.deliveries.get(job_id, delivery_id)
            if d is None or d.status != "pending":
                self.deliveries.forget_due(job_id, delivery_id)
                return
            if len(d.attempts) != attempt - 1:
                return  # a duplicate task: this attempt was made already
            body = self.fresh_body(d.body)
            headers = signed_headers(self.secrets.signing_secrets(d.owner), d.id, int(time.time()), body)
            started_at, t0 = now(), time.perf_counter()
            outcome = post(
                d.url,
                body,
                headers,
                allowed=self.settings.webhook_allowed_networks,
                timeout_s=self.settings.webhook_timeout_s,
                max_response_bytes=self.settings.webhook_max_response_bytes,
            )
            latency_ms = round((time.perf_counter() - t0) * 1000, 1)
            d.attempts.append(
                WebhookAttempt(
                    at=started_at, status_code=outcome.status_code, latency_ms=latency_ms, error=outcome.error
                )
            )
            due: float | None = None
            d.next_attempt_at = None
            if outcome.ok:
                d.status = "succeeded"
            elif outcome.retryable and (
                at := next_attempt_at(self.settings, d.created_at, attempt, self.rand, outcome.retry_after_s)
            ):
                d.next_attempt_at = at
                due = at.timestamp()
            else:
                d.status = "failed"
            self.deliveries.save(d, due)
            log.info(
                "webhook %s %s attempt %d: %s %s",
                d.id, d.type, attempt, outcome.status_code, outcome.error or "ok",
            )  # fmt: skip
        finally:
            self.r.delete(lock)

    def send_due(self) -> int:
        """Send the next attempt of every delivery that came due; the count sent."""
        sent = 0
        for job_id, delivery_id in self.deliveries.claim_due(lease_s(self.settings)):
            d = self.deliveries.get(job_id, delivery_id)
            if d is None or d.status != "pending":
                self.deliveries.forget_due(job_id, delivery_id)
                continue
            app.send_task(
                DELIVER_TASK,
                kwargs={"job_id": job_id, "delivery_id": delivery_id, "attempt": len(d.attempts) + 1},
                queue=WEBHOOK_QUEUE,
            )
            sent += 1
        return sent


_deliverer: Deliverer | None = None
_deliverer_lock = threading.Lock()
_stop = threading.Event()


def deliverer() -> Deliverer:
    global _deliverer
    with _deliverer_lock:
        if _deliverer is None:
            _deliverer = Deliverer(settings)
        return _deliverer


# Ack on receipt: the due set, not the broker, brings back an attempt that was lost.
@app.task(name=DELIVER_TASK, acks_late=False)
def deliver(job_id: str, delivery_id: str, attempt: int) -> None:
    deliverer().attempt(job_id, delivery_id, attempt)


def _poll(name: str) -> None:
    d = deliverer()
    interval = settings.webhook_poll_interval_s
    while not _stop.is_set():
        try:
            d.r.set(READY_PREFIX + name, "1", px=int(max(interval * 3, 5) * 1000))
            d.send_due()
        except Exception:
            log.exception("webhook poller failed")
        _stop.wait(interval)
    d.r.delete(READY_PREFIX + name)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    threading.Thread(target=_poll, args=(sender.hostname,), name="webhook-poller", daemon=True).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop.set()
