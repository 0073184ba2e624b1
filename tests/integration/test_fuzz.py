"""Schemathesis against the live API's own OpenAPI: no server errors, responses that match the schema,
and only the statuses each route declares. `make test` runs a small number of cases; `make fuzz`
(FUZZ_EXAMPLES=300) a larger run.

Every request stays on this machine: the fuzzed copy of the schema pins `webhook_url` to null and
drops free-form JSONL bodies, since an accepted job with a generated public URL would make the API
resolve it and the delivery worker send traffic off the machine (and none runs here anyway)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler.dev.stack import Stack, free_port

pytestmark = pytest.mark.integration

KEY = "fuzz-key-" + "f" * 32
POOLS = [
    {"gpu_type": "CPU", "region": "nowhere", "model_versions": ["tiny-random"]},
    {"gpu_type": "B200", "region": "us-central1", "model_versions": ["df-1-3b-540p-diffusers"]},
]
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        "REELFORGE_API_KEYS": KEY,
        "REELFORGE_POOLS": json.dumps(POOLS),
        "REELFORGE_STORAGE_DIR": str(tmp / "storage"),
        "REELFORGE_RATE_LIMIT_PER_S": "0",
        "REELFORGE_PREWARM_RATE_LIMIT_PER_S": "0",
        "REELFORGE_PREWARM_TIMEOUT_S": "1",
    }
    stack = Stack(tmp, env=env)
    try:
        stack.start_redis(free_port(), persist=False)
        yield stack.start_api(free_port()), tmp
    finally:
        stack.stop()


def pinned_to_loopback(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with nothing that could make the server send a request elsewhere."""
    request = schema["components"]["schemas"]["InferenceRequest"]
    request["properties"]["webhook_url"] = {"type": "null", "default": None}
    batch = schema["paths"]["/v1/batches"]["post"]
    batch["requestBody"]["content"] = {
        "application/json": {
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/InferenceRequest"}}
        }
    }
    for param in batch.get("parameters", []):
        if param["name"] == "defaults":
            param["schema"] = {"type": "string", "enum": ["{}"]}
    # No worker runs here, so a job's event stream never ends: an open stream cannot be fuzzed
    # (tests/integration/test_waiting_and_events.py covers it).
    schema["paths"].pop("/v1/jobs/{job_id}/events")
    # The one model family served: past the 404 of an unknown slug, into the routes' own logic.
    for operations in schema["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["name"] == "slug":
                    param["schema"] = {"type": "string", "enum": ["skywork-skyreels-v2"]}
    return schema


def test_fuzzed_requests_get_no_server_error_and_match_the_schema(api: tuple[str, Path]) -> None:
    base, tmp = api
    schema_file = tmp / "openapi.json"
    schema = httpx.get(f"{base}/openapi.json").raise_for_status().json()
    schema_file.write_text(json.dumps(pinned_to_loopback(schema)))
    examples = os.environ.get("FUZZ_EXAMPLES", "30")
    argv = [sys.executable, "-m", "schemathesis.cli", "run", str(schema_file), "--url", base,
            "--checks", CHECKS, "--max-examples", examples, "--seed", "7", "--request-timeout", "20",
            "--header", f"Authorization: Bearer {KEY}", "--phases", "examples,coverage,fuzzing",
            "--workers", "1", "--suppress-health-check", "all"]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=1500, cwd=tmp)
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary
    assert "Server error" not in run.stdout, summary
