"""The embedded supervisor and KEDA start the same number of workers from the same state, and a solo
worker holds no task beyond the one it runs (KEDA sees only the queue's list).

One world, real Redis, the real API and a real worker: the supervisor's decision is what its
`tick()` spawns; KEDA's is a transcription of its ScaledJob algorithm (KEDA 2.16,
`pkg/scaling/scaledjob/metrics.go` and `pkg/scaling/executor/scale_jobs.go`) fed the parameters of
the ScaledJob that `k8s/` renders, the list length of its `listName` and the Jobs that world implies
(each worker process a Job; Ready once it publishes a heartbeat, as its readiness probe says).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis

from scheduler.dev.stack import Stack, free_port, wait_until
from scheduler.dev.supervisor import ManagedPool, Supervisor
from shared.broker import WarmupMessage, enqueue_warmup, make_celery
from shared.fleet import Fleet
from shared.settings import PoolConfig, Settings
from tests.deploy import keda_jobs_to_create, kustomize, pool_overlays

pytestmark = pytest.mark.integration

HOLD_KEY = "reelforge-test:hold"  # tests/fixtures/held_worker.py holds while it exists
"""tests/fixtures/held_worker.py's key (not imported: importing it patches the worker in this process)."""
POOL = PoolConfig(gpu_type="CPU", region="scale", model_versions=["tiny-random"])
KEY = "scaling-test-key"
JOB = {"prompt": "a cat", "width": 48, "height": 32, "num_frames": 17, "num_inference_steps": 4,
       "model_version": "tiny-random", "gpu_type": "CPU", "region": "scale"}  # fmt: skip


@dataclass
class RecordingStack(Stack):
    """Workers the supervisor starts are stand-ins that never consume: the state stays put between
    the two decisions, and each one counts as a Job that is not Ready."""

    stand_ins: list[str] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        if not name.startswith(POOL.queue.replace(".", "-")):  # not one of the supervisor's workers
            return super().spawn(name, argv, extra_env)
        self.stand_ins.append(name)
        return super().spawn(name, [sys.executable, "-c", "import time; time.sleep(600)"], extra_env)


