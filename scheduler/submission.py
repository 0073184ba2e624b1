"""Accepting one job: route it to a pool, record it, put its id on the pool's queue.

Shared by single submissions and batches.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import FastAPI

from scheduler.routing import choose_pool
from scheduler.runtime import routing_signals
from shared.broker import GenerateMessage, enqueue
from shared.errors import Unavailable
from shared.jobs import JobRecord, JobState, now
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest


def create_job(app: FastAPI, owner: str, body: InferenceRequest, batch_id: str | None = None) -> JobRecord:
    settings = app.state.settings
    store: JobStore = app.state.store
    warm, measured = routing_signals(store.fleet, settings.pools, body.model_version)
    pool = choose_pool(settings.pools, body.model_version, body.gpu_type, body.region, warm, measured)
    created = now()
    job = JobRecord(
        id=uuid.uuid4().hex,
        owner=owner,
        request=body.model_dump(),
        gpu_type=pool.gpu_type,
        region=pool.region,
        queue=pool.queue,
        batch_id=batch_id,
        created_at=created,
        start_deadline_at=created + timedelta(seconds=body.start_deadline_s or settings.start_deadline_s),
        timeout_s=body.timeout_s or settings.execution_timeout_s,
    )
    store.create(job)
    try:
        enqueue(app.state.celery, pool.queue, GenerateMessage(job_id=job.id))
    except Exception as exc:
        # Accepted jobs always end in a terminal state with their reason.
        store.end(job.id, JobState.FAILED, "unavailable", f"could not enqueue on {pool.queue}: {exc}")
        raise Unavailable(f"the job queue is unreachable: {exc}") from exc
    return job
