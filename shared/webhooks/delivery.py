"""The webhook delivery worker: a light Celery worker on its own queue; it never imports torch.

    python -m celery -A shared.webhooks.delivery worker -Q reelforge.webhooks -P threads -c 8

Each task makes one attempt of one delivery. Retries are not Celery countdowns (those outlive the
broker's visibility timeout and come back twice): a failed attempt puts the delivery in a Redis
sorted set by due time, and a poller thread here sends the next attempt when it comes due. The
attempt number travels with the task, so a duplicate task finds its attempt already made and stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown
from redis.exceptions import LockError

from shared import keys
from shared.broker import make_celery
from shared.jobs import now
from shared.metrics import count_delivery
from shared.relay import Relay
from shared.schemas import WebhookAttempt
from shared.settings import Settings, get_settings
from shared.states import DeliveryStatus
from shared.storage import make_storage
from shared.views import resign_links
from shared.webhooks.deliveries import DeliverMessage, DeliveryStore, StoredDelivery, lease_s, next_attempt_at
from shared.webhooks.events import send_attempt
from shared.webhooks.sender import Outcome, post
from shared.webhooks.signing import SecretStore, signed_headers

log = logging.getLogger(__name__)
settings = get_settings()
celery_app = make_celery(settings)


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

    def attempt(self, message: DeliverMessage) -> None:
        """Make attempt number `attempt` of a delivery, unless it was made or the delivery ended."""
        lock = self.r.lock(
            keys.webhook_attempt_lock(message.delivery_id), timeout=lease_s(self.settings), blocking=False
        )
        if not lock.acquire():
            return  # another thread or worker is making an attempt of it now
        try:
            d = self.deliveries.get(message.job_id, message.delivery_id)
            if d is None or d.status != DeliveryStatus.PENDING:
                self.deliveries.forget_due(message.job_id, message.delivery_id)
                return
            if len(d.attempts) != message.attempt - 1:
                return  # a duplicate task: this attempt was made already
            outcome = self._post(d)
            self.deliveries.save(d, self._record(d, outcome))
            log.info(
                "webhook %s %s attempt %d: %s %s",
                d.id, d.type, message.attempt, outcome.status_code, outcome.error or "ok",
            )  # fmt: skip
        finally:
            # Token-checked: a lock that lapsed and was taken by another attempt stays theirs.
            with contextlib.suppress(LockError):
                lock.release()

    def _post(self, d: StoredDelivery) -> Outcome:
        """One signed POST of the delivery, recorded in its attempts."""
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
        return outcome

    def _record(self, d: StoredDelivery, outcome: Outcome) -> float | None:
        """Move the delivery by the outcome; when its next attempt is due (None: no further attempt)."""
        due = self._move(d, outcome)
        count_delivery(self.r, d.status)
        return due

    def _move(self, d: StoredDelivery, outcome: Outcome) -> float | None:
        d.next_attempt_at = None
        if outcome.ok:
            d.move(DeliveryStatus.SUCCEEDED)
            return None
        at = None
        if outcome.retryable:
            at = next_attempt_at(
                self.settings, d.created_at, len(d.attempts), self.rand, outcome.retry_after_s
            )
        if at is None:
            d.move(DeliveryStatus.FAILED)
            return None
        d.next_attempt_at = at
        return at.timestamp()

    def send_due(self) -> int:
        """Send the next attempt of every delivery that came due; the count sent."""
        sent = 0
        for job_id, delivery_id in self.deliveries.claim_due(lease_s(self.settings)):
            d = self.deliveries.get(job_id, delivery_id)
            if d is None or d.status != DeliveryStatus.PENDING:
                self.deliveries.forget_due(job_id, delivery_id)
                continue
            attempt = len(d.attempts) + 1
            send_attempt(celery_app, DeliverMessage(job_id=job_id, delivery_id=delivery_id, attempt=attempt))
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
@celery_app.task(name=keys.DELIVER_TASK, acks_late=False)
def deliver(job_id: str, delivery_id: str, attempt: int) -> None:
    deliverer().attempt(DeliverMessage(job_id=job_id, delivery_id=delivery_id, attempt=attempt))


def _poll(name: str) -> None:
    """Relay what job moves owe (the outbox) and send the retries that came due, until shutdown."""
    d = deliverer()
    relay = Relay(d.r, settings, d.storage, celery_app)
    interval = settings.webhook_poll_interval_s
    while not _stop.is_set():
        try:
            lapses_ms = int((time.time() + max(interval * 3, 5)) * 1000)
            d.r.zadd(keys.WEBHOOK_CONSUMERS, {name: lapses_ms})
            relay.run_once(name, block_ms=int(interval * 1000))
            d.send_due()
        except Exception:
            log.exception("webhook poller failed")
            _stop.wait(interval)
    d.r.zrem(keys.WEBHOOK_CONSUMERS, name)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    threading.Thread(target=_poll, args=(sender.hostname,), name="webhook-poller", daemon=True).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop.set()
