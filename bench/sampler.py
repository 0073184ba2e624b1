"""Plain `SkyReelsV2DiffusionForcingPipeline` vs `workers.sampler.generate` on the same inputs.

    python -m bench.sampler --preset cpu-small      # random small model on CPU, a few minutes
    python -m bench.sampler --preset gpu-catalog    # DF-1.3B architecture, random BF16 weights, CUDA

Both run in this process on the same seeds (generator and global RNG); the table gives seconds per
run (best of `--runs`, denoising loop + VAE decode), speedup, peak memory (CUDA: allocator peak;
CPU: resident-set growth sampled every 5 ms), the max difference of the latents relative to the plain
pipeline's max |latent|, the max abs difference of the decoded frames, and PSNR of ours vs plain.
"""

from __future__ import annotations

import argparse
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import diffusers
import numpy as np
import torch

from workers.models import build_tiny_random, make_scheduler, tiny_random_components
from workers.sampler import decode_latents, generate


@dataclass
class Preset:
    device: str
    request: dict[str, Any]
    build: Callable[[], Any]
    threads: int | None = None


def _cpu_small_pipe() -> Any:
    return build_tiny_random(0, layers=4, heads=4, head_dim=32, rope_max_seq_len=64)


def to_bf16_like_from_pretrained(model: torch.nn.Module) -> None:
    """BF16 weights except the modules `from_pretrained(torch_dtype=bfloat16)` keeps in FP32."""
    keep: list[str] = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, param in model.named_parameters():
        if not any(k in name for k in keep):
            param.data = param.data.to(torch.bfloat16)


def _catalog_pipe() -> Any:
    from diffusers import AutoencoderKLWan, SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel

    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = SkyReelsV2Transformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=12,
            attention_head_dim=128,
            in_channels=16,
            out_channels=16,
            text_dim=4096,
            freq_dim=256,
            ffn_dim=8960,
            num_layers=30,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            inject_sample_info=True,
        )
        to_bf16_like_from_pretrained(transformer)
        vae = AutoencoderKLWan(
            base_dim=96,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            temperal_downsample=[False, True, True],
        )
    tiny = tiny_random_components(0)
    pipe = SkyReelsV2DiffusionForcingPipeline(
        tokenizer=tiny["tokenizer"],
        text_encoder=tiny["text_encoder"],
        transformer=transformer,
        vae=vae,
        scheduler=make_scheduler(),
    ).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    return pipe


PRESETS: dict[str, Preset] = {
    # Async, block size 5 and 45 latent frames (9 blocks) as the catalog's shape of work, at a size where
    # the transformer dominates the plain pipeline's time on CPU, as on GPU. One thread: the sandbox
    # has 2 shared cores and a second thread makes timings noisy.
    "cpu-small": Preset(
        device="cpu",
        threads=1,
        build=_cpu_small_pipe,
        request={
            "prompt": "A cat and a dog inspect a compact GPU server in a cozy lab",
            "negative_prompt": "blurry, low quality",
            "height": 96,
            "width": 96,
            "num_frames": 177,
            "base_num_frames": 177,
            "num_inference_steps": 20,
            "guidance_scale": 6.0,
            "ar_step": 5,
            "causal_block_size": 5,
            "fps": 24,
        },
    ),
    "gpu-catalog": Preset(
        device="cuda",
        build=_catalog_pipe,
        request={
            "height": 544,
            "width": 960,
            "num_frames": 97,
            "num_inference_steps": 20,
            "guidance_scale": 6.0,
            "ar_step": 5,
            "causal_block_size": 5,
            "addnoise_condition": 20,
            "fps": 24,
        },
    ),
}


@contextmanager
def _peak_memory(device: str) -> Iterator[list[float]]:
    """Yields a one-element list that holds the peak (MiB) once the block exits."""
    box = [0.0]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield box
        torch.cuda.synchronize()
        box[0] = (torch.cuda.max_memory_allocated() - base) / 2**20
        return

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    base, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        done.set()
        thread.join()
        box[0] = max(0, max(peak[0], rss()) - base) / 2**20


