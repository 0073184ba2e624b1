"""Brings workers back in the embedded stack: follows `shared.scaling.workers_to_start` for each pool,
and restarts the long-lived services it is asked to keep up (the webhook delivery worker) if they die.

On Kubernetes, KEDA plays this part from the same rule (a ScaledJob on the pool's queue list), and a
Deployment restarts the services.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.dev.stack import Stack
from shared.backoff import backoff_s
from shared.broker import broker_queue_length, make_celery
from shared.fleet import Fleet
from shared.scaling import workers_to_start
from shared.settings import PoolConfig, Settings

log = logging.getLogger(__name__)


@dataclass
class ManagedPool:
    pool: PoolConfig
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for this pool's workers (idle timeout, device...)."""
    module: str = "workers"
    """What `python -m` runs as the worker."""
    max_workers: int = 1
    """At most this many workers at once (KEDA: `maxReplicaCount`); one on a laptop."""
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        settings: Settings,
        pools: list[ManagedPool],
        interval_s: float = 0.5,
        keep_up: dict[str, Callable[[], object]] | None = None,
    ) -> None:
        self.stack = stack
        self.pools = pools
        self.keep_up = keep_up or {}
        """Stack process name -> how to start it again once it has exited (one stopped through the
        stack is no longer its process, so it stays stopped)."""
        self.retry_at: dict[str, float] = {}
        self.failed_starts: dict[str, int] = {}
        self.interval_s = interval_s
        self.celery = make_celery(settings)
        self.fleet = Fleet.from_url(settings.redis_url)
        self.counter = itertools.count(1)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def started(self, queue: str) -> list[str]:
        """Names of the workers this supervisor started for a pool, oldest first."""
        return [name for mp in self.pools if mp.pool.queue == queue for name, _ in mp.children]

    def tick(self) -> None:
        self._scale()
        self._restart_exited()

    def _scale(self) -> None:
        live = self.fleet.live(mp.pool.queue for mp in self.pools)
        for mp in self.pools:
            queue = mp.pool.queue
            live_names = {hb.worker for hb in live if hb.queue == queue}
            mp.children = [
                (n, p) for n, p in mp.children if p.poll() is None or f"{n}@reelforge" in live_names
            ]
            # Started but not consuming yet (no heartbeat): KEDA's pending Jobs, whose pod is not Ready.
            booting = sum(
                1 for n, p in mp.children if p.poll() is None and f"{n}@reelforge" not in live_names
            )
            # Jobs and prewarms alike: a prewarm is a `reelforge.warmup` task on this list.
            queued = broker_queue_length(self.celery, queue)
            count = workers_to_start(queued, len(live_names) + booting, booting, mp.max_workers)
            for _ in range(count):
                name = f"{queue.replace('.', '-')}-{next(self.counter)}"
                env = {
                    "REELFORGE_WORKER_GPU_TYPE": mp.pool.gpu_type,
                    "REELFORGE_WORKER_REGION": mp.pool.region,
                    "REELFORGE_WORKER_NAME": f"{name}@reelforge",
                    **mp.env,
                }
                log.info("starting %s for %s (queued=%d)", name, queue, queued)
                mp.children.append((name, self.stack.spawn(name, [sys.executable, "-m", mp.module], env)))

    def _restart_exited(self) -> None:
        """Start again each kept-up service that exited; one that keeps failing is retried with a
        doubling delay (up to a minute), and never stops the pools' scaling."""
        for name, start in self.keep_up.items():
            if self.stop_event.is_set():
                return  # the stack is being stopped: nothing may start behind its back
            proc = self.stack.procs.get(name)
            if proc is None or proc.poll() is None or time.monotonic() < self.retry_at.get(name, 0):
                continue
            log.warning("%s exited with code %s: starting it again", name, proc.returncode)
            try:
                start()
            except Exception:
                self.failed_starts[name] = self.failed_starts.get(name, 0) + 1
                delay = self.restart_delay_s(name)
                self.retry_at[name] = time.monotonic() + delay
                log.exception("%s did not start again; next try in %.0fs", name, delay)
            else:
                self.failed_starts.pop(name, None)

    def restart_delay_s(self, name: str) -> float:
        """How long to wait before starting `name` again after its failed starts: 1 s doubling, at
        most a minute."""
        return backoff_s(self.failed_starts.get(name, 0), 1.0, 60.0)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("supervisor tick failed")
