"""Which pool (GPU type + region -> Celery queue) a job goes to, and the per-target figures it ranks by.

Policy, when the request names no `gpu_type`/`region`: among the pools that serve the model
version, a pool with a worker warm on that version first (no cold start); then the fastest by p50
request time measured on our own runs of that version; pools with no runs yet after those, by the
catalog's model time (types it never measured last); then by queue name for a stable choice.
A request naming `gpu_type` and/or `region` is held to pools matching them.

A target is one model version on one pool. Its figures (reliability, speed, cost) come from the runs
recorded in `shared.fleet`; nothing here is a fixed number, and rows without history say so.
"""

from __future__ import annotations

import math
import time

from pydantic import BaseModel

from shared.catalog import GPU_TYPES
from shared.errors import NoCapacity
from shared.fleet import Fleet, Heartbeat, Sample
from shared.settings import PoolConfig
from shared.states import PoolState, WorkerState

Signals = tuple[set[str], dict[str, float]]
"""Warm queues and measured p50 request times (ms) per queue, for one model version."""


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


def fastest(rows: list[TargetStats]) -> TargetStats | None:
    works = [t for t in rows if t.status == "works" and t.request_ms_p50 is not None]
    return min(works, key=lambda t: (t.request_ms_p50, t.queue)) if works else None


def lowest_cost(rows: list[TargetStats]) -> TargetStats | None:
    priced = [t for t in rows if t.status == "works" and t.estimated_warm_request_cost_usd is not None]
    return (
        min(priced, key=lambda t: (t.estimated_warm_request_cost_usd, t.request_ms_p50, t.queue))
        if priced
        else None
    )


def pool_state(version: str, pool: PoolConfig, live: list[Heartbeat], fleet: Fleet) -> PoolState:
    """`warm`: a live worker has the version loaded; `starting`: a worker is booting or loading it,
    or a prewarm is pending; `cold`: neither."""
    mine = [hb for hb in live if hb.queue == pool.queue and hb.state != WorkerState.STOPPING]
    if any(hb.model_version == version for hb in mine):
        return PoolState.WARM
    if mine or fleet.prewarm_version(pool.queue) == version:
        return PoolState.STARTING
    return PoolState.COLD


P50_TTL_S = 5.0
"""How long one process reuses a target's p50: a target keeps up to 1,000 runs, and parsing them on
every submission would make its cost grow with the history."""
_p50_memo: dict[tuple[int, str, str], tuple[float, float | None]] = {}


def measured_p50(fleet: Fleet, version: str, queue: str) -> float | None:
    """The target's p50 request time, re-read from its samples at most every `P50_TTL_S`."""
    key, now = (id(fleet.r), version, queue), time.monotonic()
    cached = _p50_memo.get(key)
    if cached is None or cached[0] < now:
        cached = (now + P50_TTL_S, request_ms_p50(fleet.samples(version, queue)))
        _p50_memo[key] = cached
    return cached[1]


def routing_signals(fleet: Fleet, pools: list[PoolConfig], version: str) -> Signals:
    """Warm pools for `version` and measured p50 request times: what automatic routing ranks by."""
    serving = targets(pools, version)
    live = fleet.live(p.queue for p in serving)
    warm = {p.queue for p in serving if pool_state(version, p, live, fleet) == PoolState.WARM}
    p50s = {p.queue: measured_p50(fleet, version, p.queue) for p in serving}
    return warm, {queue: ms for queue, ms in p50s.items() if ms is not None}


def targets(
    pools: list[PoolConfig], version: str, gpu_type: str | None = None, region: str | None = None
) -> list[PoolConfig]:
    return [
        p
        for p in pools
        if version in p.model_versions
        and (gpu_type is None or p.gpu_type == gpu_type)
        and (region is None or p.region == region)
    ]


def stats_for(fleet: Fleet, version: str, pool: PoolConfig) -> TargetStats:
    return target_stats(pool, fleet.samples(version, pool.queue), fleet.cold_starts_s(version, pool.queue))


def _catalog_time(pool: PoolConfig) -> float:
    gpu = GPU_TYPES.get(pool.gpu_type)
    return gpu.catalog_model_time_s if gpu and gpu.catalog_model_time_s is not None else float("inf")


POOLS_HINT = "add a pool serving it to REELFORGE_POOLS (the API's and the workers' setting)"


def serving_targets(
    pools: list[PoolConfig], model_version: str, gpu_type: str | None = None, region: str | None = None
) -> list[PoolConfig]:
    """The configured pools serving `model_version` on `gpu_type`/`region` (None: any), or NoCapacity:
    the one answer every route gives for a target no pool serves, naming the field, what is served
    and the setting that fixes it."""
    if region is not None and region not in {p.region for p in pools}:
        served = ", ".join(sorted({p.region for p in pools}))
        raise NoCapacity(f"region: unknown region {region!r}; served: {served}; {POOLS_HINT}", field="region")
    serving = [p for p in pools if model_version in p.model_versions]
    if not serving:
        versions = ", ".join(sorted({v for p in pools for v in p.model_versions}))
        raise NoCapacity(
            f"model_version: no configured pool serves {model_version!r}; served here: {versions}; "
            f"{POOLS_HINT}",
            field="model_version",
        )
    matching = targets(serving, model_version, gpu_type, region)
    if not matching:
        listed = ", ".join(f"{p.gpu_type}/{p.region}" for p in serving)
        field = "gpu_type" if gpu_type is not None else "region"
        raise NoCapacity(
            f"{field}: no pool serves {model_version!r} on gpu_type={gpu_type or 'any'} "
            f"region={region or 'any'}; targets serving it: {listed}; {POOLS_HINT}",
            field=field,
        )
    return matching


def choose_pool(
    pools: list[PoolConfig],
    model_version: str,
    gpu_type: str | None,
    region: str | None,
    warm_queues: set[str],
    measured_ms: dict[str, float] | None = None,
) -> PoolConfig:
    matching = serving_targets(pools, model_version, gpu_type, region)
    measured = measured_ms or {}
    inf = float("inf")
    return min(
        matching,
        key=lambda p: (p.queue not in warm_queues, measured.get(p.queue, inf), _catalog_time(p), p.queue),
    )
