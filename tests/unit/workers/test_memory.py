"""The memory policy: its decision for the real model sizes (built on the meta device, no weights), and
that every policy gives the video the full cache gives."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel

from workers.models import build_tiny_random, tiny_random_components
from workers.sampler import CachePolicy, generate, plan_for_call
from workers.sampler.architectures import DF_1_3B, DF_14B, to_bf16_like_from_pretrained

GB = 10**9
CATALOG = {  # the catalog's 540p request: 97 frames = 25 latent frames = 5 blocks of 5, CFG
    "prompt": "a fox",
    "height": 544,
    "width": 960,
    "num_frames": 97,
    "num_inference_steps": 20,
    "guidance_scale": 6.0,
    "ar_step": 5,
    "causal_block_size": 5,
}


def _meta_pipe(config: dict[str, Any]) -> SkyReelsV2DiffusionForcingPipeline:
    """The real transformer's shapes without its memory; BF16 as from_pretrained loads it."""
    with torch.device("meta"):
        transformer = SkyReelsV2Transformer3DModel(**config)
    to_bf16_like_from_pretrained(transformer)
    return SkyReelsV2DiffusionForcingPipeline(**{**tiny_random_components(0), "transformer": transformer})


@pytest.fixture(scope="module")
def df_1_3b() -> SkyReelsV2DiffusionForcingPipeline:
    return _meta_pipe(DF_1_3B)


@pytest.fixture(scope="module")
def df_14b() -> SkyReelsV2DiffusionForcingPipeline:
    return _meta_pipe(DF_14B)


def test_meta_configs_are_the_released_sizes(df_1_3b: Any, df_14b: Any) -> None:
    params = [sum(p.numel() for p in pipe.transformer.parameters()) for pipe in (df_1_3b, df_14b)]
    assert 1.2e9 < params[0] < 1.8e9
    assert 13e9 < params[1] < 15e9


def test_1_3b_caches_everything_on_an_80gb_gpu(df_1_3b: Any) -> None:
    plan = plan_for_call(df_1_3b, free_bytes=76 * GB, **CATALOG)  # 80 GB less the BF16 weights
    # 2 (K, V) x 30 layers x 2 (cond, uncond) x 12 heads x 25 frames x 34 x 60 tokens x 128 x 2 bytes.
    assert plan.kv_cache_all_bytes == 2 * 30 * 2 * 12 * 25 * 34 * 60 * 128 * 2  # ~18.8 GB
    assert plan.policy == CachePolicy.ALL and plan.cache_blocks is None
    assert plan.kv_cache_bytes == plan.kv_cache_all_bytes


def test_14b_caches_what_fits_then_recomputes(df_14b: Any) -> None:
    full = plan_for_call(df_14b, free_bytes=200 * GB, **CATALOG)
    assert full.kv_cache_all_bytes == 2 * 40 * 2 * 40 * 25 * 34 * 60 * 128 * 2  # ~83.6 GB
    assert full.policy == CachePolicy.ALL

    partial = plan_for_call(df_14b, free_bytes=52 * GB, **CATALOG)  # 80 GB H100 less 28 GB of weights
    assert partial.policy == CachePolicy.PARTIAL
    assert 1 <= partial.cache_blocks < partial.window_blocks == 5  # type: ignore[operator]
    assert partial.kv_cache_bytes + partial.working_bytes < 52 * GB < full.kv_cache_all_bytes

    tight = plan_for_call(df_14b, free_bytes=20 * GB, **CATALOG)
    assert tight.policy == CachePolicy.RECOMPUTE and tight.cache_blocks == 0 and tight.kv_cache_bytes == 0


def test_more_memory_never_means_a_smaller_cache(df_14b: Any) -> None:
    cached = [plan_for_call(df_14b, free_bytes=gb * GB, **CATALOG).kv_cache_bytes for gb in range(10, 200, 5)]
    assert cached == sorted(cached)


def test_unknown_memory_full_attention_and_forced_policies(df_14b: Any) -> None:
    assert plan_for_call(df_14b, free_bytes=None, **CATALOG).policy == CachePolicy.ALL  # CPU: nothing to read
    full_attention = plan_for_call(df_14b, free_bytes=20 * GB, **{**CATALOG, "causal_block_size": 1})
    assert full_attention.policy == CachePolicy.ALL and full_attention.kv_cache_all_bytes == 0
    forced = plan_for_call(df_14b, free_bytes=500 * GB, force=CachePolicy.RECOMPUTE, **CATALOG)
    assert forced.policy == CachePolicy.RECOMPUTE and forced.forced
    assert forced.record()["policy"] == "recompute"


def _latents(pipe: Any, kwargs: dict[str, Any], **extra: Any) -> torch.Tensor:
    torch.manual_seed(1234)
    generator = torch.Generator().manual_seed(5)
    return generate(pipe, generator=generator, output_type="latent", **kwargs, **extra).frames


POLICY_CASES = {
    "async-5-blocks": {
        "prompt": "a red fox in snow",
        "negative_prompt": "blurry",
        "height": 64,
        "width": 48,
        "num_frames": 97,
        "num_inference_steps": 6,
        "ar_step": 2,
        "causal_block_size": 5,
        "guidance_scale": 5.0,
    },
    "long-3-windows-noise": {
        "prompt": "a red fox in snow",
        "height": 48,
        "width": 32,
        "num_frames": 77,
        "base_num_frames": 37,
        "overlap_history": 17,
        "num_inference_steps": 4,
        "ar_step": 1,
        "causal_block_size": 5,
        "guidance_scale": 6.0,
        "addnoise_condition": 20,
    },
}


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("case", POLICY_CASES)
def test_recompute_and_partial_give_the_full_cache_result(case: str) -> None:
    # Recomputed blocks run through matmuls with more rows, whose FP32 rounding may differ in the last
    # bits (measured: 5e-7 relative at most); a stale or missing key would be off by orders more.
    pipe = build_tiny_random(0, layers=3, heads=2, head_dim=16)
    kwargs = POLICY_CASES[case]
    cached = _latents(pipe, kwargs, memory_plan=plan_for_call(pipe, force=CachePolicy.ALL, **kwargs))
    recompute = plan_for_call(pipe, force=CachePolicy.RECOMPUTE, **kwargs)
    for plan in (recompute, dataclasses.replace(recompute, policy=CachePolicy.PARTIAL, cache_blocks=1)):
        assert _rel(_latents(pipe, kwargs, memory_plan=plan), cached) <= 1e-6, plan
    assert torch.equal(_latents(pipe, kwargs), cached)  # on the CPU the default is the full cache

    torch.manual_seed(1234)
    plain = pipe(generator=torch.Generator().manual_seed(5), output_type="latent", **kwargs).frames
    assert _rel(_latents(pipe, kwargs, memory_plan=recompute), plain) <= 1e-4
