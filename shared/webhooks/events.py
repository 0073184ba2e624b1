"""Signed job webhooks (Standard Webhooks): signing, per-key secrets, URL safety, delivery records,
and the job listener that turns state changes into queued deliveries.

The listener only records and enqueues; the HTTP requests are made by the light delivery worker
(`shared.webhooks.delivery`) from its own queue, so a slow receiver never holds a GPU worker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis
from celery import Celery

from shared.jobs import JobRecord, JobState, now
from shared.schemas import WebhookDelivery, WebhookSecret
from shared.settings import Settings
from shared.storage import Storage, make_storage
from shared.views import render_job

log = logging.getLogger(__name__)

WEBHOOK_QUEUE = "reelforge.webhooks"
DELIVER_TASK = "reelforge.webhook.deliver"
SECRET_PREFIX = "whsec_"
EVENT_TYPES = {"started": "job.started", "progress": "job.progress", "completed": "job.completed"}


# Signing (https://www.standardwebhooks.com).


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the base64 part after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; one space-separated signature per active secret."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }


class SecretStore:
    """One signing secret per API key (its owner fingerprint); a rotation keeps the previous one
    signing too until its overlap ends, so receivers can switch without dropping events."""

    def __init__(self, client: redis.Redis, overlap_s: float) -> None:
        self.r = client
        self.overlap_s = overlap_s

    @staticmethod
    def _key(owner: str) -> str:
        return f"rf:whsec:{owner}"

    def current(self, owner: str) -> WebhookSecret:
        key = self._key(owner)
        if self.r.hsetnx(key, "current", new_secret()):
            self.r.hset(key, "created_at", now().isoformat())
        return self._view(self.r.hgetall(key))  # type: ignore[arg-type]

    def rotate(self, owner: str, overlap_s: float | None = None) -> WebhookSecret:
        self.current(owner)
        key = self._key(owner)
        overlap = self.overlap_s if overlap_s is None else overlap_s
        fresh = new_secret()

        def txn(p: Any) -> None:
            old = p.hget(key, "current")
            p.multi()
            p.hset(key, mapping={"current": fresh, "created_at": now().isoformat()})
            if overlap > 0 and old:
                until = now() + timedelta(seconds=overlap)
                p.hset(key, mapping={"previous": old, "previous_expires_at": until.isoformat()})
            else:
                p.hdel(key, "previous", "previous_expires_at")

        self.r.transaction(txn, key)
        return self._view(self.r.hgetall(key))  # type: ignore[arg-type]

    def signing_secrets(self, owner: str) -> list[str]:
        """The secrets that sign now: the current one, then the previous one during its overlap."""
        self.current(owner)
        data: dict[str, str] = self.r.hgetall(self._key(owner))  # type: ignore[assignment]
        active = [data["current"]]
        if data.get("previous") and _previous_active(data):
            active.append(data["previous"])
        return active

    @staticmethod
    def _view(data: dict[str, str]) -> WebhookSecret:
        return WebhookSecret(
            secret=data["current"],
            created_at=datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None,
            previous_expires_at=(
                datetime.fromisoformat(data["previous_expires_at"]) if _previous_active(data) else None
            ),
        )


def _previous_active(data: dict[str, str]) -> bool:
    until = data.get("previous_expires_at")
    return bool(until) and now() < datetime.fromisoformat(str(until))


# Delivery records: one Redis hash per job (`rf:webhooks:<job id>`), one field per delivery.
# Kept apart from the job record so recording an attempt never re-triggers job listeners.


class StoredDelivery(WebhookDelivery):
    job_id: str
    owner: str
    body: str
    """The exact payload, frozen at the event: every attempt sends the same id and body."""

    def public(self) -> WebhookDelivery:
        return WebhookDelivery.model_validate(self.model_dump(include=set(WebhookDelivery.model_fields)))


def deliveries_key(job_id: str) -> str:
    return f"rf:webhooks:{job_id}"


DUE_KEY = "rf:webhooks:due"
"""Sorted set of `<job id>:<delivery id>` by the time its next attempt is due."""

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


class DeliveryStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    def add(self, delivery: StoredDelivery, due_at: float) -> None:
        key = deliveries_key(delivery.job_id)
        with self.r.pipeline() as p:
            p.hset(key, delivery.id, delivery.model_dump_json())
            p.expire(key, self.ttl_s)
            p.zadd(DUE_KEY, {f"{delivery.job_id}:{delivery.id}": due_at})
            p.execute()

    def get(self, job_id: str, delivery_id: str) -> StoredDelivery | None:
        raw = self.r.hget(deliveries_key(job_id), delivery_id)
        return StoredDelivery.model_validate_json(raw) if raw else None

    def save(self, delivery: StoredDelivery, due_at: float | None) -> None:
        """Store the delivery; due again at `due_at`, or never (it succeeded or gave up)."""
        member = f"{delivery.job_id}:{delivery.id}"
        with self.r.pipeline() as p:
            p.hset(deliveries_key(delivery.job_id), delivery.id, delivery.model_dump_json())
            if due_at is None:
                p.zrem(DUE_KEY, member)
            else:
                p.zadd(DUE_KEY, {member: due_at})
            p.execute()

    def for_job(self, job_id: str) -> list[WebhookDelivery]:
        raw: dict[str, str] = self.r.hgetall(deliveries_key(job_id))  # type: ignore[assignment]
        found = [StoredDelivery.model_validate_json(v).public() for v in raw.values()]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    def claim_due(self, lease_s: float, limit: int = 100) -> list[tuple[str, str]]:
        """Due (job id, delivery id) pairs, pushed `lease_s` into the future so that another poller
        does not take them too; an attempt that never runs comes due again after the lease."""
        t = time.time()
        members = self.r.eval(_CLAIM, 1, DUE_KEY, t, t + lease_s, limit)
        pairs = []
        for m in members or []:
            job_id, _, delivery_id = str(m).partition(":")
            pairs.append((job_id, delivery_id))
        return pairs

    def forget_due(self, job_id: str, delivery_id: str) -> None:
        self.r.zrem(DUE_KEY, f"{job_id}:{delivery_id}")


def job_deliveries(client: redis.Redis, job: JobRecord) -> list[WebhookDelivery]:
    """The job's webhook deliveries, oldest first (none when it has no `webhook_url`)."""
    if not job.request.get("webhook_url"):
        return []
    return DeliveryStore(client, 0).for_job(job.id)


