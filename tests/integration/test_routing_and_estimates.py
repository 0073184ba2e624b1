"""Which pool a job goes to, and the run estimates the runtime routes give, from jobs actually run."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import SMALL_REQUEST, wait_job

pytestmark = pytest.mark.integration

MODELS = "/v1/models/skywork-skyreels-v2"


def test_run_estimate_from_history_or_plainly_none(api: httpx.Client) -> None:
    none = api.get(f"{MODELS}/run-estimate", params={"gpu_type": "B200"}).json()
    assert none["has_history"] is False and "no history yet" in none["note"]
    assert none["cost_per_gpu_hour_usd"] == 7.15 and none["warm"]["request_ms"] is None
    wait_job(api, api.post("/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST).json()["id"])
    cpu = api.get(f"{MODELS}/run-estimate", params={"model_version": "tiny-random", "region": "local"}).json()
    assert cpu["has_history"] is True and cpu["warm"]["request_ms"] > 0 and cpu["warm"]["cost_usd"] == 0.0


def test_automatic_routing_prefers_a_warm_pool(api: httpx.Client) -> None:
    status = api.get(
        "/v1/model-families/skywork-skyreels-v2/status", params={"version": "tiny-random"}
    ).json()
    warm = {p["region"] for p in status["pools"] if p["status"] == "warm"}
    assert "local" in warm
    body = {k: v for k, v in SMALL_REQUEST.items() if k != "region"}
    job = api.post("/v1/inference/skywork-skyreels-v2", json=body).json()
    assert job["region"] in warm
    assert wait_job(api, job["id"])["status"] == "succeeded"
