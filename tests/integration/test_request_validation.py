"""Every validation rule, over HTTP: a 422 that names the field and the rule, never a correction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.support import SMALL_REQUEST

pytestmark = pytest.mark.integration

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("width not multiple of 16", {"width": 40}, "width", "multiple of 16"),
    ("height not multiple of 16", {"height": 24}, "height", "multiple of 16"),
    ("width above version range", {"width": 256}, "width", "16..128"),
    (
        "real version below range",
        {"model_version": "df-1-3b-540p-diffusers", "width": 48},
        "width",
        "256..1280",
    ),
    ("num_frames - 1 not divisible by 4", {"num_frames": 96}, "num_frames", "divisible by 4"),
    ("num_frames above version max", {"num_frames": 69}, "num_frames", "at most 65"),
    (
        "block size vs latent frames",
        {"num_frames": 21, "causal_block_size": 5},
        "causal_block_size",
        "latent",
    ),
    ("long video without overlap", {"num_frames": 41, "base_num_frames": 17}, "overlap_history", "required"),
    (
        "overlap not multiple of blocks",
        {"num_frames": 37, "base_num_frames": 17, "overlap_history": 9, "causal_block_size": 5},
        "overlap_history",
        "multiple of causal_block_size",
    ),
    (
        "overlap as long as the window",
        {"num_frames": 37, "base_num_frames": 17, "overlap_history": 17, "causal_block_size": 1},
        "overlap_history",
        "shorter than base_num_frames",
    ),
    ("empty prompt", {"prompt": "   "}, "prompt", "must not be empty"),
    ("prompt over context window", {"prompt": "x" * 600}, "prompt", "512 tokens"),
    ("negative prompt over window", {"negative_prompt": "y" * 600}, "negative_prompt", "512 tokens"),
    ("unknown model", {"model": "other-model"}, "model", "served: skywork-skyreels-v2"),
    ("unknown model_version", {"model_version": "v9"}, "model_version", "tiny-random"),
    ("unknown gpu_type", {"gpu_type": "TPU"}, "gpu_type", "H200"),
    ("unknown region", {"region": "mars-1"}, "region", "unknown region 'mars-1'; served:"),
    (
        "version served by no pool",
        {
            "model_version": "df-14b-720p-diffusers",
            "width": 1280,
            "height": 720,
            "num_frames": 97,
        },
        "model_version",
        "no configured pool",
    ),
    ("gpu type with no pool", {"gpu_type": "H200"}, "gpu_type", "CPU/local"),
    ("unknown field", {"resolution": "540p"}, "resolution", "unknown field"),
    ("missing prompt", {"prompt": None}, "prompt", "is required"),
    ("steps out of range", {"num_inference_steps": 0}, "num_inference_steps", "greater than or equal to 1"),
    ("guidance below 1", {"guidance_scale": 0.5}, "guidance_scale", "greater than or equal to 1"),
    ("fps out of range", {"fps": 0}, "fps", "greater than or equal to 1"),
    ("negative seed", {"seed": -1}, "seed", "greater than or equal to 0"),
    ("addnoise too large", {"addnoise_condition": 80}, "addnoise_condition", "less than or equal to 60"),
    ("negative ar_step", {"ar_step": -1}, "ar_step", "greater than or equal to 0"),
    ("wrong type", {"width": "wide"}, "width", "integer"),
]


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
