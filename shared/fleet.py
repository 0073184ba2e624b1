"""The live state of the worker fleet in Redis: heartbeats, keep-warm and prewarm flags, and the
per-target performance samples that reliability, estimates and routing are computed from."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

import redis
from pydantic import BaseModel

from shared import keys
from shared.errors import ErrorCode
from shared.states import WorkerState

MAX_SAMPLES = 1000


class TaskOutcome(StrEnum):
    """What a worker did with one job task it took off its queue."""

    RAN = "ran"
    """Ran the job until it ended here, succeeded or failed."""
    STOPPED = "stopped"
    """Stopped mid-run: the job was canceled, or another worker took it over."""
    DROPPED = "dropped"
    """The job had already ended (canceled, a late redelivery): nothing was run."""
    ENDED = "ended"
    """Ended the job without running it: its start deadline had passed or its workers kept dying."""
    DEFERRED = "deferred"
    """Put the task back for later: another live worker holds the job, or the job store failed."""


class TaskSeen(BaseModel):
    job_id: str
    outcome: TaskOutcome
    at: float


class Heartbeat(BaseModel):
    """What a worker publishes every half heartbeat period; the key lapses after one period."""

    worker: str
    queue: str
    gpu_type: str
    region: str
    state: WorkerState
    model_version: str | None = None
    current_job: str | None = None
    loaded_at: float | None = None
    cold_start_s: float | None = None
    keep_warm: bool = False
    idle_since: float | None = None
    """When the worker last finished a task or its preload (epoch seconds); None while one runs. The
    idle timeout counts from here."""
    last_task: TaskSeen | None = None
    """The last job task the worker took and what it did with it."""
    beat_at: float


class Sample(BaseModel):
    """One finished run on one target (model version on a pool)."""

    job_id: str
    status: Literal["succeeded", "failed"]
    code: ErrorCode | None = None
    model_ms: float | None = None
    request_ms: float | None = None
    """Start of execution to confirmed upload."""
    peak_gpu_memory_bytes: int | None = None
    at: float


def _now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    @classmethod
    def from_url(cls, url: str) -> Fleet:
        return cls(redis.Redis.from_url(url, decode_responses=True))

    def beat(self, hb: Heartbeat, ttl_s: float) -> None:
        ttl_ms = int(ttl_s * 1000)
        with self.r.pipeline() as p:
            p.set(keys.worker(hb.worker), hb.model_dump_json(), px=ttl_ms)
            p.zadd(keys.pool_workers(hb.queue), {hb.worker: _now_ms() + ttl_ms})
            p.execute()

    def forget(self, worker: str, queue: str) -> None:
        with self.r.pipeline() as p:
            p.delete(keys.worker(worker))
            p.zrem(keys.pool_workers(queue), worker)
            p.execute()

    def heartbeat(self, worker: str | None) -> Heartbeat | None:
        if not worker:
            return None
        raw = self.r.get(keys.worker(worker))
        return Heartbeat.model_validate_json(str(raw)) if raw else None

    def is_alive(self, worker: str | None) -> bool:
        return bool(worker) and bool(self.r.exists(keys.worker(str(worker))))

    def live(self, queues: Iterable[str]) -> list[Heartbeat]:
        """Live workers of these pools: one sorted-set read per pool (lapsed entries pruned) and one
        MGET, so the cost follows the number of live workers, not the size of the keyspace."""
        queues = list(dict.fromkeys(queues))
        if not queues:
            return []
        now_ms = _now_ms()
        with self.r.pipeline() as p:
            for queue in queues:
                p.zremrangebyscore(keys.pool_workers(queue), "-inf", now_ms)
                p.zrange(keys.pool_workers(queue), 0, -1)
            names = [name for members in p.execute()[1::2] for name in members]
        raws = self.r.mget([keys.worker(n) for n in names]) if names else []
        return [Heartbeat.model_validate_json(v) for v in raws if v]

    def set_keep_warm(self, queue: str, owner: str, on: bool) -> None:
        """Hold (or release) this API key's keep-warm on a pool: one key never ends another's."""
        if on:
            self.r.sadd(keys.keep_warm(queue), owner)
        else:
            self.r.srem(keys.keep_warm(queue), owner)

    def keep_warm(self, queue: str) -> bool:
        """Whether any API key keeps the pool warm."""
        return bool(self.r.exists(keys.keep_warm(queue)))

    def request_prewarm(self, queue: str, version: str, ttl_s: float) -> None:
        self.r.set(keys.prewarm(queue), version, px=int(ttl_s * 1000))

    def prewarm_version(self, queue: str) -> str | None:
        value = self.r.get(keys.prewarm(queue))
        return None if value is None else str(value)

    def clear_prewarm(self, queue: str) -> None:
        self.r.delete(keys.prewarm(queue))

    def record(self, version: str, queue: str, sample: Sample) -> None:
        key = keys.samples(version, queue)
        self.r.lpush(key, sample.model_dump_json())
        self.r.ltrim(key, 0, MAX_SAMPLES - 1)

    def samples(self, version: str, queue: str) -> list[Sample]:
        raws: Any = self.r.lrange(keys.samples(version, queue), 0, -1)
        return [Sample.model_validate_json(v) for v in raws]

    def record_cold_start(self, version: str, queue: str, seconds: float) -> None:
        key = keys.cold_starts(version, queue)
        self.r.lpush(key, json.dumps({"s": seconds, "at": time.time()}))
        self.r.ltrim(key, 0, MAX_SAMPLES - 1)

    def cold_starts_s(self, version: str, queue: str) -> list[float]:
        raws: Any = self.r.lrange(keys.cold_starts(version, queue), 0, -1)
        return [float(json.loads(v)["s"]) for v in raws]
