"""The Celery worker: one process per GPU (`-P solo`), consuming its pool's queue.

Start with `python -m workers` (or `celery -A workers.tasks worker -P solo -Q <queue>`).

Lifecycle: a heartbeat thread publishes the worker's state every `worker_heartbeat_s` and watches
for idleness. After `worker_idle_timeout_s` without a task (and no keep-warm flag on its pool) the
worker marks itself stopping and asks Celery for a warm shutdown; a task delivered in that window
is rejected back onto the queue, where the next worker takes it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutdown

from shared.batchstore import BatchTracker
from shared.broker import GENERATE_TASK, WARMUP_TASK, GenerateMessage, WarmupMessage, make_celery
from shared.errors import InvalidTransition
from shared.fleet import Heartbeat
from shared.jobstore import JobStore
from shared.settings import get_settings
from shared.storage import make_storage
from shared.webhooks.events import make_emitter
from workers.runner import JobRunner, PipelineHolder

log = logging.getLogger(__name__)
settings = get_settings()
app = make_celery(settings)


@dataclass
class Runtime:
    """Per-process state, created once: the task object outlives jobs, the pipeline stays loaded."""

    name: str
    store: JobStore
    runner: JobRunner
    holder: PipelineHolder
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    """Tasks (and the preload) in progress: a count, since the preload and a task can overlap."""
    tasks_started: int = 0
    stopping: bool = False
    last_activity: float = field(default_factory=time.monotonic)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime(name: str) -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            device = settings.worker_device or ("cuda" if torch.cuda.is_available() else "cpu")
            store = JobStore.from_url(settings.redis_url, settings.job_ttl_s, settings.max_attempts)
            holder = PipelineHolder(device, settings.hf_home)
            storage = make_storage(settings)
            runner = JobRunner(settings, store, storage, holder, name)
            BatchTracker.attach(store, storage)  # writes a batch's manifest when its last job ends here
            # Job events become webhook deliveries on their own queue; none is sent from here.
            store.listeners.append(make_emitter(app, settings, client=store.r, storage=storage))
            _runtime = Runtime(name, store, runner, holder)
        return _runtime


def heartbeat(rt: Runtime) -> Heartbeat:
    holder = rt.holder
    if rt.stopping:
        state = "stopping"
    elif not holder.is_loaded:
        state = "starting"
    else:
        state = "busy" if rt.active else "warm"
    return Heartbeat(
        worker=rt.name,
        queue=settings.worker_queue,
        gpu_type=settings.worker_gpu_type,
        region=settings.worker_region,
        state=state,
        model_version=holder.version,
        current_job=rt.runner.current_job,
        loaded_at=holder.loaded_at,
        cold_start_s=holder.cold_start_s,
        keep_warm=rt.store.fleet.keep_warm(settings.worker_queue),
        beat_at=time.time(),
    )


def idle_expired(rt: Runtime) -> bool:
    """Decide, under the task lock, whether to stop; once True no new task will start here."""
    with rt.lock:
        idle_for = time.monotonic() - rt.last_activity
        if rt.active or rt.runner.current_job or rt.stopping or idle_for < settings.worker_idle_timeout_s:
            return False
        if rt.store.fleet.keep_warm(settings.worker_queue):
            return False
        rt.stopping = True
        return True


def request_shutdown(rt: Runtime) -> None:
    """Warm shutdown: Celery stops consuming, requeues what it prefetched, and the process exits,
    which frees the GPU. The liveness key goes first so the pool reads as cold at once."""
    log.info("idle for %.0fs: shutting down", settings.worker_idle_timeout_s)
    rt.store.fleet.forget(rt.name)
    os.kill(os.getpid(), signal.SIGTERM)


def _watch(rt: Runtime) -> None:
    # The liveness key lives one heartbeat period and is refreshed every half period: a killed
    # worker stops counting within one period, and its job can then be taken over by whichever
    # worker gets the redelivered task.
    period = settings.worker_heartbeat_s / 2
    tick = min(period, max(settings.worker_idle_timeout_s / 4, 0.25))
    next_beat = 0.0
    while not rt.stop.is_set():
        try:
            if idle_expired(rt):
                _publish_now(rt)
                request_shutdown(rt)
                return
            if time.monotonic() >= next_beat:
                _publish_now(rt)
                next_beat = time.monotonic() + period
        except Exception:
            log.exception("heartbeat failed")
        rt.stop.wait(tick)


def _publish_now(rt: Runtime) -> None:
    try:
        rt.store.fleet.beat(heartbeat(rt), ttl_s=settings.worker_heartbeat_s)
    except Exception:
        log.exception("heartbeat failed")


def preload_version(rt: Runtime) -> str | None:
    """A pending prewarm's version, else the first version the worker's pool serves."""
    queue = settings.worker_queue
    pending = rt.store.fleet.prewarm_version(queue)
    if pending:
        return pending
    return next((p.model_versions[0] for p in settings.pools if p.queue == queue and p.model_versions), None)


def _preload(rt: Runtime) -> None:
    # Load at start, off the consumer thread, so the cold start is paid before the first request;
    # a task arriving meanwhile waits on the holder's lock.
    version = preload_version(rt)
    if version is None or rt.tasks_started:
        return  # a task got here first: it loads what it needs, and two models must not share a GPU
    try:
        with Activity(rt, task=False):
            rt.runner.warm(version)
            if rt.store.fleet.prewarm_version(settings.worker_queue) == version:
                rt.store.fleet.clear_prewarm(settings.worker_queue)
    except Exception:
        log.exception("preloading %s failed; it loads on the first job instead", version)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    rt = runtime(sender.hostname)
    threading.Thread(target=_watch, args=(rt,), name="heartbeat", daemon=True).start()
    threading.Thread(target=_preload, args=(rt,), name="preload", daemon=True).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _runtime is not None:
        _runtime.stop.set()
        _runtime.store.fleet.forget(_runtime.name)


class Activity:
    """Marks the worker busy for one task, or rejects the task back to the queue when stopping."""

    def __init__(self, rt: Runtime, task: bool = True) -> None:
        self.rt = rt
        self.task = task

    def __enter__(self) -> Runtime:
        with self.rt.lock:
            if self.rt.stopping:
                raise Reject("worker is shutting down", requeue=True)
            self.rt.active += 1
            self.rt.tasks_started += self.task
        _publish_now(self.rt)
        return self.rt

    def __exit__(self, *_: object) -> None:
        with self.rt.lock:
            self.rt.active -= 1
            self.rt.last_activity = time.monotonic()
        _publish_now(self.rt)


@app.task(name=GENERATE_TASK, bind=True, max_retries=None)
def generate(self: Task, job_id: str) -> None:
    message = GenerateMessage(job_id=job_id)
    with Activity(runtime(self.request.hostname)) as rt:
        try:
            rt.runner.run(message.job_id)
        except InvalidTransition as exc:
            # Another live worker holds this job (an early redelivery): look again once it may have died.
            raise self.retry(countdown=settings.worker_heartbeat_s, exc=exc) from exc
        except Exception as exc:
            # The job store itself failed (Redis unreachable): the runner records every job failure
            # there, so only infrastructure errors get here. Acks-late does not cover exceptions (the
            # message would be acked and the job left running), so run it again shortly; the same
            # worker may reclaim its own job. The API's sweeper ends it if this keeps failing.
            log.warning("job %s: job store unavailable (%s); retrying", job_id, exc)
            raise self.retry(countdown=settings.worker_heartbeat_s, exc=exc, max_retries=30) from exc


@app.task(name=WARMUP_TASK, bind=True)
def warmup(self: Task, model_version: str) -> None:
    message = WarmupMessage(model_version=model_version)
    with Activity(runtime(self.request.hostname)) as rt:
        rt.runner.warm(message.model_version)
        rt.store.fleet.clear_prewarm(settings.worker_queue)
