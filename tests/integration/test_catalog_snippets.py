"""The catalog page's shell snippets, run verbatim against the stack (only sizes and the model version
made CPU-sized): inference, route check and reliability."""

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


def snippet(snippets: Path, name: str, live: Live, **env: str) -> subprocess.CompletedProcess:
    full = os.environ | {"FORGE_API_BASE": live.base, "FORGE_API_KEY": KEY_A} | env
    return subprocess.run(["bash", str(snippets / name)], env=full, capture_output=True, text=True)


def test_route_check_snippet_runs_unchanged(live: Live, snippets: Path) -> None:
    run = snippet(snippets, "route-check.sh", live)
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert (
        body["route"] == "/v1/inference/skywork-skyreels-v2"
        and body["model_version"] == "df-1-3b-540p-diffusers"
    )
    assert [(r["gpu_type"], r["region"], r["runtime_status"]) for r in body["routes"]] == [
        ("B200", "us-central1", "cold")
    ]


def test_reliability_snippet_reads_measured_targets(live: Live, api: httpx.Client, snippets: Path) -> None:
    for seed in (1, 2):
        job = api.post("/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST | {"seed": seed}).json()
        assert wait_job(api, job["id"])["status"] == "succeeded"
    target = {"FORGE_MODEL_VERSION": "tiny-random", "FORGE_GPU_TYPE": "CPU", "FORGE_REGION": "local"}
    run = snippet(snippets, "reliability.sh", live, **target)
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


def test_reliability_without_history_says_so(live: Live, snippets: Path) -> None:
    run = snippet(snippets, "reliability.sh", live)  # the catalog's B200 target: configured, never run
    assert run.returncode == 1
    assert "No supported GPU/region target returned." in run.stderr
    assert json.loads(run.stdout[run.stdout.index("{") :]) == {
        "status_counts": {"not probed": 1},
        "failure_reason_counts": {},
    }


def test_catalog_inference_snippet_runs_verbatim(live: Live, api: httpx.Client, snippets: Path) -> None:
    script = (snippets / "inference.sh").read_text()
    # Only the payload's model version and CPU-sized width, height and frame count change.
    for old, new in (
        ('"width": 960', '"width": 32'),
        ('"height": 544', '"height": 16'),
        ('"num_frames": 97', '"num_frames": 17'),
        ('"model_version": "df-1-3b-540p-diffusers"', '"model_version": "tiny-random"'),
    ):
        assert old in script
        script = script.replace(old, new)
    for base in (live.base, live.base + "/v1"):  # the snippet accepts a base with or without /v1
        env = os.environ | {"FORGE_API_BASE": base, "FORGE_API_KEY": KEY_A}
        run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        job = json.loads(run.stdout)
        assert job["status"] == "queued"
        done = wait_job(api, job["id"])
        assert done["status"] == "succeeded", done
        assert (done["result"]["frames"], done["result"]["width"], done["result"]["height"]) == (17, 32, 16)
        assert done["request"]["num_inference_steps"] == 20 and done["request"]["ar_step"] == 5


def test_snippet_without_key_fails_with_catalog_message(live: Live, snippets: Path) -> None:
    env = os.environ | {"FORGE_API_BASE": live.base, "FORGE_API_KEY": ""}
    run = subprocess.run(["bash", str(snippets / "inference.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert "Set FORGE_API_KEY" in run.stderr


def test_warmup_snippet_on_an_unserved_target_exits_non_zero(live: Live, snippets: Path) -> None:
    # The verbatim snippet reads whatever JSON it gets, so it prints its "already warm" line from our
    # error body; the exit status and curl's message tell the truth (README, "The API in brief").
    run = snippet(snippets, "warmup.sh", live, FORGE_MODEL_VERSION="df-14b-720p-diffusers")
    assert run.returncode == 22
    assert "error: 422" in run.stderr
    assert run.stdout.strip().startswith("runtime already warm on scheduler-selected GPU")
