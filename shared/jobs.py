"""The stored job record; its states and allowed moves are in `shared.states`.

All state changes go through `JobRecord.move`, so a redelivered task can never complete a job
twice or move a finished job backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from shared.errors import ErrorCode
from shared.schemas import Attempt, JobError, Preview, Progress, Timings, VideoResult
from shared.states import JOB_MOVES, JobStatus, check_move


def now() -> datetime:
    return datetime.now(UTC)


class JobRecord(BaseModel):
    """The job as stored in Redis: the API's source of truth."""

    id: str
    owner: str
    """Fingerprint of the API key that submitted it (never the key itself)."""
    status: JobStatus = JobStatus.QUEUED
    request: dict[str, object]
    gpu_type: str
    region: str
    queue: str
    batch_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    attempt_history: list[Attempt] = Field(default_factory=list)
    progress: Progress | None = None
    preview: Preview | None = None
    created_at: datetime = Field(default_factory=now)
    start_deadline_at: datetime | None = None
    """A job not started by then ends `expired`."""
    timeout_s: float | None = None
    """Execution deadline per attempt: a job running longer ends `failed` with code `timeout`."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings: Timings = Field(default_factory=Timings)
    result: VideoResult | None = None
    error: JobError | None = None

    def move(self, to: JobStatus) -> None:
        self.status = check_move(JOB_MOVES, self.status, to, f"job {self.id}")
        if to.terminal or to == JobStatus.RUNNING:
            self.close_attempt(to.value if to.terminal else ErrorCode.WORKER_LOST.value)
        if to.terminal:
            self.finished_at = now()

    def begin_attempt(self, worker: str) -> None:
        self.attempts += 1
        self.worker = worker
        self.attempt_history.append(Attempt(number=self.attempts, worker=worker, started_at=now()))

    def close_attempt(self, outcome: str) -> None:
        """End the open attempt: with the job's final status, or `worker_lost` when another worker
        takes the job over (RUNNING -> RUNNING)."""
        if self.attempt_history and self.attempt_history[-1].ended_at is None:
            self.attempt_history[-1].ended_at = now()
            self.attempt_history[-1].outcome = outcome
