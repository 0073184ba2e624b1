"""`workers.sampler.generate` computes what `SkyReelsV2DiffusionForcingPipeline.__call__` computes.

Every comparison runs both on the same seeds: the same generator seed for the latents and the same
global RNG state (`torch.manual_seed`) for the `addnoise_condition` noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from workers.models import build_tiny_random
from workers.sampler import generate
from workers.sampler.architectures import to_bf16_like_from_pretrained

LATENT_RTOL = 1e-4
FRAME_ATOL = 1e-3


@pytest.fixture(scope="module")
def tiny() -> Any:
    return build_tiny_random(0)


def _run(fn: Callable[..., Any], **kwargs: Any) -> Any:
    torch.manual_seed(1234)
    generator = torch.Generator().manual_seed(5)
    return fn(prompt="a red fox in snow", negative_prompt="blurry", generator=generator, **kwargs).frames


def _ours(pipe: Any) -> Callable[..., Any]:
    return lambda **kw: generate(pipe, **kw)


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


SHORT = {"height": 32, "width": 48, "num_frames": 37, "num_inference_steps": 5}
LONG = {
    "height": 48,
    "width": 32,
    "num_frames": 77,  # 20 latent frames: windows of 10 with 5 of overlap -> 3 windows
    "base_num_frames": 37,
    "overlap_history": 17,
    "num_inference_steps": 4,
}

CASES = {
    "sync-b1-cfg": {**SHORT, "ar_step": 0, "causal_block_size": 1, "guidance_scale": 6.0},
    "sync-b5-nocfg": {**SHORT, "ar_step": 0, "causal_block_size": 5, "guidance_scale": 1.0},
    "async-b1-nocfg": {**SHORT, "ar_step": 1, "causal_block_size": 1, "guidance_scale": 1.0},
    "async-b5-cfg": {
        **SHORT,
        "height": 48,
        "width": 32,
        "ar_step": 2,
        "causal_block_size": 5,
        "guidance_scale": 6.0,
    },
    "long-async-b5-noise": {
        **LONG,
        "ar_step": 1,
        "causal_block_size": 5,
        "guidance_scale": 6.0,
        "addnoise_condition": 20,
    },
    "long-async-b5-clean": {**LONG, "ar_step": 1, "causal_block_size": 5, "guidance_scale": 6.0},
    "long-sync-b1-noise": {
        **LONG,
        "ar_step": 0,
        "causal_block_size": 1,
        "guidance_scale": 1.0,
        "addnoise_condition": 20,
    },
    "long-async-b5-nocfg": {
        **LONG,
        "ar_step": 2,
        "causal_block_size": 5,
        "guidance_scale": 1.0,
        "addnoise_condition": 30,
    },
}


@pytest.mark.parametrize("case", CASES)
def test_latents_match_pipeline(tiny: Any, case: str) -> None:
    kwargs = {**CASES[case], "output_type": "latent"}
    ref = _run(tiny, **kwargs)
    ours = _run(_ours(tiny), **kwargs)
    assert ours.shape == ref.shape
    assert _rel(ours, ref) <= LATENT_RTOL


@pytest.mark.parametrize("case", ["async-b5-cfg", "long-async-b5-noise", "sync-b1-cfg"])
def test_decoded_frames_match_pipeline(tiny: Any, case: str) -> None:
    kwargs = {**CASES[case], "output_type": "np"}
    ref = np.asarray(_run(tiny, **kwargs))
    ours = np.asarray(_run(_ours(tiny), **kwargs))
    assert ours.shape == ref.shape
    assert float(np.abs(ours - ref).max()) <= FRAME_ATOL


def test_pt_output_type(tiny: Any) -> None:
    kwargs = {**CASES["async-b5-cfg"], "output_type": "pt"}
    ref = _run(tiny, **kwargs)
    ours = _run(_ours(tiny), **kwargs)
    assert isinstance(ours, torch.Tensor) and ours.shape == ref.shape
    assert float((ours - ref).abs().max()) <= FRAME_ATOL


def test_small_model_async_matches_pipeline() -> None:
    pipe = build_tiny_random(0, layers=4, heads=4, head_dim=32)
    kwargs = {
        "height": 64,
        "width": 48,
        "num_frames": 97,  # 25 latent frames: 5 blocks
        "num_inference_steps": 6,
        "ar_step": 2,
        "causal_block_size": 5,
        "guidance_scale": 5.0,
        "output_type": "latent",
    }
    assert _rel(_run(_ours(pipe), **kwargs), _run(pipe, **kwargs)) <= LATENT_RTOL


def test_block_size_does_not_leak_between_calls() -> None:
    first = {**CASES["async-b5-cfg"], "output_type": "latent"}
    second = {**first, "causal_block_size": None}  # the model's own default (1)
    alone = [_run(_ours(build_tiny_random(0)), **kw) for kw in (first, second)]

    pipe = build_tiny_random(0)
    default = pipe.transformer.config.num_frame_per_block
    in_a_row = [_run(_ours(pipe), **kw) for kw in (first, second)]
    assert pipe.transformer.config.num_frame_per_block == default
    assert not torch.equal(alone[0], alone[1])
    for got, want in zip(in_a_row, alone, strict=True):
        assert torch.equal(got, want)


def _recording_callback(stop_at: int | None, edit: Callable[[int, torch.Tensor], dict[str, Any]]) -> Any:
    calls: list[tuple[int, int]] = []

    def callback(pipe: Any, i: int, t: torch.Tensor, kw: dict[str, Any]) -> dict[str, Any]:
        calls.append((i, int(t.shape[0])))
        if stop_at is not None and i == stop_at:
            pipe._interrupt = True
        return edit(i, kw["latents"])

    callback.calls = calls  # type: ignore[attr-defined]
    return callback


def test_interrupt_stops_like_pipeline(tiny: Any) -> None:
    kwargs = {**CASES["long-async-b5-noise"], "output_type": "latent"}
    results, calls = [], []
    for fn in (tiny, _ours(tiny)):
        cb = _recording_callback(stop_at=2, edit=lambda i, lat: {})
        results.append(_run(fn, callback_on_step_end=cb, **kwargs))
        calls.append(cb.calls)
    assert calls[0] == calls[1] == [(0, 10), (1, 10), (2, 10)]
    assert _rel(results[1], results[0]) <= LATENT_RTOL
    full = _run(_ours(tiny), **kwargs)
    assert not torch.allclose(full[:, :, :10], results[1][:, :, :10])


@pytest.mark.parametrize("in_place", [False, True])
def test_callback_edits_latents_like_pipeline(tiny: Any, in_place: bool) -> None:
    # An edited block invalidates cached keys/values: stale ones would diverge from the pipeline.
    def edit(i: int, latents: torch.Tensor) -> dict[str, Any]:
        if i != 5:  # block 0 has just finished and is cached; block 1 has a step left
            return {}
        if in_place:
            latents[:, :, :5].mul_(0.5)
            return {}
        return {"latents": torch.cat([latents[:, :, :5] * 0.5, latents[:, :, 5:]], dim=2)}

    kwargs = {**CASES["async-b5-cfg"], "output_type": "latent"}
    ref = _run(tiny, callback_on_step_end=_recording_callback(None, edit), **kwargs)
    ours = _run(_ours(tiny), callback_on_step_end=_recording_callback(None, edit), **kwargs)
    assert _rel(ours, ref) <= LATENT_RTOL


def test_prompt_embeds_input(tiny: Any) -> None:
    g = torch.Generator().manual_seed(3)
    embeds = {
        "prompt_embeds": torch.randn(1, 64, tiny.transformer.config.text_dim, generator=g),
        "negative_prompt_embeds": torch.randn(1, 64, tiny.transformer.config.text_dim, generator=g),
    }
    kwargs = {**CASES["async-b5-cfg"], **embeds, "prompt": None, "output_type": "latent"}
    outs = []
    for fn in (tiny, _ours(tiny)):
        torch.manual_seed(1234)
        outs.append(fn(generator=torch.Generator().manual_seed(5), **kwargs).frames)
    assert _rel(outs[1], outs[0]) <= LATENT_RTOL


def test_mixed_bf16_same_arithmetic() -> None:
    """BF16 weights with FP32 norms/modulation, as `from_pretrained` loads them on GPU. Different SDPA
    kernels alone move BF16 latents by ~1e-2; with the math kernel for both, every other op of ours
    rounds as the pipeline's does."""
    pipe = build_tiny_random(0, heads=2, head_dim=24)
    to_bf16_like_from_pretrained(pipe.transformer)
    kwargs = {**CASES["async-b5-cfg"], "output_type": "latent"}
    with sdpa_kernel(SDPBackend.MATH):
        ref = _run(pipe, **kwargs)
        ours = _run(_ours(pipe), **kwargs)
    assert _rel(ours, ref) <= 1e-3
