"""The Celery app both sides share, and the typed message that crosses the queue.

Only ids cross the queue; the job record in Redis holds the request, and storage holds the video.
"""

from __future__ import annotations

from celery import Celery
from pydantic import BaseModel

from shared.keys import GENERATE_TASK, WARMUP_TASK
from shared.settings import Settings


class GenerateMessage(BaseModel):
    """Body of a `reelforge.generate` task."""

    job_id: str


class WarmupMessage(BaseModel):
    """Body of a `reelforge.warmup` task: load this version and stay warm (a prewarm)."""

    model_version: str


def make_celery(settings: Settings) -> Celery:
    app = Celery("reelforge", broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # A worker killed mid-job must not lose it: ack only after the task ends, re-queue on worker loss.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # With acks_late on Redis the QoS prefetch count drifts upward (ETA retries raise it), so a
        # worker could hold waiting tasks that the queue's length, which KEDA scales on, no longer
        # shows. This caps what a worker holds at its concurrency: a solo GPU worker, the task it runs.
        worker_disable_prefetch=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep for tasks of dead workers every `restore_interval_s` (one Redis scan per sweep).
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        # Events feed Flower's task view.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return app


def enqueue(app: Celery, queue: str, message: GenerateMessage) -> None:
    app.send_task(GENERATE_TASK, kwargs=message.model_dump(), queue=queue, task_id=message.job_id)


def enqueue_warmup(app: Celery, queue: str, message: WarmupMessage) -> None:
    # A prewarm is queued work like any job, so whatever brings workers back for jobs brings one back
    # for it too (the embedded supervisor, KEDA's list-length trigger).
    app.send_task(WARMUP_TASK, kwargs=message.model_dump(), queue=queue)


def broker_queue_length(app: Celery, queue: str) -> int:
    """Messages waiting in a pool's broker queue (not counting those a worker holds)."""
    with app.connection_for_read() as conn:
        return int(conn.default_channel.client.llen(queue))


def restore_unacked(app: Celery) -> None:
    """Put back tasks of dead workers whose visibility timeout passed. Workers sweep for this too;
    the API does it as well so a pool with no worker left still gets its task back on the queue."""
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        channel.qos.restore_visible(num=100)
