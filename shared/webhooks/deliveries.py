"""Webhook deliveries in Redis: one hash per job, one field per delivery, and the due set of retries.

Kept apart from the job record so recording an attempt never touches the job's own record. Each delivery
moves `pending -> succeeded | failed` (checked by `shared.states`); retries wait in the due set, not
in Celery countdowns, which the broker would redeliver past its visibility timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
from pydantic import BaseModel

from shared import keys
from shared.backoff import backoff_s
from shared.jobs import JobRecord, now
from shared.schemas import WebhookDelivery
from shared.settings import Settings
from shared.states import DELIVERY_MOVES, DeliveryStatus, check_move


class DeliverMessage(BaseModel):
    """Body of a `reelforge.webhook.deliver` task: make attempt number `attempt` of one delivery."""

    job_id: str
    delivery_id: str
    attempt: int


class StoredDelivery(WebhookDelivery):
    job_id: str
    owner: str
    body: str
    """The exact payload, frozen at the event: every attempt sends the same id and body."""

    def move(self, to: DeliveryStatus) -> None:
        self.status = check_move(DELIVERY_MOVES, self.status, to, f"webhook delivery {self.id}")

    def public(self) -> WebhookDelivery:
        return WebhookDelivery.model_validate(self.model_dump(include=set(WebhookDelivery.model_fields)))


_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


_ADD_ONCE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""


class DeliveryStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    def add_once(self, delivery: StoredDelivery, due_at: float) -> bool:
        """Store a new delivery, due at `due_at`, in one step; False (and nothing changed) when a
        delivery with its id exists already."""
        key = keys.webhook_deliveries(delivery.job_id)
        member = f"{delivery.job_id}:{delivery.id}"
        args = (delivery.id, delivery.model_dump_json(), self.ttl_s, due_at, member)
        return bool(self.r.eval(_ADD_ONCE, 2, key, keys.WEBHOOKS_DUE, *args))

    def get(self, job_id: str, delivery_id: str) -> StoredDelivery | None:
        raw = self.r.hget(keys.webhook_deliveries(job_id), delivery_id)
        return StoredDelivery.model_validate_json(raw) if raw else None

    def save(self, delivery: StoredDelivery, due_at: float | None) -> None:
        """Store the delivery; due again at `due_at`, or never (it succeeded or gave up)."""
        member = f"{delivery.job_id}:{delivery.id}"
        with self.r.pipeline() as p:
            p.hset(keys.webhook_deliveries(delivery.job_id), delivery.id, delivery.model_dump_json())
            if due_at is None:
                p.zrem(keys.WEBHOOKS_DUE, member)
            else:
                p.zadd(keys.WEBHOOKS_DUE, {member: due_at})
            p.execute()

    def for_job(self, job_id: str) -> list[WebhookDelivery]:
        raw: dict[str, str] = self.r.hgetall(keys.webhook_deliveries(job_id))  # type: ignore[assignment]
        found = [StoredDelivery.model_validate_json(v).public() for v in raw.values()]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    def claim_due(self, lease_s: float, limit: int = 100) -> list[tuple[str, str]]:
        """Due (job id, delivery id) pairs, pushed `lease_s` into the future so that another poller
        does not take them too; an attempt that never runs comes due again after the lease."""
        t = time.time()
        members = self.r.eval(_CLAIM, 1, keys.WEBHOOKS_DUE, t, t + lease_s, limit)
        pairs = []
        for m in members or []:
            job_id, _, delivery_id = str(m).partition(":")
            pairs.append((job_id, delivery_id))
        return pairs

    def forget_due(self, job_id: str, delivery_id: str) -> None:
        self.r.zrem(keys.WEBHOOKS_DUE, f"{job_id}:{delivery_id}")


def job_deliveries(client: redis.Redis, job: JobRecord) -> list[WebhookDelivery]:
    """The job's webhook deliveries, oldest first (none when it has no `webhook_url`)."""
    if not job.request.get("webhook_url"):
        return []
    return DeliveryStore(client, 0).for_job(job.id)


def lease_s(settings: Settings) -> float:
    """How long a claimed attempt may take before it is considered lost and sent again."""
    return 3 * settings.webhook_timeout_s + 30


def retry_delay(settings: Settings, attempts_made: int, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, scaled by a random 0.5..1."""
    return backoff_s(attempts_made, settings.webhook_retry_base_s, settings.webhook_retry_max_delay_s, rand())


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
