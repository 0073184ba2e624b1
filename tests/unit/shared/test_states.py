"""Lifecycle tables: finished jobs and settled deliveries never move again, a stopping worker stays
stopping, and the moves each lifecycle allows."""

from __future__ import annotations

import pytest

from shared.errors import InvalidTransition
from shared.jobs import JobRecord
from shared.states import (
    DELIVERY_MOVES,
    JOB_MOVES,
    TERMINAL,
    WORKER_MOVES,
    DeliveryStatus,
    JobStatus,
    WorkerState,
    check_move,
)


@pytest.mark.parametrize(
    "terminal", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED]
)
def test_terminal_states_have_no_way_out(terminal: JobStatus) -> None:
    assert JOB_MOVES[terminal] == frozenset()
    job = JobRecord(id="x", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=terminal)
    for target in JobStatus:
        with pytest.raises(InvalidTransition):
            job.move(target)


def test_terminal_is_exactly_the_states_without_moves() -> None:
    assert {s for s in JobStatus if not JOB_MOVES[s]} == TERMINAL
    assert all(s.terminal == (s in TERMINAL) for s in JobStatus)


def test_a_job_runs_before_it_succeeds_and_a_running_job_can_be_taken_over() -> None:
    job = JobRecord(id="x", owner="o", request={}, gpu_type="CPU", region="local", queue="q")
    with pytest.raises(InvalidTransition, match="queued to succeeded"):
        job.move(JobStatus.SUCCEEDED)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.RUNNING)  # a redelivery to another worker
    job.move(JobStatus.SUCCEEDED)
    assert job.status == JobStatus.SUCCEEDED


def test_a_stopping_worker_takes_no_other_state() -> None:
    for to in WorkerState:
        if to != WorkerState.STOPPING:
            with pytest.raises(InvalidTransition):
                check_move(WORKER_MOVES, WorkerState.STOPPING, to, "worker w")
    # A busy worker finishes its task before it may decide to stop.
    with pytest.raises(InvalidTransition):
        check_move(WORKER_MOVES, WorkerState.BUSY, WorkerState.STOPPING, "worker w")
    assert (
        check_move(WORKER_MOVES, WorkerState.WARM, WorkerState.STOPPING, "worker w") == WorkerState.STOPPING
    )


def test_a_settled_delivery_never_moves_again() -> None:
    for done in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
        for to in DeliveryStatus:
            with pytest.raises(InvalidTransition):
                check_move(DELIVERY_MOVES, done, to, "delivery d")
