"""The catalog's runtime routes for a model family: warm status, prewarm/stop, route check,
reliability and run estimate.

Field names are the ones the catalog's shell snippets read. Every figure comes from runs recorded in
`shared.fleet` (ranked and summarised by `scheduler.routing`); a target with no runs says so.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from scheduler.api.deps import (
    COMMON_ERRORS,
    Owner,
    PrewarmOwner,
    ServicesDep,
    authenticated_owner,
    error_responses,
)
from scheduler.routing import (
    TargetStats,
    choose_pool,
    cost_usd,
    fastest,
    lowest_cost,
    pool_state,
    routing_signals,
    serving_targets,
    stats_for,
    target_stats,
)
from scheduler.services import Services
from shared.broker import WarmupMessage, enqueue_warmup
from shared.catalog import DEFAULT_MODEL_VERSION, MODEL_SLUG, MODEL_VERSIONS
from shared.errors import ErrorCode, InvalidInput, NotFound
from shared.fleet import Heartbeat
from shared.settings import PoolConfig
from shared.states import PoolState

router = APIRouter(
    tags=["models"],
    dependencies=[Depends(authenticated_owner)],
    responses=COMMON_ERRORS | error_responses(404),
)


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: str = DEFAULT_MODEL_VERSION
    gpu_type: str | None = None
    region: str | None = None
    run_until_stopped: bool = False


class PoolStatus(BaseModel):
    gpu_type: str
    region: str
    queue: str
    status: PoolState
    live_workers: int
    workers: list[Heartbeat]
    queue_length: int
    jobs_in_flight: int
    keep_warm: bool


class FamilyStatus(BaseModel):
    """`GET /v1/model-families/{slug}/status`."""

    slug: str
    version: str
    status: PoolState
    """`warm` if any pool is warm, else `starting` if any is, else `cold`."""
    pools: list[PoolStatus]


class StartAnswer(BaseModel):
    """`POST /v1/model-families/{slug}/start`."""

    slug: str
    version: str
    gpu_type: str
    region: str
    status: PoolState
    """`warm` (200), or `starting` (202) when no worker was warm within REELFORGE_PREWARM_TIMEOUT_S:
    the prewarm stays queued, and the status route shows when it is warm."""
    startup_ms: int | None
    was_cold_start: bool
    keep_warm: bool


class StoppedPool(BaseModel):
    gpu_type: str
    region: str
    keep_warm: bool


class StopAnswer(BaseModel):
    """`POST /v1/model-families/{slug}/stop`."""

    slug: str
    version: str
    stopped: list[StoppedPool]


class InferenceRoute(BaseModel):
    route: str
    gpu_type: str
    region: str
    queue: str
    runtime_status: PoolState


class RouteCheck(BaseModel):
    """`GET /v1/models/{slug}/inference-routes`."""

    slug: str
    model: str
    model_version: str
    route: str
    method: str
    routes: list[InferenceRoute]


class Reliability(BaseModel):
    """`GET /v1/models/{slug}/reliability`."""

    slug: str
    reliability_status: str
    """`verified` (a target works), `failing` (only failures recorded), `unverified` (no runs)."""
    supported_rows: int
    total_rows: int
    filters: dict[str, str]
    status_counts: dict[str, int]
    failure_reason_counts: dict[str, int]
    fastest_supported_target: TargetStats | None
    lowest_cost_supported_target: TargetStats | None
    targets: list[TargetStats]


class Estimate(BaseModel):
    request_ms: float | None
    cost_usd: float | None


class ColdEstimate(Estimate):
    cold_start_ms: float | None


class RunEstimate(BaseModel):
    """`GET /v1/models/{slug}/run-estimate`."""

    slug: str
    model_version: str
    gpu_type: str
    region: str
    cost_per_gpu_hour_usd: float | None
    samples: int
    warm: Estimate
    first_cold: ColdEstimate
    has_history: bool
    note: str


def _check(slug: str, version: str, field: str) -> None:
    if slug != MODEL_SLUG:
        raise NotFound(f"unknown model {slug!r}; served: {MODEL_SLUG}")
    if version not in MODEL_VERSIONS:
        raise InvalidInput(
            f"{field}: unknown version {version!r}; served: {', '.join(MODEL_VERSIONS)}", field=field
        )


def _own_view(services: Services, owner: str, hb: Heartbeat) -> Heartbeat:
    """The heartbeat as this caller may see it: another API key's job id is not shown."""
    job = services.store.get(hb.current_job) if hb.current_job else None
    return hb if job is not None and job.owner == owner else hb.model_copy(update={"current_job": None})


