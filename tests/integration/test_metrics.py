"""`GET /metrics` on the real stack: behind an API key, and every series the issue lists, with the
values the jobs run here leave (workers report through Redis)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.support import ROUTE, SMALL_REQUEST, Live, wait_for, wait_job
from tests.integration.test_webhook_delivery import Receiver, receiver  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

LOCAL = "reelforge.cpu.local"


def scrape(api: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_need_a_key(live: Live) -> None:
    response = httpx.get(f"{live.base}/metrics")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_metrics_show_jobs_queues_workers_durations_webhooks_and_latency(
    api: httpx.Client,
    receiver: Receiver,  # noqa: F811
) -> None:
    hook = {"webhook_url": receiver.url("/metrics-hook")}
    done = wait_job(api, api.post(ROUTE, json=SMALL_REQUEST | hook).json()["id"])
    assert done["status"] == "succeeded"
    # Tasks of jobs canceled by earlier tests may still wait in the idle pool's broker queue.
    waiting = value(scrape(api), "reelforge_queue_length", pool="reelforge.cpu.idle")
    api.post(ROUTE, json=SMALL_REQUEST | {"region": "idle"})
    samples = wait_for(
        lambda: (
            (s := scrape(api)) and value(s, "reelforge_webhook_deliveries_total", outcome="succeeded") and s
        ),
        30,
        "the webhook delivery to be counted",
    )
    ended = value(
        samples, "reelforge_jobs_ended_total", state="succeeded", pool=LOCAL, model_version="tiny-random"
    )
    assert ended == 1
    assert value(samples, "reelforge_jobs", state="queued", pool="reelforge.cpu.idle") == 1
    assert value(samples, "reelforge_jobs", state="running", pool=LOCAL) == 0
    assert value(samples, "reelforge_queue_length", pool="reelforge.cpu.idle") == waiting + 1
    assert value(samples, "reelforge_queue_held", pool="reelforge.cpu.idle") == 0
    assert value(samples, "reelforge_workers", pool=LOCAL, state="warm") >= 1
    for phase in ("queue_wait", "model", "encode", "upload"):
        labels = {"phase": phase, "pool": LOCAL, "model_version": "tiny-random"}
        assert value(samples, "reelforge_job_duration_seconds_count", **labels) == 1, phase
        assert value(samples, "reelforge_job_duration_seconds_bucket", **labels, le="+Inf") == 1, phase
    latency = {"route": "/v1/jobs/{job_id}", "method": "GET", "status": "200"}
    assert value(samples, "reelforge_http_request_duration_seconds_count", **latency) >= 1


def test_running_job_counts_as_running_and_held(live: Live, api: httpx.Client) -> None:
    slow = SMALL_REQUEST | {"num_frames": 65, "width": 128, "height": 128, "num_inference_steps": 60,
                            "causal_block_size": 1, "ar_step": 0}  # fmt: skip
    job = api.post(ROUTE, json=slow).json()
    wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running", 60, "the job to start")
    samples = scrape(api)
    assert value(samples, "reelforge_jobs", state="running", pool=LOCAL) == 1
    assert value(samples, "reelforge_queue_held", pool=LOCAL) == 1
    assert value(samples, "reelforge_queue_length", pool=LOCAL) == 1
    assert value(samples, "reelforge_workers", pool=LOCAL, state="busy") == 1
    api.post(f"/v1/jobs/{job['id']}/cancel")
