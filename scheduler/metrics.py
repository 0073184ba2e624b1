"""`GET /metrics`: the API's own request latency, and the cluster's jobs, queues, workers, durations and
webhook deliveries read from Redis at scrape time.

Workers push what they observe through Redis (`shared.metrics`) rather than expose a port: they scale
from zero, live in GPU node groups a scraper may not reach, and a multiprocess registry would not span
machines. Queue and worker gauges are read from the same keys the API already reads (queue lists,
kombu's `unacked` hash, heartbeats), so they need no writer at all.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import keys
from shared.fleet import Fleet
from shared.jobstore import read_jobs
from shared.metrics import DURATION_BUCKETS_S
from shared.settings import Settings
from shared.states import WorkerState

UNACKED = "unacked"
"""kombu's Redis transport: tasks delivered to a worker and not yet acknowledged (the one it runs)."""


class ClusterCollector(Collector):
    """Reads the cluster's state from Redis on each scrape."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.r = client
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        queues = [p.queue for p in self.settings.pools]
        yield self._jobs(queues)
        yield from self._queues(queues)
        yield self._workers(queues)
        yield self._ended()
        yield self._durations()
        yield self._webhooks()

    def _jobs(self, queues: list[str]) -> Metric:
        jobs = GaugeMetricFamily(
            "reelforge_jobs", "Jobs queued or running now, by pool", labels=["state", "pool"]
        )
        with self.r.pipeline(transaction=False) as p:
            for queue in queues:
                p.zcard(keys.queued_jobs(queue))
            queued = p.execute()
        running_ids = self.r.zrange(keys.RUNNING_JOBS, 0, -1)
        records = read_jobs(self.r, [str(i) for i in running_ids])
        running = Counter(job.queue for job in records if job is not None)
        for queue, count in zip(queues, queued, strict=True):
            jobs.add_metric(["queued", queue], count)
            jobs.add_metric(["running", queue], running.get(queue, 0))
        return jobs

    def _queues(self, queues: list[str]) -> Iterator[Metric]:
        held: Counter[str] = Counter()
        for raw in self.r.hvals(UNACKED):
            held[_routing_key(raw)] += 1
        with self.r.pipeline(transaction=False) as p:
            for queue in queues:
                p.llen(queue)
            waiting = p.execute()
        length = GaugeMetricFamily(
            "reelforge_queue_length",
            "Tasks in a pool's broker queue, waiting plus held by its workers (unacknowledged)",
            labels=["pool"],
        )
        holding = GaugeMetricFamily(
            "reelforge_queue_held",
            "Tasks of a pool's queue held by a worker (unacknowledged)",
            labels=["pool"],
        )
        for queue, count in zip(queues, waiting, strict=True):
            length.add_metric([queue], count + held.get(queue, 0))
            holding.add_metric([queue], held.get(queue, 0))
        yield length
        yield holding

    def _workers(self, queues: list[str]) -> Metric:
        live = Counter((hb.queue, hb.state.value) for hb in Fleet(self.r).live(queues))
        workers = GaugeMetricFamily(
            "reelforge_workers",
            "Live workers (heartbeat not lapsed) by pool and state",
            labels=["pool", "state"],
        )
        for queue in queues:
            for state in WorkerState:
                workers.add_metric([queue, state.value], live.get((queue, state.value), 0))
        return workers

    def _ended(self) -> Metric:
        ended = CounterMetricFamily(
            "reelforge_jobs_ended",
            "Jobs that reached a terminal state",
            labels=["state", "pool", "model_version"],
        )
        for name, count in sorted(self.r.hgetall(keys.METRICS_JOBS_ENDED).items()):
            ended.add_metric(str(name).split("|"), int(count))
        return ended

    def _durations(self) -> Metric:
        family = HistogramMetricFamily(
            "reelforge_job_duration_seconds",
            "Job durations by phase (queue_wait, model, encode, upload), pool and model version",
            labels=["phase", "pool", "model_version"],
        )
        series: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for name, value in self.r.hgetall(keys.METRICS_DURATIONS).items():
            phase, pool, version, part = str(name).split("|")
            series[(phase, pool, version)][part] = float(value)
        for labels, parts in sorted(series.items()):
            count = parts.get("count", 0.0)
            buckets = [(repr(b), parts.get(repr(b), 0.0)) for b in DURATION_BUCKETS_S] + [("+Inf", count)]
            family.add_metric(list(labels), buckets, parts.get("sum", 0.0))
        return family

    def _webhooks(self) -> Metric:
        deliveries = CounterMetricFamily(
            "reelforge_webhook_deliveries",
            "Webhook delivery attempts by outcome (succeeded, retrying, failed)",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.r.hgetall(keys.METRICS_WEBHOOKS).items()):
            deliveries.add_metric([str(outcome)], int(count))
        return deliveries


def _routing_key(raw: str | bytes) -> str:
    try:
        message: Any = json.loads(raw)
        return str(message[2] or message[0]["properties"]["delivery_info"]["routing_key"])
    except (ValueError, LookupError, TypeError):
        return ""


class Metrics:
    """The API process's registry: its request latency, and the cluster collector."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "reelforge_http_request_duration_seconds",
            "API latency to the response's first byte, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(ClusterCollector(client, settings))


class RequestTimer:
    """ASGI middleware timing each request until its response starts (so a long SSE stream counts its
    time to first byte), labelled by the route template, never the raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                self.metrics.requests.labels(path, scope["method"], str(message["status"])).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, timed)
