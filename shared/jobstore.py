"""Job records, queue positions and worker liveness in Redis.

Every change is a read-modify-write under WATCH, so concurrent writers (a redelivered task, the API)
see each other's moves and the state machine in `shared.jobs` is enforced atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from shared import keys
from shared.errors import ErrorCode, InvalidTransition, NotFound
from shared.fleet import Fleet
from shared.jobs import JobRecord, now
from shared.outbox import entries_for
from shared.paging import newest_first
from shared.schemas import JobError, Preview, Progress
from shared.states import JobPhase, JobStatus

log = logging.getLogger(__name__)
Listener = Callable[[JobRecord, JobStatus], None]
EVENTS_KEPT = 500
"""Changes kept per job in its event stream (a resuming client further behind gets the current state)."""


def read_jobs(client: redis.Redis, job_ids: list[str]) -> list[JobRecord | None]:
    """Many job records in one round trip, in the order of `job_ids` (None for one that expired)."""
    if not job_ids:
        return []
    return [
        JobRecord.model_validate_json(raw) if raw else None for raw in client.mget(map(keys.job, job_ids))
    ]


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int, max_attempts: int = 3) -> None:
        self.r = client
        self.ttl_s = ttl_s
        self.max_attempts = max_attempts
        self.fleet = Fleet(client)
        self.listeners: list[Listener] = []
        """Called after each committed change with (job, status before it), best effort: for what may
        be missed (metrics). Anything a move must not lose is written with it, in the outbox."""

    @classmethod
    def from_url(cls, url: str, ttl_s: int, max_attempts: int = 3) -> JobStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), ttl_s, max_attempts)

    def create(self, job: JobRecord) -> None:
        seq = int(self.r.incr(keys.JOB_SEQUENCE))
        with self.r.pipeline() as p:
            self.write_new(p, job, seq)
            p.execute()

    def write_new(self, p: Any, job: JobRecord, seq: int) -> None:
        """Queue the writes of a new job (record and indexes) on pipeline `p`: `create` runs them for
        one job; the API benchmark seeds millions through this same code."""
        created = job.created_at.timestamp()
        p.set(keys.job(job.id), job.model_dump_json(), ex=self.ttl_s)
        p.zadd(keys.owner_jobs(job.owner), {job.id: created})
        p.zadd(keys.owner_jobs_in(job.owner, job.status), {job.id: created})
        if job.status != JobStatus.QUEUED:
            return
        p.zadd(keys.queued_jobs(job.queue), {job.id: seq})
        p.zadd(keys.UNCONFIRMED, {job.id: created})
        if job.start_deadline_at is not None:
            p.zadd(keys.START_DEADLINES, {job.id: job.start_deadline_at.timestamp()})

    def confirm_sent(self, job_id: str) -> None:
        """The job's queue message is on its queue."""
        self.r.zrem(keys.UNCONFIRMED, job_id)

    def unconfirmed(self, older_than_s: float) -> list[str]:
        """Queued jobs whose queue message was not confirmed sent `older_than_s` after creation."""
        cutoff = now().timestamp() - older_than_s
        return [str(i) for i in self.r.zrangebyscore(keys.UNCONFIRMED, "-inf", cutoff, start=0, num=500)]

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.r.get(keys.job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    def require(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def owned(self, job_id: str, owner: str) -> JobRecord:
        """The job if this owner submitted it; NotFound otherwise (others' jobs are not revealed)."""
        job = self.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"job {job_id} not found")
        return job

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Apply `change` atomically; it may raise InvalidTransition to abort without writing."""
        key = keys.job(job_id)
        result: dict[str, JobRecord] = {}
        before: dict[str, JobStatus] = {}

        def txn(p: Any) -> None:
            raw = p.get(key)
            if raw is None:
                raise NotFound(f"job {job_id} not found")
            job = JobRecord.model_validate_json(raw)
            before["status"] = job.status
            change(job)
            p.multi()
            self._write_move(p, job, before["status"])
            result["job"] = job

        self.r.transaction(txn, key)
        job = result["job"]
        for listener in self.listeners:
            try:
                listener(job, before["status"])
            except Exception:
                log.exception("job listener failed for %s", job.id)
        return job

    def _write_move(self, p: Any, job: JobRecord, before: JobStatus) -> None:
        """Queue, on the transaction `p`, the record, its indexes, its event stream and what the move
        owes (the outbox): all of it is committed together, or none of it."""
        record = job.model_dump_json()
        p.set(keys.job(job.id), record, keepttl=True)
        p.xadd(keys.job_events(job.id), {"job": record}, maxlen=EVENTS_KEPT, approximate=True)
        p.expire(keys.job_events(job.id), self.ttl_s)
        for entry in entries_for(job, before):
            p.xadd(keys.OUTBOX, {"entry": entry.model_dump_json()})
        if job.status != before:
            p.zrem(keys.owner_jobs_in(job.owner, before), job.id)
            p.zadd(keys.owner_jobs_in(job.owner, job.status), {job.id: job.created_at.timestamp()})
        if job.status != JobStatus.QUEUED:
            p.zrem(keys.queued_jobs(job.queue), job.id)
            p.zrem(keys.START_DEADLINES, job.id)
            p.zrem(keys.UNCONFIRMED, job.id)
        elif job.start_deadline_at is not None:
            p.zadd(keys.START_DEADLINES, {job.id: job.start_deadline_at.timestamp()})
        if job.status == JobStatus.RUNNING and job.started_at is not None:
            p.zadd(keys.RUNNING_JOBS, {job.id: job.started_at.timestamp() + (job.timeout_s or 0)})
        else:
            p.zrem(keys.RUNNING_JOBS, job.id)

    def queue_length(self, queue: str) -> int:
        """Jobs accepted for this queue and not yet started."""
        return int(self.r.zcard(keys.queued_jobs(queue)))

    def queue_position(self, job: JobRecord) -> int | None:
        if job.status != JobStatus.QUEUED:
            return None
        rank = self.r.zrank(keys.queued_jobs(job.queue), job.id)
        return None if rank is None else int(rank) + 1  # type: ignore[arg-type]

    def list_for(
        self, owner: str, *, status: str | None, limit: int, before: float | None
    ) -> list[JobRecord]:
        """The owner's jobs, newest first, created strictly before `before` (a timestamp cursor):
        one page read from the owner's index (per status when filtered), never a scan of all jobs."""
        index = keys.owner_jobs(owner) if status is None else keys.owner_jobs_in(owner, status)
        return newest_first(self.r, index, lambda ids: read_jobs(self.r, ids), limit, before)

    def start(self, job_id: str, worker: str) -> JobRecord | None:
        """Claim the job for `worker`: the record, RUNNING; or ended here `expired` (start deadline
        passed) or `failed` (its workers kept dying); None when it had already finished.

        Raises InvalidTransition when another live worker holds it: that worker will finish it.
        """

        def change(job: JobRecord) -> None:
            if job.status.terminal:
                raise _NothingToRun
            if job.status == JobStatus.RUNNING and job.worker != worker and self.fleet.is_alive(job.worker):
                raise InvalidTransition(f"job {job_id} is running on live worker {job.worker}")
            if job.status == JobStatus.QUEUED and job.start_deadline_at and now() > job.start_deadline_at:
                job.move(JobStatus.EXPIRED)
                job.error = JobError(code=ErrorCode.EXPIRED, message="not started before its start deadline")
                return
            if job.attempts >= self.max_attempts:
                job.close_attempt(ErrorCode.WORKER_LOST.value)
                job.move(JobStatus.FAILED)
                job.error = JobError(
                    code=ErrorCode.WORKER_LOST,
                    message=f"its worker was lost {job.attempts} times; not retried again",
                )
                return
            job.move(JobStatus.RUNNING)
            job.begin_attempt(worker)
            job.progress = Progress()
            job.preview = None  # this attempt's preview starts again from its first frames
            job.started_at = now()
            job.timings.queue_wait_s = round((job.started_at - job.created_at).total_seconds(), 3)

        try:
            return self.update(job_id, change)
        except _NothingToRun:
            return None

    def progress(self, job_id: str, worker: str, step: int, total: int) -> JobRecord:
        """Denoising iteration `step` of `total` done."""
        fraction = round(step / total, 4) if total else 0.0
        progress = Progress(phase=JobPhase.DENOISING, step=step, total=total, fraction=fraction)
        return self.update(job_id, _running_on(worker, lambda job: setattr(job, "progress", progress)))

    def preview(self, job_id: str, worker: str, storage_key: str, frames: int) -> JobRecord:
        """A preview of the first `frames` frames is in storage; an older one (fewer frames, from a
        slower upload) never replaces it."""

        def show(job: JobRecord) -> None:
            if job.preview is None or job.preview.frames < frames:
                job.preview = Preview(storage_key=storage_key, frames=frames, updated_at=now())

        return self.update(job_id, _running_on(worker, show))

    def phase(self, job_id: str, worker: str, phase: JobPhase) -> JobRecord:
        """The job entered `phase`; its iteration count stays as it was."""

        def enter(job: JobRecord) -> None:
            job.progress = (job.progress or Progress()).model_copy(update={"phase": phase})

        return self.update(job_id, _running_on(worker, enter))

    def finish(self, job_id: str, worker: str, state: JobStatus, **fields: Any) -> JobRecord:
        """Move a job this worker runs to a terminal state, with its result or error."""

        def change(job: JobRecord) -> None:
            if job.status == JobStatus.RUNNING and job.worker != worker:
                raise InvalidTransition(f"job {job_id} was taken over by {job.worker}")
            job.move(state)
            for name, value in fields.items():
                setattr(job, name, value)

        return self.update(job_id, change)

    def end(self, job_id: str, state: JobStatus, code: ErrorCode, message: str) -> JobRecord:
        """Move a job to a terminal state from outside a worker (the API, the sweeper)."""

        def change(job: JobRecord) -> None:
            if job.status.terminal:
                raise InvalidTransition(f"job {job_id} already {job.status}; nothing changed")
            job.move(state)
            job.error = JobError(code=code, message=message)

        return self.update(job_id, change)

    def expire_overdue(self) -> list[str]:
        """End `expired` every queued job past its start deadline (read from the deadline index)."""
        expired = []
        for job_id in self.r.zrangebyscore(keys.START_DEADLINES, "-inf", now().timestamp()):
            try:
                self.end(
                    str(job_id), JobStatus.EXPIRED, ErrorCode.EXPIRED, "not started before its start deadline"
                )
                expired.append(str(job_id))
            except InvalidTransition:
                pass  # it started or ended meanwhile
            except NotFound:
                self.r.zrem(keys.START_DEADLINES, str(job_id))  # its record expired
        return expired

    def reap_overdue(self, grace_s: float) -> list[tuple[str, ErrorCode]]:
        """End running jobs whose execution deadline passed `grace_s` ago and whose worker is alive but
        not finishing them: hung past the deadline (`timeout`), or moved on after losing the job store
        mid-job (`worker_lost`). A job whose worker is dead is left to redelivery. Returns (id, code)."""
        ended = []
        cutoff = now().timestamp() - grace_s
        for job_id in self.r.zrangebyscore(keys.RUNNING_JOBS, "-inf", cutoff):
            job = self.get(str(job_id))
            if job is None or job.status != JobStatus.RUNNING:
                self.r.zrem(keys.RUNNING_JOBS, str(job_id))
                continue
            beat = self.fleet.heartbeat(job.worker)
            if beat is None:
                continue
            code, message = (
                (ErrorCode.TIMEOUT, "ran past its execution deadline and stopped reporting progress")
                if beat.current_job == job.id
                else (
                    ErrorCode.WORKER_LOST,
                    f"its worker {job.worker} stopped working on it without finishing it",
                )
            )
            try:
                self.end(job.id, JobStatus.FAILED, code, message)
                ended.append((job.id, code))
            except InvalidTransition:
                pass  # it finished meanwhile
        return ended

    def ping(self) -> bool:
        return bool(self.r.ping())


class _NothingToRun(Exception):
    pass


def _running_on(worker: str, change: Callable[[JobRecord], None]) -> Callable[[JobRecord], None]:
    """`change`, applied only while `worker` runs the job: a canceled or taken-over job raises
    InvalidTransition, which stops the worker at its next step."""

    def guarded(job: JobRecord) -> None:
        if job.status != JobStatus.RUNNING or job.worker != worker:
            raise InvalidTransition(f"job {job.id} is {job.status} on {job.worker}, not running on {worker}")
        change(job)

    return guarded
