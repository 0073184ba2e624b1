"""Job events: the listener that turns a committed job change into a recorded, queued delivery.

The listener only records and enqueues; the HTTP requests are made by the delivery worker
(`shared.webhooks.delivery`) from its own queue, so a slow receiver never holds a GPU worker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from shared import keys
from shared.jobs import JobRecord, now
from shared.schemas import WebhookEvent
from shared.settings import Settings
from shared.states import DeliveryStatus, JobStatus
from shared.storage import Storage, make_storage
from shared.views import render_job
from shared.webhooks.deliveries import DeliverMessage, DeliveryStore, StoredDelivery, lease_s


def event_for(job: JobRecord, before: JobStatus) -> WebhookEvent | None:
    """The event a committed change makes, if any."""
    if job.status.terminal and not before.terminal:
        return WebhookEvent.COMPLETED
    if job.status == JobStatus.RUNNING and before != JobStatus.RUNNING:
        return WebhookEvent.STARTED
    if job.status == JobStatus.RUNNING and before == JobStatus.RUNNING and job.progress and job.progress.step:
        # A takeover by another worker is RUNNING -> RUNNING too, with its progress reset to 0.
        return WebhookEvent.PROGRESS
    return None


def job_data(job: JobRecord, settings: Settings, storage: Storage) -> dict[str, Any]:
    """The job as `GET /v1/jobs/{id}` shows it, with freshly signed links."""
    return render_job(job, settings, storage).model_dump(mode="json", exclude={"webhooks"})


def wanted_event(job: JobRecord, before: JobStatus) -> WebhookEvent | None:
    """The event this change makes, if the job has a webhook and its filter asks for it."""
    if not job.request.get("webhook_url"):
        return None
    event = event_for(job, before)
    wanted = job.request.get("webhook_events_filter") or [WebhookEvent.COMPLETED]
    return event if event is not None and event in wanted else None  # type: ignore[operator]


def new_delivery(job: JobRecord, event: WebhookEvent, data: dict[str, Any]) -> StoredDelivery:
    """A pending delivery with its payload frozen now: every attempt sends the same id and body."""
    created = now()
    body = {"type": event.type, "timestamp": created.isoformat().replace("+00:00", "Z"), "data": data}
    return StoredDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        type=event.type,
        url=str(job.request["webhook_url"]),
        status=DeliveryStatus.PENDING,
        created_at=created,
        job_id=job.id,
        owner=job.owner,
        body=json.dumps(body, separators=(",", ":")),
    )


def make_emitter(
    celery_app: Celery,
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    storage: Storage | None = None,
) -> Callable[[JobRecord, JobStatus], None]:
    """A JobStore listener: records each wanted event as a delivery and enqueues its first attempt
    on the webhooks queue. It never makes an HTTP request."""
    r = client or redis.Redis.from_url(settings.redis_url, decode_responses=True)
    deliveries = DeliveryStore(r, settings.job_ttl_s)
    held: dict[str, Storage] = {}
    progress_ms = int(settings.webhook_progress_interval_s * 1000)

    def emit(job: JobRecord, before: JobStatus) -> None:
        event = wanted_event(job, before)
        if event is None:
            return
        gated = event == WebhookEvent.PROGRESS and progress_ms > 0
        if gated and not r.set(keys.webhook_progress_gate(job.id), "1", px=progress_ms, nx=True):
            return  # at most one progress event per interval per job
        if "storage" not in held:
            held["storage"] = storage or make_storage(settings)
        delivery = new_delivery(job, event, job_data(job, settings, held["storage"]))
        # Due again after a lease in case this first attempt is lost; the attempt reschedules it.
        deliveries.add(delivery, due_at=time.time() + lease_s(settings))
        send_attempt(celery_app, DeliverMessage(job_id=job.id, delivery_id=delivery.id, attempt=1))

    return emit


def send_attempt(celery_app: Celery, message: DeliverMessage) -> None:
    celery_app.send_task(keys.DELIVER_TASK, kwargs=message.model_dump(), queue=keys.WEBHOOK_QUEUE)
