"""The job store on a real Redis (empty for each test): finished jobs never move backwards,
redeliveries are guarded, queue positions, deadlines, attempts, cancel and the sweeper's reaping."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis

from shared.errors import InvalidTransition
from shared.fleet import Heartbeat
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore
from shared.schemas import JobError
from shared.states import JobStatus


@pytest.fixture
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client, ttl_s=60)


def new_job(store: JobStore, job_id: str) -> JobRecord:
    job = JobRecord(id=job_id, owner="o", request={"model_version": "tiny-random"}, gpu_type="CPU",
                    region="local", queue="q")  # fmt: skip
    store.create(job)
    return job


def test_late_redelivery_of_a_finished_job_is_ignored(store: JobStore) -> None:
    new_job(store, "j1")
    assert store.queue_position(store.require("j1")) == 1
    started = store.start("j1", "w1")
    assert started is not None and started.status == JobStatus.RUNNING and started.attempts == 1
    assert store.queue_position(started) is None
    store.finish("j1", "w1", JobStatus.SUCCEEDED)
    assert store.start("j1", "w2") is None
    with pytest.raises(InvalidTransition):
        store.finish("j1", "w2", JobStatus.FAILED, error=JobError(code="internal", message="late"))
    assert store.require("j1").status == JobStatus.SUCCEEDED


def test_job_of_a_live_worker_is_not_taken_over(store: JobStore) -> None:
    new_job(store, "j2")
    store.fleet.beat(
        Heartbeat(worker="w1", queue="q", gpu_type="CPU", region="local", state="busy", beat_at=time.time()),
        ttl_s=30,
    )
    store.start("j2", "w1")
    with pytest.raises(InvalidTransition, match="live worker"):
        store.start("j2", "w2")
    store.fleet.forget("w1", "q")
    taken = store.start("j2", "w2")
    assert taken is not None and taken.worker == "w2" and taken.attempts == 2
    with pytest.raises(InvalidTransition):
        store.progress("j2", "w1", 1, 10)
    with pytest.raises(InvalidTransition, match="taken over"):
        store.finish("j2", "w1", JobStatus.SUCCEEDED)


def test_queue_positions_follow_submission_order(store: JobStore) -> None:
    for i in range(3):
        new_job(store, f"p{i}")
    assert [store.queue_position(store.require(f"p{i}")) for i in range(3)] == [1, 2, 3]
    store.start("p0", "w")
    assert [store.queue_position(store.require(f"p{i}")) for i in (1, 2)] == [1, 2]


def test_start_deadline_expires_a_queued_job(store: JobStore) -> None:
    new_job(store, "late")
    store.update("late", lambda j: setattr(j, "start_deadline_at", j.created_at - timedelta(seconds=1)))
    assert store.expire_overdue() == ["late"]
    expired = store.require("late")
    assert (
        expired.status == JobStatus.EXPIRED and expired.error is not None and expired.error.code == "expired"
    )
    assert store.start("late", "w") is None
    new_job(store, "late2")
    store.update("late2", lambda j: setattr(j, "start_deadline_at", j.created_at - timedelta(seconds=1)))
    ended = store.start("late2", "w")
    assert ended is not None and ended.status == JobStatus.EXPIRED


def test_a_job_that_keeps_killing_workers_fails_after_max_attempts(store: JobStore) -> None:
    new_job(store, "crashy")
    for attempt in range(1, store.max_attempts + 1):
        job = store.start("crashy", f"w{attempt}")  # each worker dies without a heartbeat
        assert job is not None and job.status == JobStatus.RUNNING and job.attempts == attempt
    final = store.start("crashy", "w-last")
    assert final is not None and final.status == JobStatus.FAILED
    assert final.error is not None and final.error.code == "worker_lost"


def test_cancel_moves_queued_or_running_and_refuses_finished(store: JobStore) -> None:
    new_job(store, "c1")
    assert store.end("c1", JobStatus.CANCELED, "canceled", "by user").status == JobStatus.CANCELED
    assert store.start("c1", "w") is None
    new_job(store, "c2")
    store.start("c2", "w")
    store.end("c2", JobStatus.CANCELED, "canceled", "by user")
    with pytest.raises(InvalidTransition):
        store.progress("c2", "w", 1, 5)
    with pytest.raises(InvalidTransition, match="already canceled"):
        store.end("c2", JobStatus.CANCELED, "canceled", "again")


def test_sweeper_ends_overdue_jobs_of_live_workers_and_leaves_dead_ones(store: JobStore) -> None:
    def running(job_id: str, worker: str, current: str | None) -> None:
        new_job(store, job_id)
        store.start(job_id, worker)
        store.update(job_id, lambda j: setattr(j, "timeout_s", 1.0))
        store.update(job_id, lambda j: setattr(j, "started_at", now() - timedelta(seconds=30)))
        if current is not None:
            beat = Heartbeat(worker=worker, queue="q", gpu_type="CPU", region="local", state="busy",
                             current_job=current or None, beat_at=time.time())  # fmt: skip
            store.fleet.beat(beat, ttl_s=30)

    running("hung", "w-hung", "hung")  # its worker is still on it, long past the deadline
    running("orphan", "w-moved", "")  # its worker is alive but doing nothing for it
    running("dead", "w-dead", None)  # no heartbeat: redelivery will take it
    ended = dict(store.reap_overdue(grace_s=10))
    assert ended == {"hung": "timeout", "orphan": "worker_lost"}
    assert store.require("dead").status == JobStatus.RUNNING
    assert store.reap_overdue(grace_s=10) == []


def test_preview_only_on_the_running_job_of_its_worker_and_never_shrinks(store: JobStore) -> None:
    new_job(store, "j1")
    with pytest.raises(InvalidTransition):
        store.preview("j1", "w1", "videos/j1.preview.mp4", 17)  # queued: not running yet
    store.start("j1", "w1")
    store.progress("j1", "w1", 3, 8)
    assert store.preview("j1", "w1", "videos/j1.preview.mp4", 37).preview.frames == 37  # type: ignore[union-attr]
    assert store.preview("j1", "w1", "videos/j1.preview.mp4", 17).preview.frames == 37  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition):
        store.preview("j1", "w2", "videos/j1.preview.mp4", 57)
    store.finish("j1", "w1", JobStatus.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        store.preview("j1", "w1", "videos/j1.preview.mp4", 57)
    assert store.require("j1").preview.frames == 37  # type: ignore[union-attr]
