"""Signed webhooks on the real stack: API, GPU-less CPU worker, the delivery worker, a real receiver.

The receiver checks every signature with the `standardwebhooks` reference package.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.integration.support import KEY_B, SMALL_REQUEST, Live, wait_for, wait_job
from tests.loopback import LoopbackServer

pytestmark = pytest.mark.integration


class Receiver:
    """Records every POST; answers each path from its script of statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: dict[str, list[int]] = {}
        self.always: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = LoopbackServer(self._answer)
        self.port = self.server.port

    def _answer(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        with self.lock:
            self.requests.append(
                {"path": request.path, "headers": dict(request.headers.items()), "body": body}
            )
            steps = self.script.get(request.path)
            return steps.pop(0) if steps else self.always.get(request.path, 200)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.stop()


def settled(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once every webhook delivery of it succeeded or gave up."""

    def done() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        hooks = job["webhooks"]
        return job if hooks and all(h["status"] != "pending" for h in hooks) else None

    return wait_for(done, 30, f"webhooks of {job_id} settled")


def without_links(event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    result = {k: v for k, v in data["result"].items() if not k.endswith(("_url", "_url_expires_at"))}
    # The preview link is signed afresh too: it differs whenever a second passes between attempts.
    rest = {k: v for k, v in data.items() if k != "preview_url"}
    return event | {"data": rest | {"result": result, "links": {"self": data["links"]["self"]}}}


def submit(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    resp = client.post("/v1/inference/skywork-skyreels-v2", json={**SMALL_REQUEST, **fields})
    assert resp.status_code == 202, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_signed_completed_webhook_retried_with_the_same_id(live: Live, receiver: Receiver) -> None:
    receiver.script["/retry"] = [503, 503]
    with live.client() as api:
        secret = api.get("/v1/webhooks/secret").json()["secret"]
        assert secret.startswith("whsec_")
        assert api.get("/v1/webhooks/secret").json()["secret"] == secret  # stable until rotated
        job = submit(api, webhook_url=receiver.url("/retry"))
        assert wait_job(api, job["id"])["status"] == "succeeded"
        view = settled(api, job["id"])

    hits = receiver.at("/retry")
    assert len(hits) == 3
    assert len({h["headers"]["webhook-id"] for h in hits}) == 1
    # The same event every time; only its video links are signed afresh for each attempt.
    events = [json.loads(h["body"]) for h in hits]
    assert len({json.dumps(without_links(e), sort_keys=True) for e in events}) == 1
    for hit in hits:
        payload = Webhook(secret).verify(hit["body"], hit["headers"])
        assert payload["type"] == "job.completed"
        assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
        assert payload["data"]["result"]["video_url"].startswith("http")
        datetime.fromisoformat(payload["timestamp"])
    assert httpx.get(payload["data"]["result"]["video_url"], timeout=10).status_code == 200

    [delivery] = view["webhooks"]
    assert delivery["id"] == hits[0]["headers"]["webhook-id"]
    assert delivery["type"] == "job.completed" and delivery["status"] == "succeeded"
    assert delivery["url"] == receiver.url("/retry")
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 503", "HTTP 503", None]
    assert all(a["latency_ms"] > 0 for a in delivery["attempts"])
    times = [datetime.fromisoformat(a["at"]) for a in delivery["attempts"]]
    assert times == sorted(times) and times[0] < times[-1]
    assert delivery["next_attempt_at"] is None


def test_event_filter_started_and_rate_limited_progress(live: Live, receiver: Receiver) -> None:
    with live.client() as api:
        secret = api.get("/v1/webhooks/secret").json()["secret"]
        job = submit(api, webhook_url=receiver.url("/events"), webhook_events_filter=["started", "progress"])
        done = wait_job(api, job["id"])
        assert done["status"] == "succeeded"
        view = settled(api, job["id"])

    # Every event was recorded as a delivery before the job ended, and every delivery has settled:
    # each POST received is one of their attempts, and nothing else is coming.
    hits = receiver.at("/events")
    assert len(hits) == sum(len(h["attempts"]) for h in view["webhooks"])
    payloads = [Webhook(secret).verify(h["body"], h["headers"]) for h in hits]
    types = [p["type"] for p in payloads]
    assert "job.completed" not in types
    assert types.count("job.started") == 1
    started = next(p for p in payloads if p["type"] == "job.started")
    assert started["data"]["status"] == "running" and started["data"]["started_at"]
    progress = [p["data"]["progress"] for p in payloads if p["type"] == "job.progress"]
    assert progress and all(p["step"] >= 1 for p in progress)
    # At most one progress event per second: far fewer than the job's denoising iterations.
    ran_s = (
        datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    ).total_seconds()
    assert len(progress) <= math.ceil(ran_s) + 1
    assert done["progress"]["total"] > len(progress)
    assert sorted(h["type"] for h in view["webhooks"]) == sorted(types)
    assert all(h["status"] == "succeeded" for h in view["webhooks"])


def test_secret_rotation_signs_with_both_during_the_overlap(live: Live, receiver: Receiver) -> None:
    with live.client(KEY_B) as api:
        old = api.get("/v1/webhooks/secret").json()["secret"]
        rotated = api.post("/v1/webhooks/secret/rotate", json={"overlap_s": 600}).json()
        new = rotated["secret"]
        assert new != old and rotated["previous_expires_at"]
        assert api.get("/v1/webhooks/secret").json()["secret"] == new
        job = submit(api, webhook_url=receiver.url("/rotate-overlap"))
        settled(api, job["id"])

        [hit] = receiver.at("/rotate-overlap")
        assert len(hit["headers"]["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(hit["body"], hit["headers"])  # receivers still on the old secret
        Webhook(new).verify(hit["body"], hit["headers"])  # and those already switched

        # Rotating again with no overlap retires `new` at once: only the newest one signs.
        newest = api.post("/v1/webhooks/secret/rotate", json={"overlap_s": 0}).json()
        assert newest["previous_expires_at"] is None
        job = submit(api, webhook_url=receiver.url("/rotate-after"))
        settled(api, job["id"])

    [hit] = receiver.at("/rotate-after")
    assert len(hit["headers"]["webhook-signature"].split(" ")) == 1
    Webhook(newest["secret"]).verify(hit["body"], hit["headers"])
    for retired in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(retired).verify(hit["body"], hit["headers"])
    # Other keys keep their own secret.
    with live.client() as api_a:
        assert api_a.get("/v1/webhooks/secret").json()["secret"] not in (old, new, newest["secret"])


def test_rotation_body_is_validated(live: Live) -> None:
    with live.client() as api:
        resp = api.post("/v1/webhooks/secret/rotate", json={"overlap_s": -1})
        assert resp.status_code == 422 and resp.json()["error"]["field"] == "overlap_s"
        assert httpx.get(f"{live.base}/v1/webhooks/secret").status_code == 401


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.10:8080/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::1]:8080/", "loopback"),  # the tests allow 127.0.0.0/8 only
        ("http://0xa9fea9fe/", "metadata"),  # a name that resolves to 169.254.169.254
        ("http://does-not-exist.invalid/hook", "does not resolve"),
        ("ftp://example.com/hook", "http(s)"),
    ],
)
def test_unsafe_webhook_urls_are_refused_at_submission(live: Live, url: str, rule: str) -> None:
    with live.client() as api:
        before = len(api.get("/v1/jobs", params={"limit": 100}).json()["jobs"])
        resp = api.post("/v1/inference/skywork-skyreels-v2", json={**SMALL_REQUEST, "webhook_url": url})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["field"] == "webhook_url"
        assert error["message"].startswith("webhook_url") and rule in error["message"]
        assert len(api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]) == before  # nothing queued


def test_failing_receiver_never_changes_the_result(live: Live, receiver: Receiver) -> None:
    receiver.always["/down"] = 500
    receiver.always["/gone"] = 404
    with live.client() as api:
        down = submit(api, webhook_url=receiver.url("/down"))
        gone = submit(api, webhook_url=receiver.url("/gone"))
        for job in (down, gone):
            assert wait_job(api, job["id"])["status"] == "succeeded"
        down_view, gone_view = settled(api, down["id"]), settled(api, gone["id"])

        # Retried on 5xx until the retry window (4 s here) ran out, then shown failed.
        [delivery] = down_view["webhooks"]
        assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
        assert len(delivery["attempts"]) >= 3
        assert {a["status_code"] for a in delivery["attempts"]} == {500}
        assert len(receiver.at("/down")) == len(delivery["attempts"])
        assert len({h["headers"]["webhook-id"] for h in receiver.at("/down")}) == 1
        # A 4xx other than 429 is the receiver's answer: not retried.
        [delivery] = gone_view["webhooks"]
        assert delivery["status"] == "failed" and [a["status_code"] for a in delivery["attempts"]] == [404]
        assert len(receiver.at("/gone")) == 1

        # The jobs are untouched and still pollable, with their videos.
        for view in (down_view, gone_view):
            assert view["status"] == "succeeded" and view["error"] is None
            again = api.get(f"/v1/jobs/{view['id']}").json()
            assert again["status"] == "succeeded"
            assert httpx.get(again["result"]["video_url"], timeout=10).status_code == 200


def test_cancel_sends_completed_from_the_api(live: Live, receiver: Receiver) -> None:
    with live.client() as api:
        secret = api.get("/v1/webhooks/secret").json()["secret"]
        # The `idle` pool has no worker: the job stays queued until canceled.
        job = submit(api, webhook_url=receiver.url("/cancel"), region="idle")
        assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
        view = settled(api, job["id"])
    [hit] = receiver.at("/cancel")
    payload = Webhook(secret).verify(hit["body"], hit["headers"])
    assert payload["type"] == "job.completed"
    assert payload["data"]["status"] == "canceled" and payload["data"]["error"]["code"] == "canceled"
    assert [h["status"] for h in view["webhooks"]] == ["succeeded"]
    assert json.loads(hit["body"])["data"]["id"] == job["id"]


def test_a_dead_delivery_worker_is_restarted_and_delivers(live: Live, receiver: Receiver) -> None:
    dead = live.stack.procs["delivery"]
    os.killpg(dead.pid, signal.SIGKILL)
    dead.wait(10)
    with live.client() as api:
        job = submit(api, webhook_url=receiver.url("/after-restart"))
        assert wait_job(api, job["id"])["status"] == "succeeded"
        [delivery] = settled(api, job["id"])["webhooks"]
    assert delivery["status"] == "succeeded"
    assert len(receiver.at("/after-restart")) == 1
    assert live.stack.procs["delivery"].pid != dead.pid and live.stack.procs["delivery"].poll() is None
