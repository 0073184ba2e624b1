"""One GPU check of the sampler on the gpu-catalog preset: speed, memory, exactness, start-up.

    python -m bench.gpu_check                          # one H100/H200, no internet, < 8 minutes
    python -m bench.gpu_check --device cpu --tiny      # the script itself, on the CPU (CI)

Everything is built from the DF-1.3B architecture with random weights (nothing is downloaded): the
plain pipeline vs ours on the catalog request (model time, time per iteration, peak memory of the loop
and of the decode, latents relative difference and frames PSNR, the SDPA backend of each attention
call), ours with `compile_blocks`, the exactness check with one attention kernel forced on both, the
VAE decode, the UMT5-XXL text encoder, and the cold start of a fresh process loading the pipeline
from local files the way the worker does (`workers.models.load_pretrained`). One table is printed and
written to `--out` (Markdown) and next to it as JSON. Sections after `--budget-s` seconds are skipped,
marked so, and the table is rewritten after each section, so a cut-short run still leaves figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.sampler import PRESETS, request_inputs
from shared.frames import pipeline_windows, round_num_frames
from workers.models import load_pretrained
from workers.sampler import decode_latents, generate, plan_for_call, warm_up
from workers.sampler.architectures import catalog_pipeline

IMPLS = ("plain", "ours", "ours + compile")
SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash-cpu",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_fused_attention_overrideable": "fused",
    "aten::_scaled_dot_product_attention_math": "math",
}
EXACT_REQUEST = {"height": 160, "width": 256, "num_frames": 97, "num_inference_steps": 8}
"""Small enough that the math kernel's N x N scores fit, with the catalog's 5 blocks and ar_step."""


@dataclass
class Report:
    """The table: rows of (what, value per implementation or one value), rewritten after each section."""

    out: Path
    header: list[str]
    rows: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, what: str, values: dict[str, str] | str, **data: Any) -> None:
        """A row labelled `what`; `data` (or the shown values) is kept under `key` in the JSON."""
        self.rows.append((what, values if isinstance(values, dict) else {"": values}))
        self.data[key] = data or values
        self.write()

    def render(self) -> str:
        lines = [*self.header, "", "| what | " + " | ".join(IMPLS) + " |", "|---" * (len(IMPLS) + 1) + "|"]
        for what, values in self.rows:
            if "" in values:
                lines.append(f"| {what} | {values['']} |" + " |" * (len(IMPLS) - 1))
            else:
                lines.append(f"| {what} | " + " | ".join(values.get(i, "") for i in IMPLS) + " |")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        self.out.write_text(self.render())
        self.out.with_suffix(".json").write_text(json.dumps(self.data, indent=1, default=str))


class Clock:
    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __call__(self, fn: Callable[[], Any]) -> tuple[Any, float, float | None]:
        """fn(), its seconds and its peak device memory above the start (GiB; None off CUDA)."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if self.cuda else 0
        t0 = time.perf_counter()
        out = fn()
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if self.cuda else None
        return out, seconds, peak


def _impl(pipe: Any, name: str) -> Callable[..., Any]:
    if name == "plain":
        return pipe  # type: ignore[no-any-return]
    return lambda **kw: generate(pipe, compile_blocks=name == "ours + compile", **kw)


def _latents(fn: Callable[..., Any], device: str, req: dict[str, Any]) -> torch.Tensor:
    torch.manual_seed(42)
    return fn(generator=torch.Generator(device=device).manual_seed(7), output_type="latent", **req).frames


