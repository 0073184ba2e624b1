"""What the integration tests share: the test stack's keys and bucket, a CPU-sized request, and waits
with deadlines (never a fixed sleep)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any, TypeVar

import boto3
import httpx
import redis

from scheduler.dev.stack import Stack
from scheduler.dev.supervisor import Supervisor
from shared import keys
from shared.errors import ErrorCode, InvalidTransition
from shared.fleet import Fleet, TaskSeen
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.states import TERMINAL, JobStatus
from tests.request_rules import VALID

KEY_A, KEY_B = "test-key-a", "test-key-b"
BUCKET = "reelforge-test"
ROUTE = "/v1/inference/skywork-skyreels-v2"
ELASTIC_IDLE_TIMEOUT_S = 3
"""Idle seconds after which the `elastic` pool's workers stop."""

# CPU-sized version of the catalog's example request.
SMALL_REQUEST: dict[str, Any] = VALID | {"region": "local"}

# Long enough on the CPU to be caught mid-denoising.
SLOW_REQUEST = SMALL_REQUEST | {"num_frames": 65, "width": 128, "height": 128, "num_inference_steps": 60,
                                "causal_block_size": 1, "ar_step": 0}  # fmt: skip

T = TypeVar("T")


@dataclass
class Live:
    stack: Stack
    base: str
    s3_endpoint: str
    supervisor: Supervisor | None = None

    def client(self, key: str = KEY_A) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def s3(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test",
        )  # fmt: skip

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.env["REELFORGE_REDIS_URL"], decode_responses=True)


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1) -> T:
    """The first truthy value `check` returns, or AssertionError once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met after {timeout_s:g}s")
        time.sleep(every_s)


def wait_job(
    client: httpx.Client, job_id: str, timeout_s: float = 120, until: frozenset[str] | set[str] = TERMINAL
) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s}s: {job}")
        time.sleep(0.2)


def fleet(live: Live) -> Fleet:
    return Fleet(live.redis())


def broker_copies(live: Live, queue: str, task_id: str) -> int:
    """Copies of a Celery task the broker still holds: waiting in its pool's queue, or delivered to a
    worker and not acked (kombu's `unacked` hash, whence a dead worker's tasks are restored). Read in
    one transaction, so a copy moving from one to the other is not missed; none left means nothing
    can run the task again."""
    r = live.redis()
    with r.pipeline(transaction=True) as p:
        p.lrange(queue, 0, -1)
        p.hvals("unacked")
        waiting, unacked = p.execute()
    r.close()
    ids = [json.loads(m)["headers"]["id"] for m in waiting]
    ids += [json.loads(v)[0]["headers"]["id"] for v in unacked]
    return ids.count(task_id)


def task_seen(live: Live, worker: str, job_id: str) -> TaskSeen | None:
    """What `worker` did with the job's task, once its heartbeat reports that as its last task."""
    beat = fleet(live).heartbeat(worker)
    last = beat.last_task if beat else None
    return last if last is not None and last.job_id == job_id else None


# What clear_job_state leaves in place under the ReelForge prefix: the running workers' presence, and
# the job records (ended first), so that a task still queued for one finds it ended and drops it where
# a missing record would be retried. Celery's and kombu's keys (queues, bindings, unacked) are outside
# the prefix and untouched.
KEPT = (keys.worker("*"), keys.pool_workers("*"), keys.WEBHOOK_CONSUMERS, keys.job("*"), keys.OUTBOX)


def clear_job_state(r: redis.Redis, settle_s: float = 90) -> None:
    """Leave the shared stack as a fresh test expects it, with its workers running.

    Every job another test left queued or running is ended (canceled: its worker stops at its next
    step); once no worker runs a job and no webhook delivery is pending, the rest of the job-side state
    goes: job indexes and queue positions, samples and cold starts, keep-warm and prewarm flags, batches,
    idempotency keys, webhook secrets and deliveries.
    """
    store = JobStore(r, ttl_s=3600)
    found = list(r.scan_iter(keys.job("*"), count=1000))
    for raw in r.mget(found) if found else []:
        job = JobRecord.model_validate_json(raw) if raw else None
        if job is not None and not job.status.terminal:
            with contextlib.suppress(InvalidTransition):  # it ended meanwhile
                store.end(job.id, JobStatus.CANCELED, ErrorCode.CANCELED, "ended between tests")

    def settled() -> bool:
        queues = [str(k).removeprefix(keys.pool_workers("")) for k in r.scan_iter(keys.pool_workers("*"))]
        running = [hb.worker for hb in Fleet(r).live(queues) if hb.current_job]
        return not running and not r.zcard(keys.WEBHOOKS_DUE) and not r.xlen(keys.OUTBOX)

    wait_for(settled, settle_s, "workers and webhook deliveries left by the previous test to settle")
    stale = [k for k in r.scan_iter(f"{keys.PREFIX}:*", count=1000) if not any(fnmatch(k, p) for p in KEPT)]
    if stale:
        r.delete(*stale)
