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

import httpx
import redis

from shared.fleet import PREFIX
from shared.settings import get_settings
from shared.webhooks.delivery import READY_PREFIX


def api_healthy() -> bool:
    port = get_settings().api_port
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200


def _any_key(pattern: str) -> bool:
    client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return next(iter(client.scan_iter(pattern, count=1000)), None) is not None
    finally:
        client.close()


def worker_healthy() -> bool:
    # Worker names end in `@<hostname>` (the pod name on Kubernetes, the container id under compose).
    return _any_key(f"{PREFIX}:worker:*@{socket.gethostname()}")


def delivery_healthy() -> bool:
    return _any_key(f"{READY_PREFIX}*@{socket.gethostname()}")


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
