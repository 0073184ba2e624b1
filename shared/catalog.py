"""What ReelForge serves: the model family, its versions, and the GPU types it knows.

Defaults come from the hosted catalog page (`forge-catalog-skyreels-v2-df-1.3b.txt`).
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_SLUG = "skywork-skyreels-v2"
DEFAULT_MODEL_VERSION = "df-1-3b-540p-diffusers"
CONTEXT_WINDOW_TOKENS = 512
"""UMT5's context window: the pipeline truncates longer prompts silently, so the API refuses them."""
PROMPT_MAX_CHARS = 10_000
"""Checked before tokenizing, so no request can make the API tokenize megabytes: 512 tokens of any
real prompt are far fewer characters."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    hf_repo: str | None
    """Hugging Face repository of the real checkpoint; None for versions built in code."""
    min_side: int
    max_side: int
    max_num_frames: int
    default_base_num_frames: int
    min_gpu_memory_gb: int
    max_base_num_frames: int
    """The longest window: one denoising iteration's cost grows with it."""
    max_window_pixel_frames: int
    """width x height x frames of one window: bounds one iteration's time and memory, so the execution
    deadline, checked between iterations, is never far away."""
    max_total_pixel_frames: int
    """width x height x num_frames of the whole video: bounds decode and encode memory."""


REAL_BUDGET = (121, 1280 * 720 * 121, 960 * 544 * 1457)
"""Windows up to 121 frames at up to 720p; in all, the catalog's longest 540p video."""

MODEL_VERSIONS: dict[str, ModelVersion] = {
    v.name: v
    for v in (
        ModelVersion(
            "df-1-3b-540p-diffusers",
            "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers",
            256,
            1280,
            1457,
            97,
            24,
            *REAL_BUDGET,
        ),
        ModelVersion(
            "df-14b-540p-diffusers",
            "Skywork/SkyReels-V2-DF-14B-540P-Diffusers",
            256,
            1280,
            1457,
            97,
            80,
            *REAL_BUDGET,
        ),
        ModelVersion(
            "df-14b-720p-diffusers",
            "Skywork/SkyReels-V2-DF-14B-720P-Diffusers",
            256,
            1280,
            1457,
            121,
            80,
            *REAL_BUDGET,
        ),
        # Built in code from the same diffusers classes with tiny configs and seeded weights: CPU-sized.
        ModelVersion("tiny-random", None, 16, 128, 65, 97, 0, 97, 128 * 128 * 65, 128 * 128 * 65),
    )
}


@dataclass(frozen=True)
class GpuType:
    name: str
    memory_gb: int
    cost_per_gpu_hour_usd: float | None
    """On-demand price from the catalog page; None where the catalog lists none."""
    catalog_model_time_s: float | None
    """The catalog's p50 warm model time for its example request; ranks pools before we measure."""


GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType("B200", 180, 7.15, 121.0),
        GpuType("B300", 288, 7.85, 346.0),
        GpuType("H100", 80, None, None),
        GpuType("H200", 141, 4.50, 211.0),
        GpuType("L40S", 48, 1.82, 661.0),
        GpuType("RTX6000", 96, 1.80, 491.0),
        GpuType("CPU", 0, 0.0, None),
    )
}


CATALOG_REQUEST: dict[str, object] = {
    "prompt": (
        "A cat and a dog inspect a compact GPU server in a cozy lab, smooth film-like motion, natural light"
    ),
    "negative_prompt": "low quality, blurry, flicker, watermark, distorted anatomy",
    "width": 960,
    "height": 544,
    "num_frames": 97,
    "base_num_frames": 97,
    "fps": 24,
    "seed": 77,
    "guidance_scale": 6,
    "num_inference_steps": 20,
    "ar_step": 5,
    "causal_block_size": 5,
    "addnoise_condition": 20,
    "model": MODEL_SLUG,
    "model_version": DEFAULT_MODEL_VERSION,
}
"""The catalog page's example request, as its inference snippet sends it."""

CPU_REQUEST: dict[str, object] = CATALOG_REQUEST | {
    "width": 128,
    "height": 80,
    "num_frames": 37,
    "model_version": "tiny-random",
}
"""The same request sized for a CPU worker on `tiny-random` (the demo's, the playground's default)."""
