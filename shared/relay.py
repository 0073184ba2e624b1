"""The relay: carries out the outbox (`shared.outbox`), once per entry id, from the delivery worker.

Entries are read through a Redis consumer group: an entry is acknowledged only after its effect is
stored, and one whose reader died is claimed again after `CLAIM_IDLE_MS`. Effects are idempotent by
entry id: a webhook entry becomes a delivery whose id (the `webhook-id` receivers deduplicate on) is
derived from the entry id and stored with HSETNX; a batch entry marks the job ended (a set) and writes
the manifest under its claim.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import redis
from celery import Celery

from shared import keys
from shared.batchstore import BatchTracker
from shared.jobs import JobRecord
from shared.outbox import OutboxEntry
from shared.schemas import WebhookEvent
from shared.settings import Settings
from shared.storage import Storage
from shared.webhooks.deliveries import DeliverMessage, DeliveryStore, lease_s
from shared.webhooks.events import job_data, new_delivery, send_attempt

log = logging.getLogger(__name__)
CLAIM_IDLE_MS = 30_000
"""An entry read but not acknowledged for this long (its reader died) is read again by another."""


def delivery_id(entry_id: str) -> str:
    return "msg_" + hashlib.sha256(entry_id.encode()).hexdigest()[:32]


class Relay:
    def __init__(self, client: redis.Redis, settings: Settings, storage: Storage, celery: Celery) -> None:
        self.r = client
        self.settings = settings
        self.storage = storage
        self.celery = celery
        self.deliveries = DeliveryStore(client, settings.job_ttl_s)
        self.batches = BatchTracker(client, settings.job_ttl_s, storage)
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.r.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def run_once(self, consumer: str, block_ms: int = 0) -> int:
        """Carry out the entries waiting (and those a dead reader left); how many were carried out."""
        self._ensure_group()
        try:
            return self._read_and_carry_out(consumer, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted (a flushed Redis): make it again
            return 0

    def _read_and_carry_out(self, consumer: str, block_ms: int) -> int:
        claimed: Any = self.r.xautoclaim(
            keys.OUTBOX, keys.OUTBOX_GROUP, consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=100
        )
        batches: Any = self.r.xreadgroup(
            keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"}, count=100, block=block_ms or None
        )
        messages = list(claimed[1]) + [m for _, ms in batches or [] for m in ms]
        for message_id, fields in messages:
            if fields:  # a claimed entry deleted meanwhile comes back empty
                self.carry_out(OutboxEntry.model_validate_json(fields["entry"]))
            with self.r.pipeline() as p:
                p.xack(keys.OUTBOX, keys.OUTBOX_GROUP, message_id)
                p.xdel(keys.OUTBOX, message_id)
                p.execute()
        return len(messages)

    def carry_out(self, entry: OutboxEntry) -> None:
        """The entry's effect; doing it again changes nothing."""
        job = JobRecord.model_validate_json(entry.record)
        if entry.kind == "batch":
            self.batches.job_ended(job)
        elif entry.event is not None:
            self._webhook(entry, job, entry.event)

    def _webhook(self, entry: OutboxEntry, job: JobRecord, event: WebhookEvent) -> None:
        if event == WebhookEvent.PROGRESS and not self._progress_allowed(job):
            return
        delivery = new_delivery(job, event, job_data(job, self.settings, self.storage))
        delivery.id = delivery_id(entry.id)
        # Due again after a lease in case this first attempt is lost; the attempt reschedules it.
        if self.deliveries.add_once(delivery, due_at=time.time() + lease_s(self.settings)):
            send_attempt(self.celery, DeliverMessage(job_id=job.id, delivery_id=delivery.id, attempt=1))

    def _progress_allowed(self, job: JobRecord) -> bool:
        """At most one `progress` event per job per `webhook_progress_interval_s`."""
        interval_ms = int(self.settings.webhook_progress_interval_s * 1000)
        if interval_ms <= 0:
            return True
        return bool(self.r.set(keys.webhook_progress_gate(job.id), "1", px=interval_ms, nx=True))
