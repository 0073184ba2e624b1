"""Job records, queue positions and worker liveness in Redis.

Every change is a read-modify-write under WATCH, so concurrent writers (a redelivered task, the API)
see each other's moves and the state machine in `shared.jobs` is enforced atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from shared.errors import InvalidTransition, NotFound
from shared.jobs import JobRecord, JobState, now
from shared.schemas import JobError, Progress

PREFIX = "rf"


def _job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def _owner_key(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}"


def _queue_key(queue: str) -> str:
    return f"{PREFIX}:queued:{queue}"


def _worker_key(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, ttl_s: int) -> JobStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), ttl_s)

    def create(self, job: JobRecord) -> None:
        seq = self.r.incr(f"{PREFIX}:seq")
        with self.r.pipeline() as p:
            p.set(_job_key(job.id), job.model_dump_json(), ex=self.ttl_s)
            p.zadd(_owner_key(job.owner), {job.id: job.created_at.timestamp()})
            p.zadd(_queue_key(job.queue), {job.id: seq})
            p.execute()

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.r.get(_job_key(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    def require(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Apply `change` atomically; it may raise InvalidTransition to abort without writing."""
        key = _job_key(job_id)
        result: dict[str, JobRecord] = {}

        def txn(p: Any) -> None:
            raw = p.get(key)
            if raw is None:
                raise NotFound(f"job {job_id} not found")
            job = JobRecord.model_validate_json(raw)
            change(job)
            p.multi()
            p.set(key, job.model_dump_json(), keepttl=True)
            if job.status != JobState.QUEUED:
                p.zrem(_queue_key(job.queue), job.id)
            result["job"] = job

        self.r.transaction(txn, key)
        return result["job"]

    def queue_position(self, job: JobRecord) -> int | None:
        if job.status != JobState.QUEUED:
            return None
        rank = self.r.zrank(_queue_key(job.queue), job.id)
        return None if rank is None else int(rank) + 1  # type: ignore[arg-type]

    def list_for(
        self, owner: str, *, status: str | None, limit: int, before: float | None
    ) -> list[JobRecord]:
        """The owner's jobs, newest first, created strictly before `before` (a timestamp cursor)."""
        jobs: list[JobRecord] = []
        top: float | str = f"({before}" if before is not None else "+inf"
        offset, batch = 0, max(limit * 2, 50)
        while len(jobs) < limit:
            ids = self.r.zrevrangebyscore(_owner_key(owner), top, "-inf", start=offset, num=batch)
            if not ids:
                break
            offset += len(ids)
            for raw in self.r.mget([_job_key(str(i)) for i in ids]):
                if raw is None:
                    continue
                job = JobRecord.model_validate_json(raw)
                if status is None or job.status == status:
                    jobs.append(job)
                    if len(jobs) == limit:
                        break
        return jobs

    # Transitions used by workers and the API.

    def start(self, job_id: str, worker: str) -> JobRecord | None:
        """Claim the job for `worker`; None when it is already finished (a late redelivery).

        Raises InvalidTransition when another live worker holds it: that worker will finish it.
        """

        def change(job: JobRecord) -> None:
            if job.status.terminal:
                raise _AlreadyFinished
            if job.status == JobState.RUNNING and job.worker != worker and self.is_alive(job.worker):
                raise InvalidTransition(f"job {job_id} is running on live worker {job.worker}")
            job.move(JobState.RUNNING)
            job.worker = worker
            job.attempts += 1
            job.progress = Progress()
            job.started_at = now()
            job.timings.queue_wait_s = round((job.started_at - job.created_at).total_seconds(), 3)

        try:
            return self.update(job_id, change)
        except _AlreadyFinished:
            return None

    def progress(self, job_id: str, worker: str, step: int, total: int) -> JobRecord:
        def change(job: JobRecord) -> None:
            if job.status != JobState.RUNNING or job.worker != worker:
                raise InvalidTransition(
                    f"job {job_id} is {job.status} on {job.worker}, not running on {worker}"
                )
            job.progress = Progress(step=step, total=total, fraction=round(step / total, 4) if total else 0.0)

        return self.update(job_id, change)

    def finish(self, job_id: str, worker: str, state: JobState, **fields: Any) -> JobRecord:
        """Move a job this worker runs to a terminal state, with its result or error."""

        def change(job: JobRecord) -> None:
            if job.status == JobState.RUNNING and job.worker != worker:
                raise InvalidTransition(f"job {job_id} was taken over by {job.worker}")
            job.move(state)
            for name, value in fields.items():
                setattr(job, name, value)

        return self.update(job_id, change)

    def fail(self, job_id: str, code: str, message: str) -> JobRecord:
        def change(job: JobRecord) -> None:
            job.move(JobState.FAILED)
            job.error = JobError(code=code, message=message)

        return self.update(job_id, change)

    # Worker liveness: a key per worker that lapses when its heartbeats stop.

    def beat(self, worker: str, info: dict[str, Any], ttl_s: float) -> None:
        self.r.set(_worker_key(worker), json.dumps(info), px=int(ttl_s * 1000))

    def forget_worker(self, worker: str) -> None:
        self.r.delete(_worker_key(worker))

    def is_alive(self, worker: str | None) -> bool:
        return bool(worker) and bool(self.r.exists(_worker_key(worker or "")))

    def live_workers(self) -> list[dict[str, Any]]:
        keys = list(self.r.scan_iter(f"{PREFIX}:worker:*"))
        return [json.loads(v) for v in self.r.mget(keys) if v] if keys else []

    def ping(self) -> bool:
        return bool(self.r.ping())


class _AlreadyFinished(Exception):
    pass
