"""The catalog's runtime routes: warm status, prewarm/stop, route check, reliability, run estimate.

Field names are the ones the catalog's shell snippets read. Every figure comes from runs recorded
in `shared.fleet`; a target with no runs says so.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict

from scheduler.api.auth import owner_of
from scheduler.routing import choose_pool
from shared.broker import WarmupMessage, enqueue_warmup
from shared.catalog import DEFAULT_MODEL_VERSION, MODEL_SLUG, MODEL_VERSIONS
from shared.errors import ErrorCode, InvalidInput, NotFound, WarmupTimeout
from shared.fleet import Fleet, Heartbeat
from shared.reliability import TargetStats, cost_usd, fastest, lowest_cost, request_ms_p50, target_stats
from shared.settings import PoolConfig, Settings


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = DEFAULT_MODEL_VERSION
    gpu_type: str | None = None
    region: str | None = None
    run_until_stopped: bool = False


def _check_slug(slug: str) -> None:
    if slug != MODEL_SLUG:
        raise NotFound(f"unknown model {slug!r}; served: {MODEL_SLUG}")


def _check_version(version: str, field: str) -> None:
    if version not in MODEL_VERSIONS:
        raise InvalidInput(
            f"{field}: unknown version {version!r}; served: {', '.join(MODEL_VERSIONS)}", field=field
        )


def pool_state(version: str, pool: PoolConfig, live: list[Heartbeat], fleet: Fleet) -> str:
    """`warm`: a live worker has the version loaded; `starting`: a worker is booting or loading it,
    or a prewarm is pending; `cold`: neither."""
    mine = [hb for hb in live if hb.queue == pool.queue and hb.state != "stopping"]
    if any(hb.model_version == version for hb in mine):
        return "warm"
    if mine or fleet.prewarm_version(pool.queue) == version:
        return "starting"
    return "cold"


def routing_signals(fleet: Fleet, pools: list[PoolConfig], version: str) -> tuple[set[str], dict[str, float]]:
    """Warm pools for `version` and measured p50 request times: what automatic routing ranks by."""
    live = fleet.live()
    serving = _targets(pools, version)
    warm = {p.queue for p in serving if pool_state(version, p, live, fleet) == "warm"}
    p50s = {p.queue: request_ms_p50(fleet.samples(version, p.queue)) for p in serving}
    return warm, {queue: ms for queue, ms in p50s.items() if ms is not None}


def _targets(
    pools: list[PoolConfig], version: str, gpu_type: str | None = None, region: str | None = None
) -> list[PoolConfig]:
    return [
        p
        for p in pools
        if version in p.model_versions
        and (gpu_type is None or p.gpu_type == gpu_type)
        and (region is None or p.region == region)
    ]


def _stats(fleet: Fleet, version: str, pool: PoolConfig) -> TargetStats:
    return target_stats(pool, fleet.samples(version, pool.queue), fleet.cold_starts_s(version, pool.queue))


def _public(t: TargetStats | None) -> dict[str, Any] | None:
    return None if t is None else t.model_dump()


def install_runtime_routes(app: FastAPI) -> None:
    router = APIRouter(dependencies=[Depends(owner_of)])
    settings: Settings = app.state.settings

    def fleet() -> Fleet:
        return app.state.store.fleet

    @router.get("/v1/model-families/{slug}/status")
    def status(slug: str, version: Annotated[str, Query()] = DEFAULT_MODEL_VERSION) -> dict[str, Any]:
        _check_slug(slug)
        _check_version(version, "version")
        live = fleet().live()
        pools = []
        for p in _targets(settings.pools, version):
            workers = [hb for hb in live if hb.queue == p.queue]
            pools.append(
                {
                    "gpu_type": p.gpu_type,
                    "region": p.region,
                    "queue": p.queue,
                    "status": pool_state(version, p, live, fleet()),
                    "live_workers": len(workers),
                    "workers": [hb.model_dump() for hb in workers],
                    "queue_length": app.state.store.queue_length(p.queue),
                    "jobs_in_flight": sum(1 for hb in workers if hb.current_job),
                    "keep_warm": fleet().keep_warm(p.queue),
                }
            )
        states = {p["status"] for p in pools}
        overall = "warm" if "warm" in states else ("starting" if "starting" in states else "cold")
        return {"slug": slug, "version": version, "status": overall, "pools": pools}

    @router.post("/v1/model-families/{slug}/start")
    def start(slug: str, body: StartRequest) -> dict[str, Any]:
        _check_slug(slug)
        _check_version(body.version, "version")
        warm, measured = routing_signals(fleet(), settings.pools, body.version)
        pool = choose_pool(settings.pools, body.version, body.gpu_type, body.region, warm, measured)
        if body.run_until_stopped:
            fleet().set_keep_warm(pool.queue, True)
        answer = {"slug": slug, "version": body.version, "gpu_type": pool.gpu_type, "region": pool.region}
        if pool.queue in warm:
            return answer | {
                "startup_ms": None,
                "was_cold_start": False,
                "keep_warm": fleet().keep_warm(pool.queue),
            }
        t0 = time.monotonic()
        fleet().request_prewarm(pool.queue, body.version, ttl_s=settings.prewarm_timeout_s)
        enqueue_warmup(app.state.celery, pool.queue, WarmupMessage(model_version=body.version))
        deadline = t0 + settings.prewarm_timeout_s
        while pool_state(body.version, pool, fleet().live(), fleet()) != "warm":
            if time.monotonic() > deadline:
                raise WarmupTimeout(
                    f"no worker became warm on {pool.gpu_type}/{pool.region} "
                    f"within {settings.prewarm_timeout_s:g}s"
                )
            time.sleep(0.2)
        startup_ms = round((time.monotonic() - t0) * 1000)
        return answer | {
            "startup_ms": startup_ms,
            "was_cold_start": True,
            "keep_warm": fleet().keep_warm(pool.queue),
        }

    @router.post("/v1/model-families/{slug}/stop")
    def stop(slug: str, body: StartRequest) -> dict[str, Any]:
        _check_slug(slug)
        pools = _targets(settings.pools, body.version, body.gpu_type, body.region)
        for p in pools:
            fleet().set_keep_warm(p.queue, False)
        return {
            "slug": slug,
            "version": body.version,
            "stopped": [{"gpu_type": p.gpu_type, "region": p.region, "keep_warm": False} for p in pools],
        }

    @router.get("/v1/models/{slug}/inference-routes")
    def inference_routes(
        slug: str,
        model_version: str = DEFAULT_MODEL_VERSION,
        gpu_type: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        _check_slug(slug)
        _check_version(model_version, "model_version")
        pools = _targets(settings.pools, model_version, gpu_type, region)
        if not pools:
            served = ", ".join(
                f"{p.gpu_type}/{p.region}" for p in settings.pools if model_version in p.model_versions
            )
            raise NotFound(
                f"no route for {model_version} on gpu_type={gpu_type or 'any'} region={region or 'any'}; "
                f"targets serving it: {served or 'none'}"
            )
        live = fleet().live()
        return {
            "slug": slug,
            "model": slug,
            "model_version": model_version,
            "route": f"/v1/inference/{slug}",
            "method": "POST",
            "routes": [
                {
                    "route": f"/v1/inference/{slug}",
                    "gpu_type": p.gpu_type,
                    "region": p.region,
                    "queue": p.queue,
                    "runtime_status": pool_state(model_version, p, live, fleet()),
                }
                for p in pools
            ],
        }

    @router.get("/v1/models/{slug}/reliability")
    def reliability(
        slug: str,
        model_version: str = DEFAULT_MODEL_VERSION,
        gpu_type: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        _check_slug(slug)
        _check_version(model_version, "model_version")
        f = fleet()
        pools = _targets(settings.pools, model_version, gpu_type, region)
        samples = {p.queue: f.samples(model_version, p.queue) for p in pools}
        rows = [target_stats(p, samples[p.queue], f.cold_starts_s(model_version, p.queue)) for p in pools]
        status_counts = dict(Counter(r.status for r in rows))
        failures = dict(
            Counter(
                s.code or ErrorCode.INTERNAL for p in pools for s in samples[p.queue] if s.status == "failed"
            )
        )
        supported = sum(1 for r in rows if r.status == "works")
        filters = {
            k: v
            for k, v in (("model_version", model_version), ("gpu_type", gpu_type), ("region", region))
            if v
        }
        return {
            "slug": slug,
            "reliability_status": "verified"
            if supported
            else ("failing" if rows and failures else "unverified"),
            "supported_rows": supported,
            "total_rows": len(rows),
            "filters": filters,
            "status_counts": status_counts,
            "failure_reason_counts": failures,
            "fastest_supported_target": _public(fastest(rows)),
            "lowest_cost_supported_target": _public(lowest_cost(rows)),
            "targets": [r.model_dump() for r in rows],
        }

    @router.get("/v1/models/{slug}/run-estimate")
    def run_estimate(
        slug: str,
        model_version: str = DEFAULT_MODEL_VERSION,
        gpu_type: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        _check_slug(slug)
        _check_version(model_version, "model_version")
        f = fleet()
        warm, measured = routing_signals(f, settings.pools, model_version)
        pool = choose_pool(settings.pools, model_version, gpu_type, region, warm, measured)
        stats = _stats(f, model_version, pool)
        per_hour = stats.cost_per_gpu_hour_usd
        warm_ms = stats.request_ms_p50
        cold_ms = (
            None if warm_ms is None or stats.cold_start_ms_p50 is None else warm_ms + stats.cold_start_ms_p50
        )
        if warm_ms is None:
            target = f"{pool.gpu_type}/{pool.region}"
            note = f"no history yet for {model_version} on {target}: run a job to measure it"
        elif cold_ms is None:
            note = "warm figures measured; no cold start recorded yet for this target"
        else:
            note = f"from {stats.samples} recorded runs"
        return {
            "slug": slug,
            "model_version": model_version,
            "gpu_type": pool.gpu_type,
            "region": pool.region,
            "cost_per_gpu_hour_usd": per_hour,
            "samples": stats.samples,
            "warm": {"request_ms": warm_ms, "cost_usd": cost_usd(warm_ms, per_hour)},
            "first_cold": {
                "request_ms": cold_ms,
                "cold_start_ms": stats.cold_start_ms_p50,
                "cost_usd": cost_usd(cold_ms, per_hour),
            },
            "has_history": warm_ms is not None,
            "note": note,
        }

    app.include_router(router)
