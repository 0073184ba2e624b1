"""Job state machine and store: finished jobs never move backwards; redeliveries are guarded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from scheduler.devstack import Stack, free_port
from shared.errors import InvalidTransition
from shared.jobs import TRANSITIONS, JobRecord, JobState
from shared.jobstore import JobStore
from shared.schemas import JobError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobStore]:
    stack = Stack(tmp_path_factory.mktemp("redis"))
    try:
        url = stack.start_redis(free_port(), persist=False)
        yield JobStore(redis.Redis.from_url(url, decode_responses=True), ttl_s=60)
    finally:
        stack.stop()


def new_job(store: JobStore, job_id: str) -> JobRecord:
    job = JobRecord(id=job_id, owner="o", request={"model_version": "tiny-random"}, gpu_type="CPU",
                    region="local", queue="q")  # fmt: skip
    store.create(job)
    return job


@pytest.mark.parametrize("terminal", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED])
def test_terminal_states_have_no_way_out(terminal: JobState) -> None:
    assert TRANSITIONS[terminal] == frozenset()
    job = JobRecord(id="x", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=terminal)
    for target in JobState:
        with pytest.raises(InvalidTransition):
            job.move(target)


def test_late_redelivery_of_a_finished_job_is_ignored(store: JobStore) -> None:
    new_job(store, "j1")
    assert store.queue_position(store.require("j1")) == 1
    started = store.start("j1", "w1")
    assert started is not None and started.status == JobState.RUNNING and started.attempts == 1
    assert store.queue_position(started) is None
    store.finish("j1", "w1", JobState.SUCCEEDED)
    assert store.start("j1", "w2") is None
    with pytest.raises(InvalidTransition):
        store.finish("j1", "w2", JobState.FAILED, error=JobError(code="internal", message="late"))
    assert store.require("j1").status == JobState.SUCCEEDED


def test_job_of_a_live_worker_is_not_taken_over(store: JobStore) -> None:
    new_job(store, "j2")
    store.beat("w1", {"worker": "w1"}, ttl_s=30)
    store.start("j2", "w1")
    with pytest.raises(InvalidTransition, match="live worker"):
        store.start("j2", "w2")
    store.forget_worker("w1")
    taken = store.start("j2", "w2")
    assert taken is not None and taken.worker == "w2" and taken.attempts == 2
    with pytest.raises(InvalidTransition):
        store.progress("j2", "w1", 1, 10)
    with pytest.raises(InvalidTransition, match="taken over"):
        store.finish("j2", "w1", JobState.SUCCEEDED)


def test_queue_positions_follow_submission_order(store: JobStore) -> None:
    for i in range(3):
        new_job(store, f"p{i}")
    assert [store.queue_position(store.require(f"p{i}")) for i in range(3)] == [1, 2, 3]
    store.start("p0", "w")
    assert [store.queue_position(store.require(f"p{i}")) for i in (1, 2)] == [1, 2]


def test_scheduler_never_imports_torch_or_diffusers() -> None:
    code = "import sys, scheduler.app, scheduler.cli; print({'torch', 'diffusers'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
