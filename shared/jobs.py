"""The stored job record; its states and allowed moves are in `shared.states`.

All state changes go through `JobRecord.move`, so a redelivered task can never complete a job
twice or move a finished job backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from shared.schemas import JobError, Progress, Timings, VideoResult
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
    progress: Progress | None = None
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
        if to.terminal:
            self.finished_at = now()
