"""The request rules, each a change to a valid small request with the field and the rule its 422 names.

One table for both levels: `tests/unit/shared/test_schemas.py` checks it against the request model,
`tests/integration/test_request_validation.py` over HTTP (with the rules that need the deployment's
pools besides)."""

from __future__ import annotations

from typing import Any

VALID: dict[str, Any] = {
    "prompt": "A cat and a dog inspect a compact GPU server in a cozy lab",
    "width": 48,
    "height": 32,
    "num_frames": 17,
    "num_inference_steps": 4,
    "model_version": "tiny-random",
}
"""The valid small request each rule changes (CPU-sized: the tests run it on `tiny-random`)."""

RULES: list[tuple[str, dict[str, Any], str, str]] = [
    ("width not multiple of 16", {"width": 40}, "width", "multiple of 16, got 40"),
    ("height not multiple of 16", {"height": 24}, "height", "multiple of 16"),
    ("width above version range", {"width": 256}, "width", "16..128"),
    ("real version below range", {"model_version": "df-1-3b-540p-diffusers"}, "width", "256..1280"),
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
    ("unknown field", {"resolution": "540p"}, "resolution", "unknown field"),
    ("missing prompt", {"prompt": None}, "prompt", "is required"),
    ("steps out of range", {"num_inference_steps": 0}, "num_inference_steps", "greater than or equal to 1"),
    ("guidance below 1", {"guidance_scale": 0.5}, "guidance_scale", "greater than or equal to 1"),
    ("fps out of range", {"fps": 61}, "fps", "less than or equal to 60"),
    ("negative seed", {"seed": -1}, "seed", "greater than or equal to 0"),
    ("addnoise too large", {"addnoise_condition": 80}, "addnoise_condition", "less than or equal to 60"),
    ("fps below range", {"fps": 0}, "fps", "greater than or equal to 1"),
    ("negative ar_step", {"ar_step": -1}, "ar_step", "greater than or equal to 0"),
    ("wrong type", {"width": "wide"}, "width", "integer"),
    ("webhook not http", {"webhook_url": "ftp://example.com/hook"}, "webhook_url", "http(s)"),
    ("empty event filter", {"webhook_events_filter": []}, "webhook_events_filter", "at least 1"),
]
