"""Accepting one job: route it to a pool, record it, put its id on the pool's queue.

Shared by single submissions and batches.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import FastAPI

from scheduler.api.models import routing_signals
from scheduler.routing import choose_pool
from shared.broker import GenerateMessage, enqueue
from shared.errors import ErrorCode, InvalidInput, Unavailable
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest
from shared.states import JobStatus
from shared.webhooks.urlsafety import UnsafeURL, check_url


def create_job(app: FastAPI, owner: str, body: InferenceRequest, batch_id: str | None = None) -> JobRecord:
    return accept_job(app, plan_job(app, owner, body, batch_id))


Signals = dict[str, tuple[set[str], dict[str, float]]]


def plan_job(
    app: FastAPI,
    owner: str,
    body: InferenceRequest,
    batch_id: str | None = None,
    signals: Signals | None = None,
) -> JobRecord:
    """The job record for a request, routed to its pool; raises if no pool serves it. Stores nothing.

    `signals` caches the routing signals per model version across the lines of a batch."""
    settings = app.state.settings
    store: JobStore = app.state.store
    if body.webhook_url is not None:
        try:
            check_url(body.webhook_url, settings.webhook_allowed_networks)
        except UnsafeURL as exc:
            raise InvalidInput(f"webhook_url: {exc.rule}", field="webhook_url") from exc
    timeout_s = body.timeout_s or settings.execution_timeout_s
    if body.timeout_s is not None and body.timeout_s >= settings.visibility_timeout_s:
        # A task still running when its visibility timeout lapses is handed out again.
        raise InvalidInput(
            f"timeout_s: must be below {settings.visibility_timeout_s}s, the queue's visibility timeout "
            "(REELFORGE_VISIBILITY_TIMEOUT_S)",
            field="timeout_s",
        )
    cache: Signals = {} if signals is None else signals
    if body.model_version not in cache:
        cache[body.model_version] = routing_signals(store.fleet, settings.pools, body.model_version)
    warm, measured = cache[body.model_version]
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
        timeout_s=timeout_s,
    )
    return job


def accept_job(app: FastAPI, job: JobRecord) -> JobRecord:
    """Record the job and put its id on its pool's queue."""
    store: JobStore = app.state.store
    pool_queue = job.queue
    store.create(job)
    try:
        enqueue(app.state.celery, pool_queue, GenerateMessage(job_id=job.id))
    except Exception as exc:
        # Accepted jobs always end in a terminal state with their reason.
        store.end(
            job.id, JobStatus.FAILED, ErrorCode.UNAVAILABLE, f"could not enqueue on {pool_queue}: {exc}"
        )
        raise Unavailable(f"the job queue is unreachable: {exc}") from exc
    return job