def _iterations(pipe: Any, req: dict[str, Any]) -> int:
    pipe.scheduler.set_timesteps(req["num_inference_steps"], device="cpu")
    block = req["causal_block_size"]
    num_frames = round_num_frames(req["num_frames"])
    windows = pipeline_windows(num_frames, req.get("base_num_frames", 97), req.get("overlap_history"), block)
    return sum(
        len(pipe.generate_timestep_matrix(w.latent_frames, pipe.scheduler.timesteps, w.latent_frames,
                                          req["ar_step"], w.prefix_frames, block)[0])
        for w in windows
    )  # fmt: skip


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.float() - ref.float()).abs().max() / ref.float().abs().max())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _bytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _gib(x: float | None) -> str:
    return "n/a (CPU)" if x is None else f"{x:.2f}"


def sdpa_backends(fn: Callable[[], Any]) -> str:
    """Which SDPA kernel each attention call of fn() ran, from the profiler's op names."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    counts: Counter[str] = Counter()
    for event in prof.key_averages():
        if event.key in SDPA_OPS:
            counts[SDPA_OPS[event.key]] += event.count
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common()) or "none seen"


def host_syncs(fn: Callable[[], Any], device: str) -> str:
    """How many times fn() made the host wait for the GPU (`.item()`, `nonzero`, copies to the host)."""
    if not device.startswith("cuda"):
        return "n/a (CPU)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return str(sum("synchroniz" in str(w.message) for w in caught))


def _measure(pipe: Any, name: str, clock: Clock, device: str, req: dict[str, Any]) -> dict[str, Any]:
    """One run: the loop to latents, then the decode, each timed with its own memory peak."""
    latents, seconds, loop_peak = clock(lambda: _latents(_impl(pipe, name), device, req))
    frames, decode_s, decode_peak = clock(lambda: decode_latents(pipe, latents, "np"))
    return {
        "latents": latents,
        "frames": np.asarray(frames),
        "seconds": seconds,
        "loop_peak": loop_peak,
        "decode_s": decode_s,
        "decode_peak": decode_peak,
    }


def section_compare(report: Report, pipe: Any, args: argparse.Namespace, req: dict[str, Any]) -> None:
    """Plain vs ours (vs ours + compile) on the preset request, default kernels."""
    clock, device = Clock(args.device), args.device
    impls = [
        i for i in IMPLS if i != "ours + compile" or (args.device.startswith("cuda") and not args.no_compile)
    ]
    warm = {**req, "num_frames": 17, "num_inference_steps": 2}
    compile_s, backends = {}, {}
    syncs = {}
    for name in impls:  # warm-up (allocator, kernels, the compile) on a one-block request
        if name == "ours + compile":  # the worker's own warm-up helper, at the request's resolution
            compile_s[name] = warm_up(
                pipe, compile_blocks=True, sizes=((req["height"], req["width"]),)
            ).seconds
        else:
            _, compile_s[name], _ = clock(lambda n=name: _latents(_impl(pipe, n), device, warm))  # type: ignore[misc]
        backends[name] = sdpa_backends(lambda n=name: _latents(_impl(pipe, n), device, warm))  # type: ignore[misc]
        syncs[name] = host_syncs(lambda n=name: _latents(_impl(pipe, n), device, warm), device)  # type: ignore[misc]
    iterations = _iterations(pipe, req)
    results = {name: _measure(pipe, name, clock, device, req) for name in impls}
    plain = results["plain"]
    seconds = {n: r["seconds"] for n, r in results.items()}
    report.add(
        "model_s", "model time, s (loop, no decode)", {n: f"{v:.2f}" for n, v in seconds.items()}, **seconds
    )
    speedup = {n: plain["seconds"] / r["seconds"] for n, r in results.items()}
    report.add("speedup", "speedup vs plain", {n: f"{v:.2f}x" for n, v in speedup.items()}, **speedup)
    report.add("per_iteration_s", f"per iteration, s ({iterations} iterations)",
               {n: f"{r['seconds'] / iterations:.3f}" for n, r in results.items()})  # fmt: skip
    report.add(
        "peak_loop_gib", "peak memory, loop, GiB", {n: _gib(r["loop_peak"]) for n, r in results.items()}
    )
    report.add(
        "peak_decode_gib", "peak memory, decode, GiB", {n: _gib(r["decode_peak"]) for n, r in results.items()}
    )
    rel = {n: _rel(r["latents"], plain["latents"]) for n, r in results.items()}
    psnr = {n: _psnr(r["frames"], plain["frames"]) for n, r in results.items()}
    report.add(
        "latents_rel_diff", "latents rel. max diff vs plain", {n: f"{v:.2e}" for n, v in rel.items()}, **rel
    )
    report.add("frames_psnr_db", "frames PSNR vs plain, dB", {n: f"{v:.1f}" for n, v in psnr.items()}, **psnr)
    report.add("sdpa_backends", "SDPA backends (calls, 17-frame warm-up)", backends, **backends)
    report.add("host_syncs", "host syncs (17-frame warm-up, CUDA sync debug mode)", syncs, **syncs)
    report.add(
        "first_call_s",
        "first call, s (17 frames, 2 steps; compile)",
        {n: f"{s:.1f}" for n, s in compile_s.items()},
    )
    report.add(
        "vae_decode_s",
        "VAE decode, s",
        f"{results['ours']['decode_s']:.2f}",
        seconds=results["ours"]["decode_s"],
    )


def section_exact(report: Report, args: argparse.Namespace) -> None:
    """One kernel (math) forced on both. FP32 with TF32 off must agree to 1e-3; BF16 is reported only,
    since BF16 matmuls round differently with the number of rows they are given."""
    req_over = {} if args.tiny else EXACT_REQUEST
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        for dtype, label in ((torch.float32, "FP32"), (torch.bfloat16, "BF16")):
            pipe = _pipe(args, dtype)
            req = {**request_inputs(PRESETS["gpu-catalog"], pipe, args.device, args.tiny), **req_over}
            with sdpa_kernel(SDPBackend.MATH):
                plain = _latents(_impl(pipe, "plain"), args.device, req)
                ours = _latents(_impl(pipe, "ours"), args.device, req)
            rel = _rel(ours, plain)
            verdict = ("pass" if rel <= 1e-3 else "FAIL") if dtype == torch.float32 else "reported"
            size = (
                f"{req['width']}x{req['height']}, {req['num_frames']} fr., {req['num_inference_steps']} steps"
            )
            what = f"math SDPA on both, {label}, {size}: latents rel. diff (<= 1e-3: {verdict})"
            report.add(f"exact_{label.lower()}", what, {"ours": f"{rel:.2e}"}, rel=rel, verdict=verdict)
            del pipe
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def section_text_encoder(report: Report, pipe: Any, args: argparse.Namespace) -> None:
    clock = Clock(args.device)
    encode = lambda: pipe.encode_prompt(  # noqa: E731
        prompt="A cat and a dog inspect a compact GPU server in a cozy lab",
        negative_prompt="blurry, low quality",
        do_classifier_free_guidance=True,
        max_sequence_length=512,
        device=torch.device(args.device),
    )
    clock(encode)
    best = min(clock(encode)[1] for _ in range(3))
    report.add(
        "text_encoder_s", "text encoder, s (prompt + negative, 512 tokens)", f"{best:.3f}", seconds=best
    )


def section_memory_plan(report: Report, pipe: Any, req: dict[str, Any]) -> None:
    plan = plan_for_call(pipe, **req)
    free = "unknown" if plan.free_bytes is None else f"{_bytes(plan.free_bytes)} free"
    cached = f"{_bytes(plan.kv_cache_bytes)} of {_bytes(plan.kv_cache_all_bytes)}"
    text = f"{plan.policy.value}: cache {cached} ({free})"
    report.add("memory_plan", "memory plan for the request", {"ours": text}, **plan.record())


def section_cold_start(report: Report, pipe: Any, args: argparse.Namespace) -> None:
    """Save the pipeline, then time a fresh process from its start to the pipeline on the device."""
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        pipe.save_pretrained(tmp)
        saved_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**30
        t0 = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "bench.gpu_check", "--load-child", tmp, "--device", args.device],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        wall = time.perf_counter() - t0
    if child.returncode != 0:
        report.add("cold_start_s", "cold start", f"failed: {child.stderr.strip().splitlines()[-1:]}")
        return
    parts = json.loads(child.stdout.strip().splitlines()[-1])
    report.add(
        "cold_start_s",
        f"cold start, s (process start -> pipeline on {args.device}; {size:.1f} GiB local files)",
        f"{wall:.1f} (start + imports {wall - parts['load_s']:.1f}, load {parts['load_s']:.1f}; "
        f"save took {saved_s:.1f})",
        seconds=wall, saved_s=saved_s, gib=size, **parts,
    )  # fmt: skip


def _load_child(directory: str, device: str) -> None:
    """Runs in the fresh process: the worker's own loader, local files only."""
    imported = time.perf_counter()
    pipe = load_pretrained(directory, device, None)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    assert pipe.transformer is not None
    done = time.perf_counter()
    print(json.dumps({"load_s": done - imported}))


