"""Warm-up before a worker reports `warm`: one short request through the sampler.

The first call pays for what later calls reuse: `torch.compile` of the per-layer code (about a minute
on a GPU when `compile_blocks` is on), cuBLAS/cuDNN plan selection and the CUDA allocator's pools. Paid
in a job, it lands in that job's model time and deadline; paid here, right after the weights load, it
is part of the cold start. The compiled functions are shared by the whole process
(`attention.compiled_layer_fns` is cached) and compiled with dynamic shapes, so one block of frames
covers every later frame count. Tokens per frame are specialised (measured with torch 2.13 on the CPU:
a new height x width compiles once more), so warm up the resolutions the worker's jobs use. The batch
(cond + uncond) and the text length (512 tokens, as `encode_prompt` pads) are the jobs', so no guard on
them fails later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline

from workers.sampler.loop import generate

TEXT_TOKENS = 512
"""`max_sequence_length` of every job: `encode_prompt` pads the embeddings to it."""


@dataclass(frozen=True)
class WarmUp:
    seconds: float
    compiled: bool
    """Whether the per-layer code was compiled (`compile_blocks` on a CUDA device)."""


@torch.no_grad()
def warm_up(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    *,
    compile_blocks: bool,
    sizes: tuple[tuple[int, int], ...] = ((544, 960),),
    causal_block_size: int = 5,
    guidance_scale: float = 6.0,
) -> WarmUp:
    """Per (height, width) in `sizes`: one block of latent frames, two steps, zero text embeddings; the
    pipeline's state is left as a job would leave it. Use the sizes and guidance of the worker's jobs."""
    device = pipe._execution_device
    text = torch.zeros(
        1, TEXT_TOKENS, pipe.transformer.config.text_dim, device=device, dtype=pipe.transformer.dtype
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for height, width in sizes:
        generate(
            pipe,
            prompt=None,
            prompt_embeds=text,
            negative_prompt_embeds=text,
            height=height,
            width=width,
            num_frames=(causal_block_size - 1) * pipe.vae_scale_factor_temporal + 1,
            num_inference_steps=2,
            guidance_scale=guidance_scale,
            causal_block_size=causal_block_size,
            generator=torch.Generator(device=device).manual_seed(0),
            output_type="latent",
            compile_blocks=compile_blocks,
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return WarmUp(time.perf_counter() - t0, compile_blocks and device.type == "cuda")