def lease_s(settings: Settings) -> float:
    """How long a claimed attempt may take before it is considered lost and sent again."""
    return 3 * settings.webhook_timeout_s + 30


# Events.

EventName = Literal["started", "progress", "completed"]


def event_for(job: JobRecord, before: JobState) -> EventName | None:
    """The event a committed change makes, if any."""
    if job.status.terminal and not before.terminal:
        return "completed"
    if job.status == JobState.RUNNING and before != JobState.RUNNING:
        return "started"
    if job.status == JobState.RUNNING and before == JobState.RUNNING and job.progress and job.progress.step:
        # A takeover by another worker is RUNNING -> RUNNING too, with its progress reset to 0.
        return "progress"
    return None


def job_data(job: JobRecord, settings: Settings, storage: Storage) -> dict[str, Any]:
    """The job as `GET /v1/jobs/{id}` shows it, with freshly signed links."""
    return render_job(job, settings, storage).model_dump(mode="json", exclude={"webhooks"})


def make_emitter(
    celery_app: Celery,
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    storage: Storage | None = None,
) -> Callable[[JobRecord, JobState], None]:
    """A JobStore listener: records each wanted event as a delivery and enqueues its first attempt
    on the webhooks queue. It never makes an HTTP request."""
    r = client or redis.Redis.from_url(settings.redis_url, decode_responses=True)
    deliveries = DeliveryStore(r, settings.job_ttl_s)
    held: dict[str, Storage] = {}

    def emit(job: JobRecord, before: JobState) -> None:
        url = job.request.get("webhook_url")
        if not url:
            return
        event = event_for(job, before)
        wanted = job.request.get("webhook_events_filter") or ["completed"]
        if event is None or event not in wanted:  # type: ignore[operator]
            return
        if event == "progress":
            interval_ms = int(settings.webhook_progress_interval_s * 1000)
            if interval_ms > 0 and not r.set(f"rf:whprogress:{job.id}", "1", px=interval_ms, nx=True):
                return  # at most one progress event per interval per job
        if "storage" not in held:
            held["storage"] = storage or make_storage(settings)
        created = now()
        body = {
            "type": EVENT_TYPES[event],
            "timestamp": created.isoformat().replace("+00:00", "Z"),
            "data": job_data(job, settings, held["storage"]),
        }
        delivery = StoredDelivery(
            id=f"msg_{uuid.uuid4().hex}",
            type=EVENT_TYPES[event],
            url=str(url),
            status="pending",
            created_at=created,
            job_id=job.id,
            owner=job.owner,
            body=json.dumps(body, separators=(",", ":")),
        )
        # Due again after a lease in case this first attempt is lost; the attempt reschedules it.
        deliveries.add(delivery, due_at=time.time() + lease_s(settings))
        celery_app.send_task(
            DELIVER_TASK,
            kwargs={"job_id": job.id, "delivery_id": delivery.id, "attempt": 1},
            queue=WEBHOOK_QUEUE,
        )

    return emit


def retry_delay(settings: Settings, attempts_made: int, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, scaled by a random 0.5..1."""
    raw = settings.webhook_retry_base_s * (2 ** max(attempts_made - 1, 0))
    return min(settings.webhook_retry_max_delay_s, raw) * (0.5 + rand() / 2)


def next_attempt_at(
    settings: Settings,
    created_at: datetime,
    attempts_made: int,
    rand: Callable[[], float],
    retry_after_s: float | None = None,
) -> datetime | None:
    """When to try again, or None when that would fall past the retry window. A receiver's
    `Retry-After` is honoured when longer than the backoff, up to the longest backoff step."""
    delay = retry_delay(settings, attempts_made, rand)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, settings.webhook_retry_max_delay_s))
    at = now() + timedelta(seconds=delay)
    if at > created_at.astimezone(UTC) + timedelta(seconds=settings.webhook_retry_window_s):
        return None
    return at
