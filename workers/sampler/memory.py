"""Memory policy: how many blocks' keys/values the sampler may keep, decided before a job.

The cache of finished blocks' self-attention keys/values is what makes the sampler fast, and its size
grows with layers x heads x head_dim x tokens: about 19 GB for DF-1.3B at the catalog size, about 84 GB
for the 14B versions at 540p, more than an 80 GB GPU has next to the weights. Before a job the sampler
estimates the cache and the forward's working memory from the transformer config and the request,
compares them with the free device memory and chooses:

* `all`: every block of an interval keeps its keys/values (fastest);
* `partial`: the first `cache_blocks` blocks do; later ones are recomputed when a forward needs them;
* `recompute`: none do; every forward starts at the interval's first block (slowest, least memory).

All three compute the same function: a block's keys/values depend only on the inputs of the blocks up
to it, and a recomputed block is computed from exactly those inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import torch

from shared.frames import pipeline_windows, round_num_frames

RESERVE_FRACTION = 0.1
"""Share of the free memory kept back for allocator fragmentation and the loop's small tensors."""
RESERVE_MIN_BYTES = 1 << 30


class CachePolicy(StrEnum):
    ALL = "all"
    PARTIAL = "partial"
    RECOMPUTE = "recompute"


@dataclass(frozen=True)
class MemoryPlan:
    """The decision and the figures it was made from; `record()` is what a job's timings/sidecar keep."""

    policy: CachePolicy
    cache_blocks: int | None
    """Blocks per interval whose keys/values are kept; None for all."""
    window_blocks: int
    kv_cache_all_bytes: int
    """Estimated cache for `all`."""
    kv_cache_bytes: int
    """Estimated cache the chosen policy allocates."""
    working_bytes: int
    """Estimated peak of one forward's activations besides the cache."""
    free_bytes: int | None
    """Free device memory when deciding; None where unknown (CPU), which always gets `all`."""
    forced: bool = False

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "policy": self.policy.value}


def kv_cache_bytes(
    config: Any, *, latent_height: int, latent_width: int, frames: int, batch: int, itemsize: int
) -> int:
    """Keys and values of `frames` latent frames at every layer; `batch` counts cond and uncond."""
    _, p_h, p_w = config.patch_size
    tokens = frames * (latent_height // p_h) * (latent_width // p_w)
    head_dim = config.attention_head_dim
    return 2 * config.num_layers * batch * config.num_attention_heads * tokens * head_dim * itemsize


def working_bytes(
    config: Any, *, latent_height: int, latent_width: int, frames: int, batch: int, itemsize: int
) -> int:
    """Rough peak of one forward over `frames` frames besides the cache: the FFN's hidden activations,
    Q/K/V and their rotary copies, the FP32 norm/modulation temporaries and a concatenated K/V prefix."""
    _, p_h, p_w = config.patch_size
    tokens = frames * (latent_height // p_h) * (latent_width // p_w)
    dim = config.num_attention_heads * config.attention_head_dim
    per_token = 2 * config.ffn_dim * itemsize + dim * (6 * 4 + 4 * itemsize)
    return batch * tokens * per_token


def plan_memory(
    config: Any,
    *,
    latent_height: int,
    latent_width: int,
    window_frames: int,
    block: int,
    batch: int,
    itemsize: int,
    free_bytes: int | None,
    force: CachePolicy | None = None,
) -> MemoryPlan:
    """The policy for a request whose largest window has `window_frames` latent frames."""
    sizes = {
        "latent_height": latent_height,
        "latent_width": latent_width,
        "batch": batch,
        "itemsize": itemsize,
    }
    blocks = window_frames // block
    causal = block > 1  # with block size 1 attention is full and nothing is cached
    kv_all = kv_cache_bytes(config, frames=window_frames, **sizes) if causal else 0
    work = working_bytes(config, frames=window_frames, **sizes)
    per_block = kv_all // max(blocks, 1)

    def plan(policy: CachePolicy, cache_blocks: int | None) -> MemoryPlan:
        kv = kv_all if cache_blocks is None else per_block * cache_blocks
        return MemoryPlan(policy, cache_blocks, blocks, kv_all, kv, work, free_bytes, force is not None)

    if force == CachePolicy.RECOMPUTE:
        return plan(CachePolicy.RECOMPUTE, 0)
    if force == CachePolicy.ALL or free_bytes is None or not causal:
        return plan(CachePolicy.ALL, None)
    budget = free_bytes - max(int(free_bytes * RESERVE_FRACTION), RESERVE_MIN_BYTES) - work
    if force is None and kv_all <= budget:
        return plan(CachePolicy.ALL, None)
    fits = max(budget, 0) // per_block if per_block else blocks
    if force == CachePolicy.PARTIAL:
        return plan(CachePolicy.PARTIAL, max(1, min(fits, blocks - 1)))
    return plan(CachePolicy.PARTIAL, int(fits)) if fits >= 1 else plan(CachePolicy.RECOMPUTE, 0)


def free_device_bytes(device: torch.device) -> int | None:
    """Free CUDA memory plus what PyTorch's allocator holds unused; None off CUDA."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def plan_for_call(
    pipe: Any,
    *,
    free_bytes: int | None = None,
    force: CachePolicy | None = None,
    **pipeline_kwargs: Any,
) -> MemoryPlan:
    """`plan_memory` for a `generate(pipe, **pipeline_kwargs)` call: what the sampler decides by itself
    when given no plan, so a runner can decide (and record) before the job and pass it as `memory_plan`.
    `free_bytes` defaults to what `free_device_bytes` reads on the pipeline's device."""
    kw = pipeline_kwargs
    tr = pipe.transformer
    block = kw.get("causal_block_size") or tr.config.num_frame_per_block
    num_frames = round_num_frames(kw.get("num_frames", 97))
    windows = pipeline_windows(num_frames, kw.get("base_num_frames", 97), kw.get("overlap_history"), block)
    prompt = kw.get("prompt")
    prompts = (
        1 if isinstance(prompt, str) else len(prompt) if prompt is not None else kw["prompt_embeds"].shape[0]
    )
    cfg = kw.get("guidance_scale", 6.0) > 1.0
    if free_bytes is None:
        free_bytes = free_device_bytes(pipe._execution_device)
    return plan_memory(
        tr.config,
        latent_height=kw.get("height", 544) // pipe.vae_scale_factor_spatial,
        latent_width=kw.get("width", 960) // pipe.vae_scale_factor_spatial,
        window_frames=max(w.latent_frames for w in windows),
        block=int(block),
        batch=prompts * kw.get("num_videos_per_prompt", 1) * (2 if cfg else 1),
        itemsize=tr.dtype.itemsize,
        free_bytes=free_bytes,
        force=force,
    )
