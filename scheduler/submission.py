"""Accepting one job: check its webhook URL and deadlines, route it to a pool, record it, put its id on
the pool's queue. Shared by single submissions and batches.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

from celery import Celery

from scheduler.routing import Signals, choose_pool, routing_signals
from shared.broker import GenerateMessage, enqueue
from shared.errors import ErrorCode, InvalidInput, Unavailable
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest
from shared.settings import PoolConfig, Settings
from shared.states import JobStatus
from shared.webhooks.urlsafety import UnsafeURL, check_url


def check_request(body: InferenceRequest, settings: Settings) -> None:
    """The rules that depend on this deployment's settings, not only on the request."""
    if body.webhook_url is not None:
        try:
            check_url(body.webhook_url, settings.webhook_allowed_networks)
        except UnsafeURL as exc:
            raise InvalidInput(f"webhook_url: {exc.rule}", field="webhook_url") from exc
    if body.timeout_s is not None and not settings.within_visibility_timeout(body.timeout_s):
        raise InvalidInput(
            f"timeout_s: must be below {settings.visibility_timeout_s}s, the queue's visibility timeout "
            "(REELFORGE_VISIBILITY_TIMEOUT_S)",
            field="timeout_s",
        )


def route(
    store: JobStore, settings: Settings, body: InferenceRequest, cache: dict[str, Signals] | None = None
) -> PoolConfig:
    """The pool for this request; `cache` keeps the routing signals per version across a batch's lines."""
    cache = {} if cache is None else cache
    if body.model_version not in cache:
        cache[body.model_version] = routing_signals(store.fleet, settings.pools, body.model_version)
    warm, measured = cache[body.model_version]
    return choose_pool(settings.pools, body.model_version, body.gpu_type, body.region, warm, measured)


def plan_job(
    store: JobStore,
    settings: Settings,
    owner: str,
    body: InferenceRequest,
    batch_id: str | None = None,
    signals: dict[str, Signals] | None = None,
) -> JobRecord:
    """The job record for a request, routed to its pool; raises if a rule refuses it. Stores nothing."""
    check_request(body, settings)
    pool = route(store, settings, body, signals)
    created = now()
    return JobRecord(
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


def accept_job(store: JobStore, celery: Celery, job: JobRecord, keep_on_failure: bool = False) -> JobRecord:
    """Record the job and put its id on its pool's queue.

    The record is created unconfirmed; once the message is sent it is confirmed. If sending fails the
    caller gets 503 `unavailable` and the job either ends `failed`/`unavailable` now or, with
    `keep_on_failure` (a submission with an Idempotency-Key, whose retry returns this same job), stays
    queued: the sweeper sends the message of an unconfirmed job a few seconds later. Should ending it
    fail too (Redis itself is down), the sweeper does the same, so no accepted job is left unsent."""
    store.create(job)
    try:
        enqueue(celery, job.queue, GenerateMessage(job_id=job.id))
    except Exception as exc:
        if not keep_on_failure:
            with contextlib.suppress(Exception):
                store.end(
                    job.id,
                    JobStatus.FAILED,
                    ErrorCode.UNAVAILABLE,
                    f"could not enqueue on {job.queue}: {exc}",
                )
        raise Unavailable(f"the job queue is unreachable: {exc}") from exc
    store.confirm_sent(job.id)
    return job


def resend_unconfirmed(store: JobStore, celery: Celery, older_than_s: float) -> list[str]:
    """Send the queue message of every queued job whose sending was never confirmed (the sweeper).
    A second message for a job is harmless: the task id is the job id and moves are guarded."""
    sent = []
    for job_id in store.unconfirmed(older_than_s):
        job = store.get(job_id)
        if job is not None and job.status == JobStatus.QUEUED:
            enqueue(celery, job.queue, GenerateMessage(job_id=job.id))
            sent.append(job_id)
        store.confirm_sent(job_id)
    return sent
