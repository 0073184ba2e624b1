"""Workers that come and go on the real stack: prewarm from cold, the status cycle, idle shutdown and
comeback, a job submitted during a shutdown, keep-warm. The `elastic` pool's workers are started on
demand by the supervisor and stop after 3 idle seconds."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import keys
from shared.fleet import Heartbeat
from tests.integration.support import (
    ELASTIC_IDLE_TIMEOUT_S,
    ROUTE,
    SMALL_REQUEST,
    Live,
    fleet,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.integration

STATUS = "/v1/model-families/skywork-skyreels-v2/status"
ELASTIC = SMALL_REQUEST | {"region": "elastic"}
QUEUE = keys.pool_queue("CPU", "elastic")


def pool(api: httpx.Client, region: str) -> dict[str, Any]:
    body = api.get(STATUS, params={"version": "tiny-random"}).json()
    return next(p for p in body["pools"] if p["region"] == region)


def wait_cold(api: httpx.Client, region: str = "elastic", timeout_s: float = 30) -> None:
    wait_for(
        lambda: pool(api, region)["status"] == "cold" and pool(api, region)["live_workers"] == 0,
        timeout_s,
        "cold",
    )


def wait_warm_worker(live: Live, api: httpx.Client) -> str:
    """Make sure an elastic worker is warm (prewarm if needed); its name."""
    api.post("/v1/model-families/skywork-skyreels-v2/start",
             json={"version": "tiny-random", "gpu_type": "CPU", "region": "elastic"}, timeout=90)  # fmt: skip
    workers = wait_for(
        lambda: [w for w in pool(api, "elastic")["workers"] if w["state"] == "warm"], 30, "warm"
    )
    return str(workers[0]["worker"])


def run_snippet(snippets: Path, name: str, base: str, **target: str) -> subprocess.CompletedProcess:
    env = os.environ | {"FORGE_API_BASE": base, "FORGE_API_KEY": "test-key-a"} | target
    script = snippets / name
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)


TARGET = {"FORGE_MODEL_VERSION": "tiny-random", "FORGE_GPU_TYPE": "CPU", "FORGE_REGION": "elastic"}


def test_prewarm_from_cold_status_cycle_and_idle_shutdown(
    live: Live, api: httpx.Client, snippets: Path
) -> None:
    wait_cold(api)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            state = pool(api, "elastic")["status"]
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    cold = run_snippet(snippets, "warmup.sh", live.base, **TARGET)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.startswith("skywork-skyreels-v2 cold-started on CPU in elastic; startup_ms=")
    assert cold.stdout.strip().endswith("keep_warm=False")
    warm = run_snippet(snippets, "warmup.sh", live.base, **TARGET)
    assert warm.stdout.strip() == "skywork-skyreels-v2 already warm on CPU in elastic; keep_warm=False"

    wait_cold(api, timeout_s=30)  # 3 s idle timeout, then a warm shutdown
    stop.set()
    watcher.join()
    assert seen[:3] == ["cold", "starting", "warm"] and seen[-1] == "cold", seen
    assert fleet(live).cold_starts_s("tiny-random", QUEUE)


def test_idle_shutdown_then_comeback_on_new_work(live: Live, api: httpx.Client) -> None:
    first = wait_warm_worker(live, api)
    wait_cold(api)
    assert first not in {w["worker"] for w in pool(api, "elastic")["workers"]}
    job = api.post(ROUTE, json=ELASTIC).json()
    done = wait_job(api, job["id"], timeout_s=90)
    assert done["status"] == "succeeded"
    assert done["worker"] != first and (done["gpu_type"], done["region"]) == ("CPU", "elastic")


def test_job_submitted_during_shutdown_still_succeeds(live: Live, api: httpx.Client) -> None:
    stopping = wait_warm_worker(live, api)

    def is_stopping() -> bool:
        return any(
            w["worker"] == stopping and w["state"] == "stopping" for w in pool(api, "elastic")["workers"]
        )

    wait_for(is_stopping, 20, "the worker to start stopping")
    job = api.post(ROUTE, json=ELASTIC).json()
    done = wait_job(api, job["id"], timeout_s=90)
    assert done["status"] == "succeeded", done
    assert done["worker"] != stopping


def test_run_until_stopped_ignores_idle_timeout_until_stop(
    live: Live, api: httpx.Client, snippets: Path
) -> None:
    started = run_snippet(snippets, "warmup.sh", live.base, **TARGET, FORGE_KEEP_WARM="true")
    assert started.returncode == 0 and started.stdout.strip().endswith("keep_warm=True"), started

    def idle_twice_the_timeout() -> Heartbeat | None:
        """A heartbeat of an elastic worker idle for twice the idle timeout: one kept warm past it."""
        beats = [hb for hb in fleet(live).live([QUEUE]) if hb.idle_since is not None]
        return next((hb for hb in beats if hb.beat_at - hb.idle_since >= 2 * ELASTIC_IDLE_TIMEOUT_S), None)  # type: ignore[operator]

    beat = wait_for(idle_twice_the_timeout, 30, "an elastic worker idle for twice its idle timeout")
    assert beat.state == "warm" and beat.keep_warm
    assert pool(api, "elastic")["status"] == "warm" and pool(api, "elastic")["keep_warm"] is True
    stopped = api.post("/v1/model-families/skywork-skyreels-v2/stop",
                       json={"version": "tiny-random", "gpu_type": "CPU", "region": "elastic"})  # fmt: skip
    assert stopped.status_code == 200 and stopped.json()["stopped"][0]["keep_warm"] is False
    wait_cold(api, timeout_s=20)
