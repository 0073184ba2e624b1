"""Container health probes: `python -m shared.probes api|worker|delivery` exits 0 when healthy.

Used by the images' HEALTHCHECK, compose's healthchecks and the Kubernetes probes. None imports
torch, so a probe costs a fraction of a second even in the worker image.

- `api`: `GET /healthz` on this container's API port answers 200.
- `worker`: a worker on this host publishes a heartbeat, i.e. its Celery consumer is running (also
  while it loads its model). Kubernetes reads it as the pod's readiness, which KEDA's
  `pendingPodConditions: [Ready]` counts: a worker not ready yet is one still starting.
- `delivery`: a webhook delivery worker on this host runs its retry poller.
"""

from __future__ import annotations

import socket
import sys
import time

import httpx
import redis

from shared import keys
from shared.settings import get_settings


def api_healthy() -> bool:
    port = get_settings().api_port
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200


def _registered_here(index: str) -> bool:
    """Whether a process on this host holds a live entry in `index` (a sorted set of names by the
    time their claim lapses). It reads that one index, never scans the keyspace."""
    client = redis.Redis.from_url(
        get_settings().redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
    )
    try:
        names = client.zrangebyscore(index, int(time.time() * 1000), "+inf")
    finally:
        client.close()
    # Worker names end in `@<hostname>` (the pod name on Kubernetes, the container id under compose).
    return any(str(n).endswith(f"@{socket.gethostname()}") for n in names)


def worker_healthy() -> bool:
    return _registered_here(keys.pool_workers(get_settings().worker_queue))


def delivery_healthy() -> bool:
    return _registered_here(keys.WEBHOOK_CONSUMERS)


PROBES = {"api": api_healthy, "worker": worker_healthy, "delivery": delivery_healthy}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PROBES:
        print(f"usage: python -m shared.probes {{{'|'.join(PROBES)}}}", file=sys.stderr)
        return 2
    try:
        healthy = PROBES[argv[0]]()
    except Exception as exc:
        print(f"{argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