@dataclass
class World:
    stack: RecordingStack
    api: httpx.Client
    r: redis.Redis
    supervisor: Supervisor
    managed: ManagedPool
    spec: dict[str, Any]
    decisions: list[tuple[str, int, int]] = field(default_factory=list)

    def observe(self) -> tuple[int, int, int]:
        """(list length, Jobs not finished, Jobs not Ready) as KEDA would count them."""
        live = Fleet(self.r).live([POOL.queue])
        stand_ins = [p for _, p in self.managed.children if p.poll() is None]
        return (
            int(self.r.llen(self.spec["triggers"][0]["metadata"]["listName"])),
            len(live) + len(stand_ins),
            len(stand_ins),
        )

    def decide(self, what: str) -> int:
        waiting, running, pending = self.observe()
        keda = keda_jobs_to_create(self.spec, waiting, running, pending)
        before = len(self.stack.stand_ins)
        self.supervisor.tick()
        started = len(self.stack.stand_ins) - before
        self.decisions.append((what, keda, started))
        assert started == keda, f"{what}: supervisor started {started}, KEDA would create {keda}"
        return started

    def end_stand_ins(self) -> None:
        for name, _ in self.managed.children:
            self.stack.kill(name)
        wait_until(lambda: all(p.poll() is not None for _, p in self.managed.children), 10, "stand-ins")

    def submit(self) -> str:
        response = self.api.post("/v1/inference/skywork-skyreels-v2", json=JOB)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, job_id: str) -> str:
        return str(self.api.get(f"/v1/jobs/{job_id}").json()["status"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("scaling")
    stack = RecordingStack(root)
    # The parameters KEDA runs with: a pool ScaledJob as k8s/ renders it, its trigger on this pool.
    (scaled_job,) = [d for d in kustomize(pool_overlays()[0]) if d["kind"] == "ScaledJob"]
    spec = scaled_job["spec"]
    spec["triggers"][0]["metadata"]["listName"] = POOL.queue
    stack.env.update(
        REELFORGE_API_KEYS=KEY,
        REELFORGE_POOLS=json.dumps([POOL.model_dump()]),
        REELFORGE_STORAGE_BACKEND="local",
        REELFORGE_STORAGE_DIR=str(root / "storage"),
        REELFORGE_WORKER_HEARTBEAT_S="2",
        REELFORGE_WORKER_IDLE_TIMEOUT_S="600",
    )
    try:
        url = stack.start_redis(free_port(), persist=False)
        base = stack.start_api(free_port())
        settings = Settings(_env_file=None, redis_url=url, pools=[POOL])  # type: ignore[call-arg]
        managed = ManagedPool(POOL, module="tests.fixtures.held_worker", max_workers=spec["maxReplicaCount"])
        supervisor = Supervisor(stack, settings, [managed])  # ticked by the test, not its thread
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as api:
            yield World(
                stack, api, redis.Redis.from_url(url, decode_responses=True), supervisor, managed, spec
            )
    finally:
        stack.stop()


def test_supervisor_and_keda_agree_and_a_solo_worker_holds_only_its_task(world: World) -> None:
    assert world.spec["scalingStrategy"]["strategy"] == "accurate"
    assert world.decide("cold, nothing queued") == 0

    # A prewarm is a warmup task on the pool's list: one worker, from cold, with no job queued.
    settings = Settings(_env_file=None, redis_url=world.stack.env["REELFORGE_REDIS_URL"])  # type: ignore[call-arg]
    enqueue_warmup(make_celery(settings), POOL.queue, WarmupMessage(model_version="tiny-random"))
    assert world.decide("prewarm, cold") == 1
    assert world.decide("prewarm, its worker starting") == 0
    world.end_stand_ins()

    # A real worker takes the prewarm; once warm and idle, nothing is waiting.
    proc = Stack.spawn(
        world.stack,
        "worker", [sys.executable, "-m", "tests.fixtures.held_worker"],
        {"REELFORGE_WORKER_GPU_TYPE": "CPU", "REELFORGE_WORKER_REGION": "scale"},
    )  # fmt: skip
    fleet = Fleet(world.r)
    wait_until(
        lambda: world.r.llen(POOL.queue) == 0 and any(hb.state == "warm" for hb in fleet.live([POOL.queue])),
        120, "worker warm", proc,
    )  # fmt: skip
    assert world.decide("one warm idle worker") == 0

    # A running job has left the list: it is not waiting, and no worker is started for it.
    world.r.set(HOLD_KEY, "1")
    first = world.submit()
    wait_until(lambda: world.status(first) == "running", 60, "first job running", proc)
    assert world.observe()[0] == 0
    assert world.decide("one job running, nothing waiting") == 0

    # Two more wait. The solo worker holds none of them: both stay on the list, its only unacked
    # task is the one it runs, for as long as that runs.
    waiting = [world.submit(), world.submit()]
    wait_until(lambda: world.r.llen(POOL.queue) == 2, 10, "two jobs waiting", proc)
    for _ in range(20):  # two heartbeat periods of the worker, checked every 0.2 s
        assert world.r.llen(POOL.queue) == 2 and world.r.hlen("unacked") == 1
        assert all(world.status(j) == "queued" for j in waiting)
        time.sleep(0.2)
    assert world.decide("one running, two waiting") == 2
    # With two starting and the cap (maxReplicaCount) near, KEDA's accurate strategy fills up to it.
    assert world.decide("one running, two waiting, two starting") == 1
    assert world.decide("at the cap") == 0
    world.end_stand_ins()

    # Released, the one worker runs all three: nothing it was handed was lost or held back.
    world.r.delete(HOLD_KEY)
    for job_id in [first, *waiting]:
        wait_until(lambda j=job_id: world.status(j) == "succeeded", 120, f"job {job_id}", proc)
    assert world.decide("all done") == 0
    assert [k for _, k, _ in world.decisions] == [0, 1, 0, 0, 0, 2, 1, 0, 0]
