"""The warm-up: it runs before the first job without changing any job's result, and the compiled
per-layer code it prepares serves other frame counts and sizes without compiling again."""

from __future__ import annotations

from typing import Any

import torch
from torch._dynamo.utils import counters

from workers.models import build_tiny_random
from workers.sampler import generate, warm_up
from workers.sampler.attention import (
    EAGER,
    WindowKV,
    compiled_layer_fns,
    forward_frames,
    frame_cond,
    text_kv,
    window_rope,
)

REQUEST = {
    "prompt": "a red fox in snow",
    "negative_prompt": "blurry",
    "height": 48,
    "width": 32,
    "num_frames": 37,
    "num_inference_steps": 4,
    "ar_step": 2,
    "causal_block_size": 5,
    "guidance_scale": 6.0,
    "output_type": "latent",
}


def _job(pipe: Any) -> torch.Tensor:
    torch.manual_seed(1234)
    return generate(pipe, generator=torch.Generator().manual_seed(5), **REQUEST).frames


def test_warm_up_leaves_jobs_unchanged() -> None:
    pipe = build_tiny_random(0)
    default_block = pipe.transformer.config.num_frame_per_block
    result = warm_up(pipe, compile_blocks=True, sizes=((48, 32),))
    assert result.seconds > 0 and not result.compiled  # compile_blocks is CUDA only
    assert pipe.transformer.config.num_frame_per_block == default_block
    assert torch.equal(_job(pipe), _job(build_tiny_random(0)))


def _forward(tr: Any, fns: Any, frames: int, lat_h: int, lat_w: int) -> torch.Tensor:
    """A block-causal forward of `frames` latent frames, cond + uncond, through `fns`."""
    g = torch.Generator().manual_seed(frames)
    x = torch.randn(1, 16, frames, lat_h, lat_w, generator=g)
    text = text_kv(tr, torch.randn(2, 512, tr.config.text_dim, generator=g))
    cond = frame_cond(tr, torch.full((2, frames), 500.0), [1, 1], x.dtype)
    cos, sin = window_rope(tr, frames, lat_h, lat_w)
    head_dim = tr.config.attention_head_dim
    kv = WindowKV(len(tr.blocks), 2, tr.config.num_attention_heads, cos.shape[1], head_dim, x)
    return forward_frames(tr, x, cond, text, cos, sin, kv, 0, 5, 0, fns)


def _graphs_after(tr: Any, fns: Any, frames: int, lat_h: int, lat_w: int) -> int:
    out = _forward(tr, fns, frames, lat_h, lat_w)
    assert torch.allclose(out, _forward(tr, EAGER, frames, lat_h, lat_w), rtol=1e-4, atol=1e-5)
    return int(counters["stats"]["unique_graphs"])


@torch.no_grad()
def test_compiled_layers_compile_once_per_resolution() -> None:
    # torch.compile works on the CPU too; generate only enables it on CUDA, so this drives the layers.
    tr = build_tiny_random(0).transformer
    fns = compiled_layer_fns()
    assert compiled_layer_fns() is fns  # one compiled pair per process
    warmed = _graphs_after(tr, fns, 5, 6, 4)  # what warm_up runs: one block
    assert [_graphs_after(tr, fns, frames, 6, 4) for frames in (10, 15, 25)] == [warmed] * 3
    resized = _graphs_after(tr, fns, 5, 8, 6)  # tokens per frame are specialised: compiles again
    assert resized == warmed + 2
    assert [_graphs_after(tr, fns, frames, 8, 6) for frames in (10, 20)] == [resized] * 2
