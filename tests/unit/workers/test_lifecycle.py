"""A worker's life without Celery or Redis: what its heartbeat says (state, idle since when, the last
task and what became of it) and when it decides to stop."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Reject

from shared.fleet import Heartbeat, TaskOutcome
from shared.settings import Settings
from shared.states import WorkerState
from workers.lifecycle import Activity, WorkerLife


class FakeFleet:
    def __init__(self) -> None:
        self.kept_warm = False
        self.beats: list[Heartbeat] = []

    def keep_warm(self, queue: str) -> bool:
        return self.kept_warm

    def beat(self, hb: Heartbeat, ttl_s: float) -> None:
        self.beats.append(hb)


def new_life(idle_timeout_s: float = 3) -> WorkerLife:
    settings = Settings(worker_idle_timeout_s=idle_timeout_s, worker_gpu_type="CPU", worker_region="local")
    store: Any = SimpleNamespace(fleet=FakeFleet())
    runner: Any = SimpleNamespace(current_job=None)
    holder: Any = SimpleNamespace(is_loaded=True, version="tiny-random", loaded_at=1.0, cold_start_s=0.5)
    return WorkerLife("w@test", settings, store, runner, holder)


def test_idle_since_is_when_the_last_task_ended_and_none_while_one_runs() -> None:
    life = new_life()
    assert life.heartbeat().state == WorkerState.WARM
    with Activity(life):
        during = life.heartbeat()
        assert during.state == WorkerState.BUSY and during.idle_since is None
        ended = time.time()
    after = life.heartbeat()
    assert after.state == WorkerState.WARM
    assert after.idle_since is not None and ended - 0.5 <= after.idle_since <= after.beat_at


def test_the_last_task_and_its_outcome_are_published() -> None:
    life = new_life()
    assert life.heartbeat().last_task is None
    with Activity(life):
        life.saw("job-1", TaskOutcome.DROPPED)
    beat = life.store.fleet.beats[-1]  # type: ignore[attr-defined]
    assert beat.last_task is not None and (beat.last_task.job_id, beat.last_task.outcome) == (
        "job-1",
        "dropped",
    )
    life.saw("job-2", TaskOutcome.RAN)
    assert life.heartbeat().last_task.job_id == "job-2"  # type: ignore[union-attr]


def test_idle_past_the_timeout_stops_unless_kept_warm_and_then_refuses_tasks() -> None:
    life = new_life(idle_timeout_s=3)
    assert not life.idle_expired()
    life.last_activity = time.monotonic() - 10
    life.store.fleet.kept_warm = True  # type: ignore[attr-defined]
    assert not life.idle_expired() and life.state == WorkerState.WARM
    beat = life.heartbeat()
    assert beat.keep_warm and beat.idle_since is not None and beat.beat_at - beat.idle_since >= 10
    life.store.fleet.kept_warm = False  # type: ignore[attr-defined]
    assert life.idle_expired() and life.state == WorkerState.STOPPING
    with pytest.raises(Reject), Activity(life):
        pass
    assert life.heartbeat().state == WorkerState.STOPPING