def _pool_status(
    services: Services, owner: str, version: str, pool: PoolConfig, live: list[Heartbeat]
) -> PoolStatus:
    fleet = services.store.fleet
    workers = [hb for hb in live if hb.queue == pool.queue]
    return PoolStatus(
        gpu_type=pool.gpu_type,
        region=pool.region,
        queue=pool.queue,
        status=pool_state(version, pool, live, fleet),
        live_workers=len(workers),
        workers=[_own_view(services, owner, hb) for hb in workers],
        queue_length=services.store.queue_length(pool.queue),
        jobs_in_flight=sum(1 for hb in workers if hb.current_job),
        keep_warm=fleet.keep_warm(pool.queue),
    )


@router.get("/v1/model-families/{slug}/status")
def status(
    slug: str, owner: Owner, services: ServicesDep, version: Annotated[str, Query()] = DEFAULT_MODEL_VERSION
) -> FamilyStatus:
    """Per pool: live workers (state, loaded version; the current job only if it is the caller's),
    queue length, jobs in flight, keep-warm."""
    _check(slug, version, "version")
    serving = serving_targets(services.settings.pools, version)
    live = services.store.fleet.live(p.queue for p in serving)
    pools = [_pool_status(services, owner, version, p, live) for p in serving]
    states = {p.status for p in pools}
    overall = next((s for s in (PoolState.WARM, PoolState.STARTING) if s in states), PoolState.COLD)
    return FamilyStatus(slug=slug, version=version, status=overall, pools=pools)


async def _wait_warm(services: Services, version: str, pool: PoolConfig) -> int | None:
    """Ask the pool to prewarm `version` and wait until a worker is warm on it; milliseconds waited,
    or None when none was warm within the prewarm timeout.

    It waits on the event loop: each check is a short call in the thread pool, so a thousand waiting
    prewarms hold no thread and `/healthz` stays fast."""
    fleet, timeout_s = services.store.fleet, services.settings.prewarm_timeout_s
    t0 = time.monotonic()
    await run_in_threadpool(fleet.request_prewarm, pool.queue, version, timeout_s)
    await run_in_threadpool(enqueue_warmup, services.celery, pool.queue, WarmupMessage(model_version=version))

    def warm() -> bool:
        return pool_state(version, pool, fleet.live([pool.queue]), fleet) == PoolState.WARM

    while not await run_in_threadpool(warm):
        if time.monotonic() > t0 + timeout_s:
            return None
        await asyncio.sleep(0.2)
    return round((time.monotonic() - t0) * 1000)


def _prewarm_target(services: Services, owner: str, body: StartRequest) -> tuple[PoolConfig, bool]:
    """The pool a prewarm goes to and whether it is cold; holds the caller's keep-warm if asked."""
    _check(MODEL_SLUG, body.version, "version")
    settings, fleet = services.settings, services.store.fleet
    warm, measured = routing_signals(fleet, settings.pools, body.version)
    pool = choose_pool(settings.pools, body.version, body.gpu_type, body.region, warm, measured)
    if body.run_until_stopped:
        fleet.set_keep_warm(pool.queue, owner, True)
    return pool, pool.queue not in warm


@router.post(
    "/v1/model-families/{slug}/start",
    responses={202: {"model": StartAnswer, "description": "Still starting after the prewarm timeout"}},
)
async def start(
    slug: str, body: StartRequest, owner: PrewarmOwner, services: ServicesDep, response: Response
) -> StartAnswer:
    """Prewarm a target and answer once a worker is warm on it; with `run_until_stopped`, this API key
    keeps it warm past its idle timeout until it calls `stop`."""
    if slug != MODEL_SLUG:
        raise NotFound(f"unknown model {slug!r}; served: {MODEL_SLUG}")
    pool, cold = await run_in_threadpool(_prewarm_target, services, owner, body)
    startup_ms = await _wait_warm(services, body.version, pool) if cold else None
    ready = not cold or startup_ms is not None
    response.status_code = 200 if ready else 202
    return StartAnswer(
        slug=slug,
        version=body.version,
        gpu_type=pool.gpu_type,
        region=pool.region,
        status=PoolState.WARM if ready else PoolState.STARTING,
        startup_ms=startup_ms,
        was_cold_start=cold,
        keep_warm=await run_in_threadpool(services.store.fleet.keep_warm, pool.queue),
    )


