"""Plain `SkyReelsV2DiffusionForcingPipeline` vs `workers.sampler.generate` on the same inputs.

    python -m bench.sampler --preset cpu-small      # random small model on CPU, a few minutes
    python -m bench.sampler --preset gpu-catalog    # DF-1.3B architecture, random BF16 weights, CUDA
    python -m bench.sampler --preset gpu-catalog --device cpu --tiny --sdpa math   # its code path in CI

Both run in this process on the same seeds (generator and global RNG); the table gives seconds per
run (best of `--runs`, denoising loop + VAE decode), speedup, peak memory (CUDA: allocator peak;
CPU: resident-set growth sampled every 5 ms), the max difference of the latents relative to the plain
pipeline's max |latent|, the max abs difference of the decoded frames, and PSNR of ours vs plain.
`--tiny` keeps the preset's architecture but 2 layers, 64x64 and 37 frames (2 causal blocks);
`--sdpa math` forces one attention kernel on both; `--dtype fp32` keeps the transformer in FP32 (BF16
matmuls round differently with the number of rows, so BF16 results agree to about one BF16 rounding, not
bit for bit); `--json` also writes the results to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from workers.models import build_tiny_random
from workers.sampler import decode_latents, generate
from workers.sampler.architectures import catalog_pipeline


@dataclass
class Preset:
    device: str
    request: dict[str, Any]
    build: Callable[[str, bool, torch.dtype], Any]
    """(device, tiny, transformer dtype) -> pipeline."""
    threads: int | None = None
    tiny_request: dict[str, Any] | None = None
    """What `--tiny` overrides in `request`."""


def _cpu_small_pipe(device: str, tiny: bool, dtype: torch.dtype) -> Any:
    if dtype != torch.float32:
        raise SystemExit("--preset cpu-small is FP32 only")
    if tiny:
        return build_tiny_random(0).to(device)
    return build_tiny_random(0, layers=4, heads=4, head_dim=32, rope_max_seq_len=64).to(device)


def _catalog_pipe(device: str, tiny: bool, dtype: torch.dtype) -> Any:
    return catalog_pipeline(device, dtype, layers=2 if tiny else None).to(device)


PRESETS: dict[str, Preset] = {
    # Async, block size 5 and 45 latent frames (9 blocks) as the catalog's shape of work, at a size where
    # the transformer dominates the plain pipeline's time on CPU, as on GPU. One thread: the sandbox
    # has 2 shared cores and a second thread makes timings noisy.
    "cpu-small": Preset(
        device="cpu",
        threads=1,
        build=_cpu_small_pipe,
        tiny_request={"height": 32, "width": 32, "num_frames": 37, "num_inference_steps": 4},
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
        tiny_request={"height": 64, "width": 64, "num_frames": 37, "num_inference_steps": 4},
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
    if device.startswith("cuda"):
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


def request_inputs(preset: Preset, pipe: Any, device: str, tiny: bool) -> dict[str, Any]:
    req = {**preset.request, **((preset.tiny_request or {}) if tiny else {})}
    if "prompt" not in req:
        # Random text embeddings stand in for UMT5-XXL's (512 tokens x 4096); `prompt` has no default.
        g = torch.Generator(device="cpu").manual_seed(1)
        dim = pipe.transformer.config.text_dim
        req["prompt"] = None
        req["prompt_embeds"] = torch.randn(1, 512, dim, generator=g).to(device, torch.bfloat16)
        req["negative_prompt_embeds"] = torch.randn(1, 512, dim, generator=g).to(device, torch.bfloat16)
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
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        latents = _run(fn, device, "latent", req)
        frames = decode_latents(pipe, latents, "np")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds, peak[0], latents.float(), np.asarray(frames)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _kernel(sdpa: str) -> AbstractContextManager[Any]:
    return sdpa_kernel(SDPBackend.MATH) if sdpa == "math" else nullcontext()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--device", default=None, help="cpu or cuda[:n]; default: the preset's")
    parser.add_argument("--tiny", action="store_true", help="the preset's code path at a CI size")
    parser.add_argument(
        "--dtype",
        choices=["bf16", "fp32"],
        default="bf16",
        help="transformer weights (gpu-catalog): BF16 as from_pretrained loads them, or FP32",
    )
    parser.add_argument("--sdpa", choices=["default", "math"], default="default", help="attention kernel")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per implementation (best is kept)")
    parser.add_argument("--compile", action="store_true", help="also time ours with torch.compile (CUDA)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    preset = PRESETS[args.preset]
    device = args.device or preset.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device} needs CUDA")
    if preset.threads and device == "cpu":
        torch.set_num_threads(preset.threads)
    runs = args.runs or (2 if device == "cpu" and not args.tiny else 1)

    dtype = torch.float32 if args.dtype == "fp32" or args.preset == "cpu-small" else torch.bfloat16
    pipe = preset.build(device, args.tiny, dtype)
    req = request_inputs(preset, pipe, device, args.tiny)
    impls: dict[str, Callable[..., Any]] = {
        "plain pipeline": pipe,
        "ours": lambda **kw: generate(pipe, **kw),
    }
    if args.compile:
        impls["ours + compile"] = lambda **kw: generate(pipe, compile_blocks=True, **kw)

    with _kernel(args.sdpa):
        # Warm-up (allocator, kernels, compile) on a one-block request.
        warm = {**req, "num_frames": 17, "num_inference_steps": 2}
        for fn in impls.values():
            _run(fn, device, "latent", warm)
        rows = _measure(pipe, impls, device, req, runs)
    shown = {k: v for k, v in req.items() if not isinstance(v, torch.Tensor)}
    shown |= {"device": device, "dtype": str(dtype), "sdpa": args.sdpa}
    print(f"preset {args.preset}{' (tiny)' if args.tiny else ''}: {shown}")
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}, "
        f"threads {torch.get_num_threads()}, best of {runs}"
    )
    _print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps({"preset": args.preset, "device": device, "tiny": args.tiny, "rows": rows})
        )


def _measure(
    pipe: Any, impls: dict[str, Callable[..., Any]], device: str, req: dict[str, Any], runs: int
) -> list[dict[str, Any]]:
    """Best time, peak memory and the difference from the plain pipeline, per implementation."""
    results: dict[str, list[float]] = {name: [] for name in impls}
    peaks: dict[str, float] = {}
    latents: dict[str, torch.Tensor] = {}
    frames: dict[str, np.ndarray] = {}
    for _ in range(runs):
        for name, fn in impls.items():  # interleaved, so background load hits both alike
            seconds, peak, lat, out = _timed(pipe, fn, device, req)
            results[name].append(seconds)
            peaks[name] = max(peaks.get(name, 0.0), peak)
            latents[name], frames[name] = lat, out
    plain = min(results["plain pipeline"])
    ref = latents["plain pipeline"]
    return [
        {
            "impl": name,
            "seconds": min(results[name]),
            "speedup": plain / min(results[name]),
            "peak_mib": peaks[name],
            "latents_rel_diff": float((latents[name] - ref).abs().max() / ref.abs().max()),
            "frames_max_diff": float(np.abs(frames[name] - frames["plain pipeline"]).max()),
            "psnr_db": _psnr(frames[name], frames["plain pipeline"]),
        }
        for name in impls
    ]


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'impl':<16} {'s/run':>9} {'speedup':>8} {'peak MiB':>9} {'lat rel diff':>13} {'frame diff':>11} "
        f"{'PSNR dB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['impl']:<16} {r['seconds']:>9.2f} {r['speedup']:>7.2f}x {r['peak_mib']:>9.0f} "
            f"{r['latents_rel_diff']:>13.2e} {r['frames_max_diff']:>11.2e} {r['psnr_db']:>8.1f}"
        )


if __name__ == "__main__":
    main()
