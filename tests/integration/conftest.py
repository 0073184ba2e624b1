"""The real stack for integration tests: redis-server, moto's S3 server, the API and Celery workers,
each a real process on a free port, started once per session through `scheduler.dev.stack`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scheduler.dev.stack import Stack, free_port, wait_until
from scheduler.dev.supervisor import ManagedPool, Supervisor
from shared.settings import Settings
from tests.integration.support import BUCKET, ELASTIC_IDLE_TIMEOUT_S, KEY_A, KEY_B, Live, clear_job_state

POOLS = [
    {"gpu_type": "CPU", "region": "local", "model_versions": ["tiny-random"]},
    # A pool of its own for tests that kill its workers.
    {"gpu_type": "CPU", "region": "redelivery", "model_versions": ["tiny-random"]},
    # Workers started on demand by the supervisor, with a short idle timeout and a slow shutdown.
    {"gpu_type": "CPU", "region": "elastic", "model_versions": ["tiny-random"]},
    # No worker unless a test starts one: jobs stay queued.
    {"gpu_type": "CPU", "region": "idle", "model_versions": ["tiny-random"]},
    # Pools whose tests start their own workers with a fault injected (tests/fixtures/).
    {"gpu_type": "CPU", "region": "oom", "model_versions": ["tiny-random"]},
    {"gpu_type": "CPU", "region": "crash", "model_versions": ["tiny-random"]},
    # The catalog's selected target, configured but never run here: its routes must answer.
    {"gpu_type": "B200", "region": "us-central1", "model_versions": ["df-1-3b-540p-diffusers"]},
]
ELASTIC_ENV = {"REELFORGE_WORKER_IDLE_TIMEOUT_S": str(ELASTIC_IDLE_TIMEOUT_S)}


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    stack = Stack(tmp_path_factory.mktemp("stack"))
    live: Live | None = None
    try:
        s3_port = free_port()
        s3_endpoint = f"http://127.0.0.1:{s3_port}"
        proc = stack.spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
        wait_until(lambda: httpx.get(s3_endpoint, timeout=2).status_code < 500, 30, "moto S3 server", proc)
        stack.env.update(
            REELFORGE_API_KEYS=f"{KEY_A},{KEY_B}",
            REELFORGE_POOLS=json.dumps(POOLS),
            REELFORGE_STORAGE_BACKEND="s3",
            REELFORGE_S3_ENDPOINT_URL=s3_endpoint,
            REELFORGE_S3_BUCKET=BUCKET,
            REELFORGE_S3_ACCESS_KEY_ID="test",
            REELFORGE_S3_SECRET_ACCESS_KEY="test",
            # Small numbers so a killed worker's task comes back within seconds.
            REELFORGE_VISIBILITY_TIMEOUT_S="4",
            REELFORGE_RESTORE_INTERVAL_S="1",
            REELFORGE_WORKER_HEARTBEAT_S="2",
            REELFORGE_SWEEP_INTERVAL_S="1",
            REELFORGE_PREWARM_TIMEOUT_S="60",
            # Tests prewarm the same pools many times with one key; the limit itself has its own test.
            REELFORGE_PREWARM_RATE_LIMIT_PER_S="0",
            # Webhook receivers in the tests listen on 127.0.0.1; retries come within a second.
            REELFORGE_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
            REELFORGE_WEBHOOK_RETRY_BASE_S="0.2",
            REELFORGE_WEBHOOK_RETRY_MAX_DELAY_S="0.5",
            REELFORGE_WEBHOOK_RETRY_WINDOW_S="4",
            REELFORGE_WEBHOOK_POLL_INTERVAL_S="0.1",
            REELFORGE_WEBHOOK_TIMEOUT_S="3",
            # An idle event stream shows its heartbeat within a test's patience.
            REELFORGE_EVENTS_HEARTBEAT_S="0.5",
            REELFORGE_MAX_WAIT_S="60",
        )
        live = Live(stack, "", s3_endpoint)
        live.s3().create_bucket(Bucket=BUCKET)
        stack.start_redis(free_port(), persist=False)
        live.base = stack.start_api(free_port())
        stack.start_worker("w-local")
        stack.start_delivery()
        elastic = next(p for p in Settings(pools=POOLS).pools if p.region == "elastic")
        settings = Settings(redis_url=stack.env["REELFORGE_REDIS_URL"], visibility_timeout_s=4)
        live.supervisor = Supervisor(
            stack,
            settings,
            [ManagedPool(elastic, ELASTIC_ENV, "tests.fixtures.slow_shutdown")],
            keep_up={"delivery": stack.start_delivery},
        ).start()
        yield live
    finally:
        if live and live.supervisor:
            live.supervisor.stop()
        stack.stop()


@pytest.fixture(autouse=True)
def fresh_job_state(live: Live) -> None:
    """Each test starts without the jobs, samples, flags, batches and webhooks of the ones before."""
    r = live.redis()
    try:
        clear_job_state(r)
    finally:
        r.close()


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


@pytest.fixture
def snippets() -> Path:
    """The catalog page's shell snippets, copied verbatim."""
    return Path(__file__).parents[1] / "snippets"