@router.post("/v1/model-families/{slug}/stop")
def stop(slug: str, body: StartRequest, owner: PrewarmOwner, services: ServicesDep) -> StopAnswer:
    """Release this API key's keep-warm; a pool another key keeps warm stays warm (`keep_warm: true`)."""
    if slug != MODEL_SLUG:
        raise NotFound(f"unknown model {slug!r}; served: {MODEL_SLUG}")
    fleet = services.store.fleet
    pools = serving_targets(services.settings.pools, body.version, body.gpu_type, body.region)
    for p in pools:
        fleet.set_keep_warm(p.queue, owner, False)
    stopped = [
        StoppedPool(gpu_type=p.gpu_type, region=p.region, keep_warm=fleet.keep_warm(p.queue)) for p in pools
    ]
    return StopAnswer(slug=slug, version=body.version, stopped=stopped)


@router.get("/v1/models/{slug}/inference-routes")
def inference_routes(
    slug: str,
    services: ServicesDep,
    model_version: str = DEFAULT_MODEL_VERSION,
    gpu_type: str | None = None,
    region: str | None = None,
) -> RouteCheck:
    """The route check: where this model version can be sent, and how warm each target is."""
    _check(slug, model_version, "model_version")
    pools = serving_targets(services.settings.pools, model_version, gpu_type, region)
    fleet, route = services.store.fleet, f"/v1/inference/{slug}"
    live = fleet.live(p.queue for p in pools)
    routes = [
        InferenceRoute(
            route=route,
            gpu_type=p.gpu_type,
            region=p.region,
            queue=p.queue,
            runtime_status=pool_state(model_version, p, live, fleet),
        )
        for p in pools
    ]
    return RouteCheck(
        slug=slug, model=slug, model_version=model_version, route=route, method="POST", routes=routes
    )


@router.get("/v1/models/{slug}/reliability")
def reliability(
    slug: str,
    services: ServicesDep,
    model_version: str = DEFAULT_MODEL_VERSION,
    gpu_type: str | None = None,
    region: str | None = None,
) -> Reliability:
    """Per target, from the jobs actually run: status, success rate, speed, cost."""
    _check(slug, model_version, "model_version")
    fleet = services.store.fleet
    pools = serving_targets(services.settings.pools, model_version, gpu_type, region)
    samples = {p.queue: fleet.samples(model_version, p.queue) for p in pools}
    rows = [target_stats(p, samples[p.queue], fleet.cold_starts_s(model_version, p.queue)) for p in pools]
    failures = Counter(
        str(s.code or ErrorCode.INTERNAL) for p in pools for s in samples[p.queue] if s.status == "failed"
    )
    supported = sum(1 for r in rows if r.status == "works")
    filters = {"model_version": model_version, "gpu_type": gpu_type, "region": region}
    return Reliability(
        slug=slug,
        reliability_status="verified" if supported else ("failing" if rows and failures else "unverified"),
        supported_rows=supported,
        total_rows=len(rows),
        filters={k: v for k, v in filters.items() if v},
        status_counts=dict(Counter(r.status for r in rows)),
        failure_reason_counts=dict(failures),
        fastest_supported_target=fastest(rows),
        lowest_cost_supported_target=lowest_cost(rows),
        targets=rows,
    )


@router.get("/v1/models/{slug}/run-estimate")
def run_estimate(
    slug: str,
    services: ServicesDep,
    model_version: str = DEFAULT_MODEL_VERSION,
    gpu_type: str | None = None,
    region: str | None = None,
) -> RunEstimate:
    """Warm and first-cold time and cost, from measured history and the pool's $/GPU-hour."""
    _check(slug, model_version, "model_version")
    settings, fleet = services.settings, services.store.fleet
    warm, measured = routing_signals(fleet, settings.pools, model_version)
    pool = choose_pool(settings.pools, model_version, gpu_type, region, warm, measured)
    stats = stats_for(fleet, model_version, pool)
    per_hour, warm_ms, cold_start_ms = (
        stats.cost_per_gpu_hour_usd,
        stats.request_ms_p50,
        stats.cold_start_ms_p50,
    )
    cold_ms = None if warm_ms is None or cold_start_ms is None else warm_ms + cold_start_ms
    if warm_ms is None:
        note = f"no history yet for {model_version} on {pool.gpu_type}/{pool.region}: run a job to measure it"
    elif cold_ms is None:
        note = "warm figures measured; no cold start recorded yet for this target"
    else:
        note = f"from {stats.samples} recorded runs"
    return RunEstimate(
        slug=slug,
        model_version=model_version,
        gpu_type=pool.gpu_type,
        region=pool.region,
        cost_per_gpu_hour_usd=per_hour,
        samples=stats.samples,
        warm=Estimate(request_ms=warm_ms, cost_usd=cost_usd(warm_ms, per_hour)),
        first_cold=ColdEstimate(
            request_ms=cold_ms, cold_start_ms=cold_start_ms, cost_usd=cost_usd(cold_ms, per_hour)
        ),
        has_history=warm_ms is not None,
        note=note,
    )