def _pipe(args: argparse.Namespace, dtype: torch.dtype = torch.bfloat16, text_encoder: str = "tiny") -> Any:
    return catalog_pipeline(
        args.device, dtype, layers=2 if args.tiny else None, text_encoder=text_encoder
    ).to(args.device)


def _header(args: argparse.Namespace, req: dict[str, Any]) -> list[str]:
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
    shown = {k: v for k, v in req.items() if not isinstance(v, torch.Tensor) and v is not None}
    return [
        f"# gpu-check {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {gpu} ({args.device})",
        "",
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
        f"diffusers {diffusers.__version__}, Python {platform.python_version()}",
        f"DF-1.3B architecture{' (--tiny: 2 layers, narrow VAE)' if args.tiny else ''}, random BF16 weights",
        f"request {shown}",
    ]


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = _parser().parse_args(argv)
    if args.load_child:
        _load_child(args.load_child, args.device)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device} needs CUDA")
    if args.device == "cpu":
        torch.set_num_threads(1)  # shared CI cores: more threads than free cores make timings erratic
    skip = set(args.skip.split(",")) if args.skip else set()
    pipe = _pipe(args, text_encoder="tiny" if args.tiny else "xxl")
    req = request_inputs(PRESETS["gpu-catalog"], pipe, args.device, args.tiny)
    report = Report(args.out, _header(args, req))
    sections: list[tuple[str, Callable[[], None]]] = [
        ("compare", lambda: section_compare(report, pipe, args, req)),
        ("memory", lambda: section_memory_plan(report, pipe, req)),
        ("text", lambda: section_text_encoder(report, pipe, args)),
        ("exact", lambda: section_exact(report, args)),
        ("cold-start", lambda: section_cold_start(report, pipe, args)),
    ]
    for name, run in sections:
        if name in skip:
            report.add(name, f"{name}", "skipped (--skip)")
        elif time.perf_counter() - started > args.budget_s:
            report.add(name, f"{name}", f"skipped: past --budget-s {args.budget_s:.0f}")
        else:
            run()
    total = time.perf_counter() - started
    report.add("total_s", "total wall time of the check, s", f"{total:.0f}", seconds=total)
    print(report.render())
    print(f"written to {args.out} and {args.out.with_suffix('.json')}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--tiny", action="store_true", help="2 layers, 64x64, 37 frames, tiny text encoder and VAE widths"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-check.md"))
    parser.add_argument("--skip", default="", help="comma-separated: compare,memory,text,exact,cold-start")
    parser.add_argument("--no-compile", action="store_true", help="leave out ours + compile")
    parser.add_argument("--budget-s", type=float, default=390.0, help="start no section after this")
    parser.add_argument("--tmp", default=None, help="where the cold-start weights are written")
    parser.add_argument("--load-child", default=None, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main()
