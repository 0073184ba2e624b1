"""What one API key may see and change of another's: not its job ids, not its keep-warm."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.support import KEY_B, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration

ROUTE = "/v1/inference/skywork-skyreels-v2"
FAMILY = "/v1/model-families/skywork-skyreels-v2"
LONG = SMALL_REQUEST | {"num_frames": 65, "width": 128, "height": 128, "num_inference_steps": 60,
                        "causal_block_size": 1, "ar_step": 0}  # fmt: skip
LOCAL = {"version": "tiny-random", "gpu_type": "CPU", "region": "local"}


def local_workers(client: httpx.Client) -> list[dict]:
    body = client.get(f"{FAMILY}/status", params={"version": "tiny-random"}).json()
    return next(p for p in body["pools"] if p["region"] == "local")["workers"]


def test_status_shows_only_the_callers_own_current_job(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=LONG).json()
    deadline = time.monotonic() + 60
    while not any(w["current_job"] == job["id"] for w in local_workers(api)):
        assert time.monotonic() < deadline, "the job never showed as the worker's current job"
        time.sleep(0.1)
    with live.client(KEY_B) as other:
        seen_by_other = local_workers(other)
    assert seen_by_other and all(w["current_job"] is None for w in seen_by_other)
    api.post(f"/v1/jobs/{job['id']}/cancel")
    wait_job(api, job["id"])


def test_keep_warm_belongs_to_the_key_that_set_it(live: Live, api: httpx.Client) -> None:
    started = api.post(f"{FAMILY}/start", json=LOCAL | {"run_until_stopped": True})
    assert started.status_code == 200 and started.json()["keep_warm"] is True
    with live.client(KEY_B) as other:
        stopped = other.post(f"{FAMILY}/stop", json=LOCAL).json()
    assert stopped["stopped"] == [{"gpu_type": "CPU", "region": "local", "keep_warm": True}]
    released = api.post(f"{FAMILY}/stop", json=LOCAL).json()
    assert released["stopped"] == [{"gpu_type": "CPU", "region": "local", "keep_warm": False}]
