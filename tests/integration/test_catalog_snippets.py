"""The catalog's route check, reliability and run-estimate routes, from jobs actually run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.support import KEY_A, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration

MODELS = "/v1/models/skywork-skyreels-v2"


def snippet(fixtures_dir: Path, name: str, live: Live, **env: str) -> subprocess.CompletedProcess:
    full = os.environ | {"FORGE_API_BASE": live.base, "FORGE_API_KEY": KEY_A} | env
    return subprocess.run(
        ["bash", str(fixtures_dir / "snippets" / name)], env=full, capture_output=True, text=True
    )


def test_route_check_snippet_runs_unchanged(live: Live, fixtures_dir: Path) -> None:
    run = snippet(fixtures_dir, "route-check.sh", live)
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert (
        body["route"] == "/v1/inference/skywork-skyreels-v2"
        and body["model_version"] == "df-1-3b-540p-diffusers"
    )
    assert [(r["gpu_type"], r["region"], r["runtime_status"]) for r in body["routes"]] == [
        ("B200", "us-central1", "cold")
    ]


def test_route_check_for_unserved_target_is_404(api: httpx.Client) -> None:
    response = api.get(
        f"{MODELS}/inference-routes", params={"model_version": "tiny-random", "gpu_type": "H200"}
    )
    assert response.status_code == 404 and "CPU/local" in response.json()["error"]["message"]


def test_reliability_snippet_reads_measured_targets(
    live: Live, api: httpx.Client, fixtures_dir: Path
) -> None:
    for seed in (1, 2):
        job = api.post("/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST | {"seed": seed}).json()
        assert wait_job(api, job["id"])["status"] == "succeeded"
    target = {"FORGE_MODEL_VERSION": "tiny-random", "FORGE_GPU_TYPE": "CPU", "FORGE_REGION": "local"}
    run = snippet(fixtures_dir, "reliability.sh", live, **target)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "skywork-skyreels-v2 reliability=verified supported=1/1"
    assert lines[1] == "filters: model_version=tiny-random, gpu_type=CPU, region=local"
    assert lines[2].startswith(
        "export FORGE_GPU_TYPE=CPU FORGE_REGION=local # fastest supported + lowest-cost supported: p50="
    )
    assert lines[2].endswith("ms, warm_cost_usd=0.0, success=100%")

    body = api.get(f"{MODELS}/reliability", params={"model_version": "tiny-random", "region": "local"}).json()
    row = body["targets"][0]
    assert row["samples"] >= 2 and row["observed_success_rate"] == 1.0
    assert 0 < row["request_ms_p50"] <= row["request_ms_p95"]
    assert 0 < row["model_ms_p50"] <= row["request_ms_p50"]
    assert body["fastest_supported_target"]["request_ms_p50"] == row["request_ms_p50"]


def test_reliability_without_history_says_so(live: Live, fixtures_dir: Path) -> None:
    run = snippet(fixtures_dir, "reliability.sh", live)  # the catalog's B200 target: configured, never run
    assert run.returncode == 1
    assert "No supported GPU/region target returned." in run.stderr
    assert json.loads(run.stdout[run.stdout.index("{") :]) == {
        "status_counts": {"not probed": 1},
        "failure_reason_counts": {},
    }


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
