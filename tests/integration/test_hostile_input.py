"""Hostile and malformed input gets a 4xx with our error body, never a 500; requests are bounded.

These run against their own API process (local storage, no worker, small limits, several API keys)
so that rate limits and a Redis outage touch no other test."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler.dev.stack import Stack, free_port, wait_until
from shared.settings import Settings
from shared.storage import LocalStorage

pytestmark = pytest.mark.integration

ROUTE = "/v1/inference/skywork-skyreels-v2"
KEYS = [f"hostile-key-{i}" for i in range(8)]
TINY = {"prompt": "a cat", "width": 48, "height": 32, "num_frames": 17, "model_version": "tiny-random"}
POOLS = [
    {"gpu_type": "CPU", "region": "nowhere", "model_versions": ["tiny-random"]},
    {"gpu_type": "B200", "region": "us-central1", "model_versions": ["df-1-3b-540p-diffusers"]},
]


@dataclass
class Bare:
    stack: Stack
    base: str
    settings: Settings

    def client(self, key: str = KEYS[0]) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    tmp = tmp_path_factory.mktemp("bare")
    env = {
        "REELFORGE_API_KEYS": ",".join(KEYS),
        "REELFORGE_POOLS": json.dumps(POOLS),
        "REELFORGE_STORAGE_BACKEND": "local",
        "REELFORGE_STORAGE_DIR": str(tmp / "storage"),
        "REELFORGE_BATCH_MAX_BODY_BYTES": str(1024 * 1024),
        "REELFORGE_RATE_LIMIT_PER_S": "0.01",
        "REELFORGE_RATE_LIMIT_BURST": "40",
        "REELFORGE_PREWARM_RATE_LIMIT_PER_S": "0",
        "REELFORGE_PREWARM_TIMEOUT_S": "30",
    }
    stack = Stack(tmp, env=env)
    try:
        stack.start_redis(free_port(), persist=False)
        base = stack.start_api(free_port())
        settings = Settings(storage_dir=tmp / "storage", public_base_url=base)
        yield Bare(stack, base, settings)
    finally:
        stack.stop()


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    return error


def post_raw(client: httpx.Client, path: str, raw: str | bytes, content_type: str = "application/json",
             **params: str) -> httpx.Response:  # fmt: skip
    return client.post(path, content=raw, headers={"content-type": content_type}, params=params)


def test_lone_surrogates_are_refused_by_field(bare: Bare) -> None:
    with bare.client() as c:
        raw = '{"prompt": "a\\ud800b", "model_version": "tiny-random"}'
        assert_error(post_raw(c, ROUTE, raw), 422, "invalid_input", "prompt")
        raw = '{"prompt": "a cat", "negative_prompt": "\\udfff", "model_version": "tiny-random"}'
        assert_error(post_raw(c, ROUTE, raw), 422, "invalid_input", "negative_prompt")
        line = '{"prompt": "a\\ud800b", "model_version": "tiny-random"}'
        error = assert_error(post_raw(c, "/v1/batches", line, "application/x-ndjson"), 422, "invalid_input")
        assert (error["line"], error["field"]) == (1, "prompt")
        error = assert_error(post_raw(c, "/v1/batches", f"[{line}]"), 422, "invalid_input", "prompt")


def test_blank_and_invisible_prompts_are_refused(bare: Bare) -> None:
    with bare.client() as c:
        for prompt in ("\u200b\u200b", " \u2060\ufeff ", "\t"):
            assert_error(c.post(ROUTE, json=TINY | {"prompt": prompt}), 422, "invalid_input", "prompt")


def test_no_silent_type_coercion(bare: Bare) -> None:
    with bare.client() as c:
        for field, value in (
            ("width", "64"),
            ("width", 64.0),
            ("fps", True),
            ("seed", "7"),
            ("num_frames", 17.0),
        ):
            error = assert_error(c.post(ROUTE, json=TINY | {field: value}), 422, "invalid_input", field)
            assert "valid integer" in error["message"], error
        assert_error(
            c.post(ROUTE, json=TINY | {"guidance_scale": True}), 422, "invalid_input", "guidance_scale"
        )
        # A JSON integer for a number field is a number, not a coercion.
        assert c.post(ROUTE, json=TINY | {"guidance_scale": 6}).status_code == 202


def test_bad_cursor_is_a_422(bare: Bare) -> None:
    with bare.client() as c:
        for cursor in ("nan", "inf", "-inf", "abc"):
            assert_error(c.get("/v1/jobs", params={"cursor": cursor}), 422, "invalid_input", "cursor")


def test_deep_nesting_and_huge_integers_are_4xx(bare: Bare) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    huge = "1" + "0" * 5000
    with bare.client() as c:
        assert_error(post_raw(c, "/v1/batches", deep), 422, "invalid_input", "body")
        error = assert_error(post_raw(c, "/v1/batches", deep, "application/x-ndjson"), 422, "invalid_input")
        assert error["line"] == 1
        nested_query = "[" * 5000 + "]" * 5000  # past the JSON parser's depth, within a URL's length
        assert_error(c.post("/v1/batches", json=[TINY], params={"defaults": nested_query}), 422,
                     "invalid_input", "defaults")  # fmt: skip
        for raw in (deep, f'{{"prompt": "x", "width": {huge}}}'):
            response = post_raw(c, ROUTE, raw)
            assert 400 <= response.status_code < 500 and "error" in response.json(), response.text
        assert_error(
            post_raw(c, "/v1/batches", f'[{{"prompt": "x", "width": {huge}}}]'), 422, "invalid_input"
        )


def test_bodies_past_their_limit_are_413_before_parsing(bare: Bare) -> None:
    with bare.client() as c:
        big = json.dumps(TINY | {"negative_prompt": "x" * (300 * 1024)})
        assert_error(post_raw(c, ROUTE, big), 413, "payload_too_large", "body")
        # Chunked, with no Content-Length: counted while reading.
        chunks = (big[i : i + 4096].encode() for i in range(0, len(big), 4096))
        assert_error(c.post(ROUTE, content=chunks, headers={"content-type": "application/json"}), 413,
                     "payload_too_large")  # fmt: skip
        batch = "\n".join([json.dumps(TINY | {"negative_prompt": "x" * 1000})] * 1100)
        assert_error(post_raw(c, "/v1/batches", batch, "application/x-ndjson"), 413, "payload_too_large")
        long_line = json.dumps(TINY | {"negative_prompt": "y" * (300 * 1024)})
        error = assert_error(post_raw(c, "/v1/batches", f"{json.dumps(TINY)}\n{long_line}",
                                      "application/x-ndjson"), 422, "invalid_input")  # fmt: skip
        assert error["line"] == 2 and "bytes" in error["message"]


def test_prompt_length_and_compute_budget_name_field_and_limit(bare: Bare) -> None:
    with bare.client() as c:
        error = assert_error(
            c.post(ROUTE, json=TINY | {"prompt": "x" * 20_000}), 422, "invalid_input", "prompt"
        )
        assert "10000" in error["message"]
        real = {"prompt": "a cat", "model_version": "df-1-3b-540p-diffusers"}
        error = assert_error(c.post(ROUTE, json=real | {"base_num_frames": 257, "num_frames": 257}), 422,
                             "invalid_input", "base_num_frames")  # fmt: skip
        assert "at most 121" in error["message"]
        error = assert_error(c.post(ROUTE, json=real | {"width": 1280, "height": 1280, "base_num_frames": 121,
                                                        "num_frames": 121}), 422, "invalid_input",
                             "base_num_frames")  # fmt: skip
        assert "limit" in error["message"]
        error = assert_error(c.post(ROUTE, json=real | {"width": 1280, "height": 720, "num_frames": 1457,
                                                        "overlap_history": 17}), 422, "invalid_input",
                             "num_frames")  # fmt: skip
        assert "limit" in error["message"]


def test_unknown_routes_and_methods_answer_our_error_body(bare: Bare) -> None:
    with bare.client() as c:
        assert_error(c.get("/v1/nothing-here"), 404, "not_found")
        assert_error(c.delete(ROUTE), 405, "method_not_allowed")


def test_submissions_are_rate_limited_per_key(bare: Bare) -> None:
    with bare.client(KEYS[5]) as c, bare.client(KEYS[6]) as other:
        answers = [c.post(ROUTE, json=TINY).status_code for _ in range(41)]
        assert answers[:40] == [202] * 40
        limited = c.post(ROUTE, json=TINY)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert other.post(ROUTE, json=TINY).status_code == 202  # another key has its own bucket


def test_waiting_prewarms_hold_no_server_thread(bare: Bare) -> None:
    """45 prewarms of a pool with no worker wait for it; /healthz still answers while all of them wait."""

    async def scenario() -> tuple[int, int]:
        headers = {"Authorization": f"Bearer {KEYS[1]}"}
        async with httpx.AsyncClient(base_url=bare.base, headers=headers, timeout=60) as c:
            body = {"version": "tiny-random", "gpu_type": "CPU", "region": "nowhere"}
            waiting = [asyncio.create_task(c.post("/v1/model-families/skywork-skyreels-v2/start", json=body))
                       for _ in range(45)]  # fmt: skip
            await asyncio.sleep(0)
            health = await c.get("/healthz")
            pending = sum(not t.done() for t in waiting)
            for t in waiting:
                t.cancel()
            return health.status_code, pending

    status, pending = asyncio.run(scenario())
    assert status == 200 and pending == 45


def test_signed_file_links(bare: Bare) -> None:
    storage = LocalStorage(bare.settings)
    target = storage.root / "videos" / "clip.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    url, _ = storage.url("videos/clip.mp4")
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-disposition"] == 'inline; filename="clip.mp4"'
    sig = url.split("sig=")[1]
    log = bare.stack.log_path("api")
    wait_until(lambda: "/v1/files/videos/clip.mp4" in log.read_text(), 10, "the access log line")
    assert sig not in log.read_text() and "sig=REDACTED" in log.read_text()
    expires = url.split("expires=")[1].split("&")[0]
    escaped = storage.signature("../escape.txt", int(expires))
    outside = httpx.get(
        f"{bare.base}/v1/files/%2E%2E/escape.txt", params={"expires": expires, "sig": escaped}
    )
    assert_error(outside, 404, "not_found")


def test_flower_is_never_open(bare: Bare) -> None:
    port = free_port()
    base = bare.stack.start_flower(port, "ops:flower-password-for-the-test")
    for path in ("/", "/metrics", "/api/workers"):
        assert httpx.get(base + path).status_code == 401, path
    assert httpx.get(base + "/metrics", auth=("ops", "flower-password-for-the-test")).status_code == 200
    bare.stack.kill("flower")


def test_redis_outage_is_a_503_with_retry_after(bare: Bare, tmp_path: Path) -> None:
    """Last in this module: it stops the module's Redis."""
    bare.stack.kill("redis")
    with bare.client(KEYS[2]) as c:
        for response in (c.post(ROUTE, json=TINY), c.get("/v1/jobs"), c.get("/v1/jobs/abc")):
            assert_error(response, 503, "unavailable")
            assert response.headers["retry-after"] == "5"
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_production_refuses_weak_secrets() -> None:
    strong = "k" * 32
    good: dict[str, Any] = {"env": "production", "api_keys": [strong], "signing_secret": "s" * 32,
                            "flower_basic_auth": "ops:" + "p" * 32}  # fmt: skip
    Settings(**good)
    for field, weak in (("api_keys", ["short-key"]), ("signing_secret", "s" * 31),
                        ("flower_basic_auth", "ops:short"), ("api_keys", ["rf-dev-key"])):  # fmt: skip
        with pytest.raises(ValueError, match=f"REELFORGE_{field.upper()}"):
            Settings(**good | {field: weak})


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
