"""Per-target figures computed from the runs actually made: reliability, speed, cost, estimates.

A target is one model version on one pool (a GPU type in a region). Nothing here is a fixed number:
rows without history say so.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from shared.catalog import GPU_TYPES
from shared.fleet import Sample
from shared.settings import PoolConfig


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class TargetStats(BaseModel):
    gpu_type: str
    region: str
    queue: str
    status: str
    """`works` (a success on record), `failing` (only failures), `not probed` (no runs yet)."""
    samples: int
    observed_success_rate: float | None
    request_ms_p50: float | None
    request_ms_p95: float | None
    model_ms_p50: float | None
    model_ms_p95: float | None
    cold_start_ms_p50: float | None
    peak_gpu_memory_gb: float | None
    cost_per_gpu_hour_usd: float | None
    estimated_warm_request_cost_usd: float | None


def cost_usd(ms: float | None, per_hour: float | None) -> float | None:
    if ms is None or per_hour is None:
        return None
    return round(ms / 3_600_000 * per_hour, 6)


def request_ms_p50(samples: list[Sample]) -> float | None:
    """p50 request time of the successful runs: what automatic routing and "fastest" rank by."""
    return percentile(
        [s.request_ms for s in samples if s.status == "succeeded" and s.request_ms is not None], 50
    )


def target_stats(pool: PoolConfig, samples: list[Sample], cold_starts_s: list[float]) -> TargetStats:
    ok = [s for s in samples if s.status == "succeeded"]
    request_ms = [s.request_ms for s in ok if s.request_ms is not None]
    model_ms = [s.model_ms for s in ok if s.model_ms is not None]
    peaks = [s.peak_gpu_memory_bytes for s in samples if s.peak_gpu_memory_bytes]
    gpu = GPU_TYPES.get(pool.gpu_type)
    per_hour = gpu.cost_per_gpu_hour_usd if gpu else None
    p50 = request_ms_p50(samples)
    cold = percentile([c * 1000 for c in cold_starts_s], 50)
    return TargetStats(
        gpu_type=pool.gpu_type,
        region=pool.region,
        queue=pool.queue,
        status="works" if ok else ("failing" if samples else "not probed"),
        samples=len(samples),
        observed_success_rate=round(len(ok) / len(samples), 4) if samples else None,
        request_ms_p50=p50,
        request_ms_p95=percentile(request_ms, 95),
        model_ms_p50=percentile(model_ms, 50),
        model_ms_p95=percentile(model_ms, 95),
        cold_start_ms_p50=None if cold is None else round(cold, 1),
        peak_gpu_memory_gb=round(max(peaks) / 2**30, 3) if peaks else None,
        cost_per_gpu_hour_usd=per_hour,
        estimated_warm_request_cost_usd=cost_usd(p50, per_hour),
    )


def fastest(targets: list[TargetStats]) -> TargetStats | None:
    works = [t for t in targets if t.status == "works" and t.request_ms_p50 is not None]
    return min(works, key=lambda t: (t.request_ms_p50, t.queue)) if works else None


def lowest_cost(targets: list[TargetStats]) -> TargetStats | None:
    priced = [t for t in targets if t.status == "works" and t.estimated_warm_request_cost_usd is not None]
    return (
        min(priced, key=lambda t: (t.estimated_warm_request_cost_usd, t.request_ms_p50, t.queue))
        if priced
        else None
    )
