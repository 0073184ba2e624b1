"""Which event a committed job change makes."""

from __future__ import annotations

import pytest

from shared.jobs import JobRecord
from shared.schemas import Progress
from shared.states import JobStatus
from shared.webhooks.events import event_for


def _job(status: JobStatus, step: int = 0) -> JobRecord:
    job = JobRecord(id="j", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=status)
    job.progress = Progress(step=step, total=4)
    return job


@pytest.mark.parametrize(
    ("after", "before", "step", "event"),
    [
        (JobStatus.RUNNING, JobStatus.QUEUED, 0, "started"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 2, "progress"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 0, None),  # a takeover by another worker
        (JobStatus.SUCCEEDED, JobStatus.RUNNING, 4, "completed"),
        (JobStatus.FAILED, JobStatus.RUNNING, 1, "completed"),
        (JobStatus.CANCELED, JobStatus.QUEUED, 0, "completed"),
        (JobStatus.EXPIRED, JobStatus.QUEUED, 0, "completed"),
    ],
)
def test_events_from_state_changes(after: JobStatus, before: JobStatus, step: int, event: str | None) -> None:
    assert event_for(_job(after, step), before) == event
