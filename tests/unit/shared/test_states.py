"""Lifecycle tables: finished jobs never move again; the moves each lifecycle allows."""

from __future__ import annotations

import pytest

from shared.errors import InvalidTransition
from shared.jobs import JobRecord
from shared.states import JOB_MOVES, JobStatus


@pytest.mark.parametrize("terminal", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED])
def test_terminal_states_have_no_way_out(terminal: JobStatus) -> None:
    assert JOB_MOVES[terminal] == frozenset()
    job = JobRecord(id="x", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=terminal)
    for target in JobStatus:
        with pytest.raises(InvalidTransition):
            job.move(target)
