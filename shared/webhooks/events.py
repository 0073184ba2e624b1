"""Job events as webhook deliveries: the payload (the job as `GET /v1/jobs/{id}` shows it), the
delivery record, and the task that makes an attempt.

Which moves make an event is decided in the move's transaction (`shared.outbox`); the relay turns
each into a delivery here, and the delivery worker (`shared.webhooks.delivery`) makes the requests
from its own queue, so a slow receiver never holds a GPU worker.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery import Celery

from shared import keys
from shared.jobs import JobRecord, now
from shared.schemas import WebhookEvent
from shared.settings import Settings
from shared.states import DeliveryStatus
from shared.storage import Storage
from shared.views import render_job
from shared.webhooks.deliveries import DeliverMessage, StoredDelivery


def job_data(job: JobRecord, settings: Settings, storage: Storage) -> dict[str, Any]:
    """The job as `GET /v1/jobs/{id}` shows it, with freshly signed links."""
    return render_job(job, settings, storage).model_dump(mode="json", exclude={"webhooks"})


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


def send_attempt(celery_app: Celery, message: DeliverMessage) -> None:
    celery_app.send_task(keys.DELIVER_TASK, kwargs=message.model_dump(), queue=keys.WEBHOOK_QUEUE)