def _request_inputs(preset: Preset, pipe: Any) -> dict[str, Any]:
    req = dict(preset.request)
    if "prompt" not in req:
        # Random text embeddings stand in for UMT5-XXL's (512 tokens x 4096).
        g = torch.Generator(device="cpu").manual_seed(1)
        dim = pipe.transformer.config.text_dim
        req["prompt_embeds"] = torch.randn(1, 512, dim, generator=g).to(preset.device, torch.bfloat16)
        req["negative_prompt_embeds"] = torch.randn(1, 512, dim, generator=g).to(
            preset.device, torch.bfloat16
        )
    return req


def _run(fn: Callable[..., Any], device: str, output_type: str, req: dict[str, Any]) -> Any:
    torch.manual_seed(42)
    generator = torch.Generator(device=device).manual_seed(7)
    return fn(generator=generator, output_type=output_type, **req).frames


def _timed(
    pipe: Any, fn: Callable[..., Any], device: str, req: dict[str, Any]
) -> tuple[float, float, torch.Tensor, np.ndarray]:
    """One run: latents, then the pipeline's own decode of them, both inside the timing."""
    with _peak_memory(device) as peak:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        latents = _run(fn, device, "latent", req)
        frames = decode_latents(pipe, latents, "np")
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds, peak[0], latents.float(), np.asarray(frames)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per implementation (best is kept)")
    parser.add_argument("--compile", action="store_true", help="also time ours with torch.compile (CUDA)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if preset.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--preset {args.preset} needs CUDA")
    if preset.threads:
        torch.set_num_threads(preset.threads)
    runs = args.runs or (2 if preset.device == "cpu" else 1)

    pipe = preset.build()
    req = _request_inputs(preset, pipe)
    impls: dict[str, Callable[..., Any]] = {
        "plain pipeline": pipe,
        "ours": lambda **kw: generate(pipe, **kw),
    }
    if args.compile:
        impls["ours + compile"] = lambda **kw: generate(pipe, compile_blocks=True, **kw)

    # Warm-up (allocator, kernels, compile) on a one-block request.
    warm = {**req, "num_frames": 17, "num_inference_steps": 2}
    for fn in impls.values():
        _run(fn, preset.device, "latent", warm)

    results: dict[str, list[float]] = {name: [] for name in impls}
    peaks: dict[str, float] = {}
    latents: dict[str, torch.Tensor] = {}
    frames: dict[str, np.ndarray] = {}
    for _ in range(runs):
        for name, fn in impls.items():  # interleaved, so background load hits both alike
            seconds, peak, lat, out = _timed(pipe, fn, preset.device, req)
            results[name].append(seconds)
            peaks[name] = max(peaks.get(name, 0.0), peak)
            latents[name], frames[name] = lat, out

    plain = min(results["plain pipeline"])
    header = (
        f"{'impl':<16} {'s/run':>9} {'speedup':>8} {'peak MiB':>9} {'lat rel diff':>13} {'frame diff':>11} "
        f"{'PSNR dB':>8}"
    )
    print(f"preset {args.preset}: {preset.request | {'device': preset.device}}")
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}, "
        f"threads {torch.get_num_threads()}, best of {runs}"
    )
    print(header)
    print("-" * len(header))
    ref = latents["plain pipeline"]
    for name in impls:
        best = min(results[name])
        rel = float((latents[name] - ref).abs().max() / ref.abs().max())
        fdiff = float(np.abs(frames[name] - frames["plain pipeline"]).max())
        psnr = _psnr(frames[name], frames["plain pipeline"])
        print(
            f"{name:<16} {best:>9.2f} {plain / best:>7.2f}x {peaks[name]:>9.0f} {rel:>13.2e} {fdiff:>11.2e} "
            f"{psnr:>8.1f}"
        )


if __name__ == "__main__":
    main()
