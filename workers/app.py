"""The Celery worker: one process per GPU (`-P solo`), consuming its pool's queue.

Start with `python -m workers` (or `celery -A workers.app worker -P solo -Q <queue>`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from celery import Task
from celery.signals import worker_ready, worker_shutdown

from shared.broker import GENERATE_TASK, GenerateMessage, make_celery
from shared.errors import InvalidTransition
from shared.jobstore import JobStore
from shared.settings import get_settings
from shared.storage import make_storage
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
    stop: threading.Event


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime(name: str) -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            device = settings.worker_device or ("cuda" if torch.cuda.is_available() else "cpu")
            store = JobStore.from_url(settings.redis_url, settings.job_ttl_s)
            holder = PipelineHolder(device, settings.hf_home)
            runner = JobRunner(settings, store, make_storage(settings), holder, name)
            _runtime = Runtime(name, store, runner, holder, threading.Event())
        return _runtime


def heartbeat_info(rt: Runtime) -> dict[str, Any]:
    return {
        "worker": rt.name,
        "queue": settings.worker_queue,
        "gpu_type": settings.worker_gpu_type,
        "region": settings.worker_region,
        "model_version": rt.holder.version,
        "state": "busy" if rt.runner.current_job else ("warm" if rt.holder.pipe is not None else "starting"),
        "current_job": rt.runner.current_job,
        "cold_start_s": rt.holder.cold_start_s,
        "beat_at": time.time(),
    }


def _beat_forever(rt: Runtime) -> None:
    # A liveness key with a TTL of three beats: a killed worker stops counting within that time, and
    # its job can then be taken over by whichever worker gets the redelivered task.
    while not rt.stop.is_set():
        try:
            rt.store.beat(rt.name, heartbeat_info(rt), ttl_s=settings.worker_heartbeat_s * 3)
        except Exception:
            log.exception("heartbeat failed")
        rt.stop.wait(settings.worker_heartbeat_s)


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    rt = runtime(sender.hostname)
    threading.Thread(target=_beat_forever, args=(rt,), name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _runtime is not None:
        _runtime.stop.set()
        _runtime.store.forget_worker(_runtime.name)


@app.task(name=GENERATE_TASK, bind=True, max_retries=None)
def generate(self: Task, job_id: str) -> None:
    message = GenerateMessage(job_id=job_id)
    try:
        runtime(self.request.hostname).runner.run(message.job_id)
    except InvalidTransition as exc:
        # Another live worker holds this job (an early redelivery): look again once it may have died.
        raise self.retry(countdown=settings.worker_heartbeat_s * 3, exc=exc) from exc
