"""The Celery side of a worker: one process per GPU (`-P solo`), consuming its pool's queue.

Start with `python -m workers` (or `celery -A workers.tasks worker -P solo -Q <queue>`). The tasks
only wire the queue to `workers.runner` (one job) and `workers.lifecycle` (state, heartbeats, idle
shutdown); a task that reaches a stopping worker goes back on the queue.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from celery import Task
from celery.exceptions import Ignore
from celery.signals import worker_ready, worker_shutdown

from shared import keys
from shared.broker import GenerateMessage, WarmupMessage, make_celery
from shared.errors import InvalidTransition
from shared.fleet import TaskOutcome
from shared.jobstore import JobStore
from shared.metrics import make_recorder
from shared.settings import get_settings
from shared.states import JobStatus
from shared.storage import make_storage
from workers.lifecycle import Activity, WorkerLife, preload, watch
from workers.pipeline import PipelineHolder
from workers.runner import JobRunner

log = logging.getLogger(__name__)
settings = get_settings()
celery_app = make_celery(settings)

_life: WorkerLife | None = None
_life_lock = threading.Lock()


def worker_life(name: str) -> WorkerLife:
    """This process's worker state, created on first use and kept for the process's life."""
    global _life
    with _life_lock:
        if _life is None:
            device = settings.worker_device or ("cuda" if torch.cuda.is_available() else "cpu")
            store = JobStore.from_url(settings.redis_url, settings.job_ttl_s, settings.max_attempts)
            holder = PipelineHolder(device, settings.hf_home, settings.compile_blocks)
            storage = make_storage(settings)
            runner = JobRunner(settings, store, storage, holder, name)
            store.listeners.append(make_recorder(store.r))  # what GET /metrics reports (best effort)
            _life = WorkerLife(name, settings, store, runner, holder)
        return _life


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    life = worker_life(sender.hostname)
    threading.Thread(target=watch, args=(life,), name="heartbeat", daemon=True).start()
    threading.Thread(target=preload, args=(life,), name="preload", daemon=True).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _life is not None:
        _life.stop.set()
        _life.store.fleet.forget(_life.name, _life.queue)


@celery_app.task(name=keys.GENERATE_TASK, bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    message = GenerateMessage(job_id=job_id)
    with Activity(worker_life(self.request.hostname)) as life:
        try:
            outcome = life.runner.run(message.job_id)
            life.saw(job_id, outcome)
        except InvalidTransition as exc:
            # Another live worker holds this job (an early redelivery): look again once it may have died.
            life.saw(job_id, TaskOutcome.DEFERRED)
            raise self.retry(countdown=settings.worker_heartbeat_s, exc=exc) from exc
        except Exception as exc:
            life.saw(job_id, TaskOutcome.DEFERRED)
            # The job store itself failed (Redis unreachable): the runner records every job failure
            # there, so only infrastructure errors get here. Acks-late does not cover exceptions (the
            # message would be acked and the job left running), so run it again shortly; the same
            # worker may reclaim its own job. The API's sweeper ends it if this keeps failing.
            log.warning("job %s: job store unavailable (%s); retrying", job_id, exc)
            raise self.retry(countdown=settings.worker_heartbeat_s, exc=exc, max_retries=30) from exc
    if outcome in (TaskOutcome.STOPPED, TaskOutcome.DROPPED) and _canceled(life.store, job_id):
        # Flower would show a canceled job's task as SUCCESS: report it revoked, as a revoke from
        # Flower itself would, and end it without the succeeded event (Ignore acknowledges it).
        self.send_event("task-revoked", terminated=False, signum=None, expired=False)
        raise Ignore()


def _canceled(store: JobStore, job_id: str) -> bool:
    job = store.get(job_id)
    return job is not None and job.status == JobStatus.CANCELED


@celery_app.task(name=keys.WARMUP_TASK, bind=True)
def warmup(self: Task, model_version: str) -> None:
    message = WarmupMessage(model_version=model_version)
    with Activity(worker_life(self.request.hostname)) as life:
        life.runner.warm(message.model_version)
        life.store.fleet.clear_prewarm(settings.worker_queue)
