"""Every validation rule, over HTTP: a 422 that names the field and the rule, never a correction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.support import SMALL_REQUEST
from tests.request_rules import RULES

pytestmark = pytest.mark.integration

# The rules that need the deployment's pools; the request model's own are in tests/request_rules.py.
ROUTING_RULES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown region", {"region": "mars-1"}, "region", "unknown region 'mars-1'; served:"),
    (
        "version served by no pool",
        {"model_version": "df-14b-720p-diffusers", "width": 1280, "height": 720, "num_frames": 97},
        "model_version",
        "no configured pool",
    ),
    ("gpu type with no pool", {"gpu_type": "H200"}, "gpu_type", "CPU/local"),
]
CASES = RULES + ROUTING_RULES


@pytest.mark.parametrize(("name", "change", "field", "rule"), CASES, ids=[c[0] for c in CASES])
def test_rule_is_a_422_naming_field_and_rule(
    api: httpx.Client, name: str, change: dict[str, Any], field: str, rule: str
) -> None:
    body = {k: v for k, v in (SMALL_REQUEST | change).items() if v is not None}
    response = api.post("/v1/inference/skywork-skyreels-v2", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert rule in error["message"]
    assert error["message"].startswith(field)


def test_valid_long_video_is_accepted(api: httpx.Client) -> None:
    body = SMALL_REQUEST | {
        "num_frames": 57,
        "base_num_frames": 37,
        "overlap_history": 17,
        "causal_block_size": 5,
    }
    response = api.post("/v1/inference/skywork-skyreels-v2", json=body)
    assert response.status_code == 202, response.text


def test_timeout_beyond_the_visibility_timeout_is_refused(api: httpx.Client) -> None:
    # The test stack's visibility timeout is 4 s: a longer job would be handed out twice.
    response = api.post("/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST | {"timeout_s": 4})
    assert response.status_code == 422
    assert (
        response.json()["error"]["field"] == "timeout_s"
        and "visibility timeout" in response.json()["error"]["message"]
    )
