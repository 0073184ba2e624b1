"""One worker process's life: its state (`starting -> warm <-> busy`, `-> stopping`), heartbeats, the
preload at start, and the idle shutdown that frees the GPU.

A heartbeat thread publishes the state every half `worker_heartbeat_s` and watches for idleness.
After `worker_idle_timeout_s` without a task (and no keep-warm flag on its pool) the worker moves to
`stopping` and asks Celery for a warm shutdown; a task delivered in that window is rejected back onto
the queue, where the next worker takes it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from celery.exceptions import Reject

from shared.fleet import Heartbeat, TaskOutcome, TaskSeen
from shared.jobstore import JobStore
from shared.settings import Settings
from shared.states import WORKER_MOVES, WorkerState, check_move
from workers.pipeline import PipelineHolder
from workers.runner import JobRunner

log = logging.getLogger(__name__)


@dataclass
class WorkerLife:
    """Per-process state, created once: the task object outlives jobs, the pipeline stays loaded."""

    name: str
    settings: Settings
    store: JobStore
    runner: JobRunner
    holder: PipelineHolder
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: WorkerState = WorkerState.STARTING
    active: int = 0
    """Tasks (and the preload) in progress: a count, since the preload and a task can overlap."""
    tasks_started: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    last_task: TaskSeen | None = None

    @property
    def queue(self) -> str:
        return self.settings.worker_queue

    def move(self, to: WorkerState) -> None:
        self.state = check_move(WORKER_MOVES, self.state, to, f"worker {self.name}")

    def settle(self) -> None:
        """Move to the state the pipeline and the task count say, unless stopping."""
        if self.state == WorkerState.STOPPING:
            return
        if not self.holder.is_loaded:
            self.move(WorkerState.STARTING)
        else:
            self.move(WorkerState.BUSY if self.active else WorkerState.WARM)

    def saw(self, job_id: str, outcome: TaskOutcome) -> None:
        """Record what this worker did with a job task; heartbeats publish it."""
        self.last_task = TaskSeen(job_id=job_id, outcome=outcome, at=time.time())

    def heartbeat(self) -> Heartbeat:
        self.settle()
        holder = self.holder
        idle_for = time.monotonic() - self.last_activity
        return Heartbeat(
            worker=self.name,
            queue=self.queue,
            gpu_type=self.settings.worker_gpu_type,
            region=self.settings.worker_region,
            state=self.state,
            model_version=holder.version,
            current_job=self.runner.current_job,
            loaded_at=holder.loaded_at,
            cold_start_s=holder.cold_start_s,
            keep_warm=self.store.fleet.keep_warm(self.queue),
            idle_since=None if self.active else time.time() - idle_for,
            last_task=self.last_task,
            beat_at=time.time(),
        )

    def publish(self) -> None:
        try:
            self.store.fleet.beat(self.heartbeat(), ttl_s=self.settings.worker_heartbeat_s)
        except Exception:
            log.exception("heartbeat failed")

    def idle_expired(self) -> bool:
        """Decide, under the task lock, whether to stop; once True no new task will start here."""
        with self.lock:
            self.settle()
            idle_for = time.monotonic() - self.last_activity
            busy = self.active or self.runner.current_job or self.state == WorkerState.STOPPING
            if busy or idle_for < self.settings.worker_idle_timeout_s:
                return False
            if self.store.fleet.keep_warm(self.queue):
                return False
            self.move(WorkerState.STOPPING)
            return True


def request_shutdown(life: WorkerLife) -> None:
    """Warm shutdown: Celery stops consuming, requeues what it prefetched, and the process exits,
    which frees the GPU. The liveness key goes first so the pool reads as cold at once."""
    log.info("idle for %.0fs: shutting down", life.settings.worker_idle_timeout_s)
    life.store.fleet.forget(life.name, life.queue)
    os.kill(os.getpid(), signal.SIGTERM)


def watch(life: WorkerLife) -> None:
    """The heartbeat thread's loop."""
    # The liveness key lives one heartbeat period and is refreshed every half period: a killed
    # worker stops counting within one period, and its job can then be taken over by whichever
    # worker gets the redelivered task.
    period = life.settings.worker_heartbeat_s / 2
    tick = min(period, max(life.settings.worker_idle_timeout_s / 4, 0.25))
    next_beat = 0.0
    while not life.stop.is_set():
        try:
            if life.idle_expired():
                life.publish()
                request_shutdown(life)
                return
            if time.monotonic() >= next_beat:
                life.publish()
                next_beat = time.monotonic() + period
        except Exception:
            log.exception("heartbeat failed")
        life.stop.wait(tick)


def preload_version(life: WorkerLife) -> str | None:
    """A pending prewarm's version, else the first version the worker's pool serves."""
    pending = life.store.fleet.prewarm_version(life.queue)
    if pending:
        return pending
    pools = life.settings.pools
    return next((p.model_versions[0] for p in pools if p.queue == life.queue and p.model_versions), None)


def preload(life: WorkerLife) -> None:
    """Load at start, off the consumer thread, so the cold start is paid before the first request;
    a task arriving meanwhile waits on the holder's lock."""
    version = preload_version(life)
    if version is None or life.tasks_started:
        return  # a task got here first: it loads what it needs, and two models must not share a GPU
    try:
        with Activity(life, task=False):
            life.runner.warm(version)
            if life.store.fleet.prewarm_version(life.queue) == version:
                life.store.fleet.clear_prewarm(life.queue)
    except Exception:
        log.exception("preloading %s failed; it loads on the first job instead", version)


class Activity:
    """Marks the worker busy for one task, or rejects the task back to the queue when stopping."""

    def __init__(self, life: WorkerLife, task: bool = True) -> None:
        self.life = life
        self.task = task

    def __enter__(self) -> WorkerLife:
        with self.life.lock:
            if self.life.state == WorkerState.STOPPING:
                raise Reject("worker is shutting down", requeue=True)
            self.life.active += 1
            self.life.tasks_started += self.task
        self.life.publish()
        return self.life

    def __exit__(self, *_: object) -> None:
        with self.life.lock:
            self.life.active -= 1
            self.life.last_activity = time.monotonic()
        self.life.publish()
