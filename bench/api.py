"""API cost as stored jobs accumulate: submission and job-read latency and throughput of one API process.

    python -m bench.api                                  # 1k, 100k and 1M stored jobs
    python -m bench.api --sizes 1000,100000 --duration 5

For each size it starts a fresh redis-server and one API process (`python -m scheduler`, as deployed),
seeds that many finished jobs of another API key through `JobStore.write_new` (the job store's own
writes, pipelined), then a load generator in a separate process measures, over HTTP on 127.0.0.1:
- open loop at `--rate` submissions/s: submission p50/p99, then `GET /v1/jobs/{id}` p50/p99;
- closed loop with `--concurrency` clients: the most submissions/s one API process sustains.
No worker runs, so submitted jobs stay queued: what is measured is the API and Redis alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from scheduler.dev.stack import Stack, free_port
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore
from shared.states import JobStatus

KEY = "bench-key"
POOLS = [{"gpu_type": "CPU", "region": "bench", "model_versions": ["tiny-random"]}]
REQUEST = {
    "prompt": "A cat and a dog inspect a compact GPU server in a cozy lab",
    "width": 48,
    "height": 32,
    "num_frames": 17,
    "num_inference_steps": 4,
    "model_version": "tiny-random",
}
ROUTE = "/v1/inference/skywork-skyreels-v2"


def seed(store: JobStore, n: int, batch: int = 5000) -> float:
    """`n` succeeded jobs of another owner; seconds taken."""
    t0 = time.perf_counter()
    created = now() - timedelta(days=1)
    template = JobRecord(
        id="x", owner="seeded-owner", status=JobStatus.SUCCEEDED, request={"model_version": "tiny-random",
        **REQUEST}, gpu_type="CPU", region="bench", queue="reelforge.cpu.bench", created_at=created,
    )  # fmt: skip
    for start in range(0, n, batch):
        with store.r.pipeline(transaction=False) as p:
            for i in range(start, min(start + batch, n)):
                job = template.model_copy(update={"id": uuid.uuid4().hex})
                store.write_new(p, job, i)
            p.execute()
    return time.perf_counter() - t0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _open_loop(base: str, rate: float, duration: float, read: bool) -> dict[str, Any]:
    """Requests started every 1/rate s regardless of answers; latency of each, in ms."""
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        job_id = (await client.post(ROUTE, json=REQUEST)).json()["id"]
        latencies: list[float] = []
        errors = 0

        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            r = await (client.get(f"/v1/jobs/{job_id}") if read else client.post(ROUTE, json=REQUEST))
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code >= 400

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return {"p50": _pct(latencies, 50), "p99": _pct(latencies, 99), "n": len(latencies), "errors": errors}


async def _closed_loop(base: str, concurrency: int, duration: float) -> dict[str, Any]:
    """`concurrency` clients submitting back to back; submissions per second."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        done = errors = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                r = await client.post(ROUTE, json=REQUEST)
                done += 1
                errors += r.status_code >= 400

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"per_s": done / (time.perf_counter() - t0), "errors": errors}


def _load(base: str, args: dict[str, Any], out: Any) -> None:
    """Runs in its own process, so the load generator does not share the API's interpreter."""
    submit = asyncio.run(_open_loop(base, args["rate"], args["duration"], read=False))
    read = asyncio.run(_open_loop(base, args["rate"], args["duration"], read=True))
    closed = asyncio.run(_closed_loop(base, args["concurrency"], args["duration"]))
    out.put({"submit": submit, "read": read, "closed": closed})


def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rf-bench-api-") as tmp:
        # Rate limits off: this measures what one process can take, not what one key is allowed.
        stack = Stack(Path(tmp), env={"REELFORGE_API_KEYS": KEY, "REELFORGE_POOLS": json.dumps(POOLS),
                                      "REELFORGE_STORAGE_DIR": str(Path(tmp) / "storage"),
                                      "REELFORGE_RATE_LIMIT_PER_S": "0"})  # fmt: skip
        try:
            url = stack.start_redis(free_port(), persist=False)
            store = JobStore.from_url(url, 30 * 24 * 3600)
            seed_s = seed(store, n)
            keys_total = int(store.r.dbsize())  # type: ignore[arg-type]
            base = stack.start_api(free_port())
            ctx = multiprocessing.get_context("spawn")
            out = ctx.Queue()
            proc = ctx.Process(target=_load, args=(base, vars(args), out))
            proc.start()
            result: dict[str, Any] = out.get(timeout=args.duration * 3 + 300)
            proc.join()
        finally:
            stack.stop()
    return {"jobs": n, "keys": keys_total, "seed_s": seed_s, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop submissions (or reads) per s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    args = parser.parse_args()
    rows = [measure(int(n), args) for n in args.sizes.split(",")]
    print(f"one API process, {platform.python_version()}, {platform.machine()}, rate {args.rate:g}/s, "
          f"{args.duration:g}s per run, {args.concurrency} closed-loop clients")  # fmt: skip
    head = ("stored jobs", "redis keys", "submit p50 ms", "submit p99 ms", "GET p50 ms", "GET p99 ms",
            "max submits/s", "errors")  # fmt: skip
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        errors = r["submit"]["errors"] + r["read"]["errors"] + r["closed"]["errors"]
        cells = (r["jobs"], r["keys"], r["submit"]["p50"], r["submit"]["p99"], r["read"]["p50"],
                 r["read"]["p99"], r["closed"]["per_s"], errors)  # fmt: skip
        print(" | ".join(f"{c:,.1f}" if isinstance(c, float) else f"{c:,}" for c in cells))
    p50s = [r["submit"]["p50"] for r in rows]
    print(f"submission p50 ratio, largest to smallest store: {p50s[-1] / p50s[0]:.2f} "
          f"(median of p50s {statistics.median(p50s):.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
