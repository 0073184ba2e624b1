"""What the workers, the delivery worker and the API count for `GET /metrics`, kept in Redis.

Workers are short-lived, scale from zero and have no port a scraper could reach, so they do not
expose metrics themselves: each process adds its observations to a few Redis hashes (`shared.keys`
`METRICS_*`), and the API reads them back at scrape time (`scheduler.metrics`). A JobStore listener
records each job move once, in whichever process committed it. The figures are cluster-wide: every
API replica reports the same values, so aggregate them with `max`, not `sum`, or scrape one replica.
"""

from __future__ import annotations

from typing import Any

import redis

from shared import keys
from shared.jobs import JobRecord
from shared.jobstore import Listener
from shared.states import DeliveryStatus, JobStatus

DURATION_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Histogram bounds of job durations, from a tiny-random CPU job to a long GPU one."""
DURATION_PHASES = ("queue_wait", "model", "encode", "upload")
"""Job phases timed, as `JobView.timings` names them (`<phase>_s`)."""
DELIVERY_OUTCOMES = {
    DeliveryStatus.SUCCEEDED: "succeeded",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.PENDING: "retrying",
}


def field(*parts: str) -> str:
    return "|".join(parts)


def observe_duration(p: Any, phase: str, queue: str, version: str, seconds: float) -> None:
    """Add one observation to the `phase` histogram of one target, on pipeline `p`."""
    for bound in DURATION_BUCKETS_S:
        if seconds <= bound:
            p.hincrby(keys.METRICS_DURATIONS, field(phase, queue, version, repr(bound)), 1)
    p.hincrbyfloat(keys.METRICS_DURATIONS, field(phase, queue, version, "sum"), seconds)
    p.hincrby(keys.METRICS_DURATIONS, field(phase, queue, version, "count"), 1)


def make_recorder(client: redis.Redis) -> Listener:
    """A JobStore listener counting ended jobs and timing their phases."""

    def record(job: JobRecord, before: JobStatus) -> None:
        if job.status == before:
            return
        version = str(job.request.get("model_version"))
        with client.pipeline(transaction=False) as p:
            started = before == JobStatus.QUEUED and job.status == JobStatus.RUNNING
            if started and job.timings.queue_wait_s is not None:
                observe_duration(p, "queue_wait", job.queue, version, job.timings.queue_wait_s)
            if job.status.terminal:
                p.hincrby(keys.METRICS_JOBS_ENDED, field(job.status.value, job.queue, version), 1)
            if job.status == JobStatus.SUCCEEDED:
                for phase in DURATION_PHASES[1:]:
                    seconds = getattr(job.timings, f"{phase}_s")
                    if seconds is not None:
                        observe_duration(p, phase, job.queue, version, seconds)
            p.execute()

    return record


def count_delivery(client: redis.Redis, status: DeliveryStatus) -> None:
    """One webhook attempt made, by where it left the delivery."""
    client.hincrby(keys.METRICS_WEBHOOKS, DELIVERY_OUTCOMES.get(status, status.value), 1)
