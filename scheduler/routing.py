"""Which pool (GPU type + region → Celery queue) a job goes to.

Policy, when the request names no `gpu_type`/`region`: among the pools that serve the model
version, a pool with a worker warm on that version first (no cold start); then the fastest by p50
request time measured on our own runs of that version; pools with no runs yet after those, by the
catalog's model time (types it never measured last); then by queue name for a stable choice.
A request naming `gpu_type` and/or `region` is held to pools matching them.
"""

from __future__ import annotations

from shared.catalog import GPU_TYPES
from shared.errors import InvalidInput, NoCapacity
from shared.settings import PoolConfig


def _catalog_time(pool: PoolConfig) -> float:
    gpu = GPU_TYPES.get(pool.gpu_type)
    return gpu.catalog_model_time_s if gpu and gpu.catalog_model_time_s is not None else float("inf")


def choose_pool(
    pools: list[PoolConfig],
    model_version: str,
    gpu_type: str | None,
    region: str | None,
    warm_queues: set[str],
    measured_ms: dict[str, float] | None = None,
) -> PoolConfig:
    if region is not None and region not in {p.region for p in pools}:
        served = ", ".join(sorted({p.region for p in pools}))
        raise InvalidInput(f"region: unknown region {region!r}; served: {served}", field="region")
    serving = [p for p in pools if model_version in p.model_versions]
    if not serving:
        versions = ", ".join(sorted({v for p in pools for v in p.model_versions}))
        raise NoCapacity(
            f"model_version: no configured pool serves {model_version!r}; served here: {versions}",
            field="model_version",
        )
    matching = [
        p
        for p in serving
        if (gpu_type is None or p.gpu_type == gpu_type) and (region is None or p.region == region)
    ]
    if not matching:
        targets = ", ".join(f"{p.gpu_type}/{p.region}" for p in serving)
        field = "gpu_type" if gpu_type is not None else "region"
        raise NoCapacity(
            f"{field}: no pool serves {model_version!r} on gpu_type={gpu_type or 'any'} "
            f"region={region or 'any'}; targets serving it: {targets}",
            field=field,
        )
    measured = measured_ms or {}
    inf = float("inf")
    return min(
        matching,
        key=lambda p: (p.queue not in warm_queues, measured.get(p.queue, inf), _catalog_time(p), p.queue),
    )
