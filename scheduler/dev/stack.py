"""The embedded stack: real Redis, the API, Flower and CPU workers as child processes.

`reelforge dev` and `make demo` run it; the integration tests start the same processes through it,
so what the tests exercise is what a developer runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from shared import keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {proc.returncode}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f}s")


@dataclass
class Stack:
    """Child processes sharing one environment; `stop()` ends every one of them."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches its children too
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def start_redis(self, port: int, persist: bool) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install it (apt-get install redis-server) or run `make install`"
            )
        rdir = self.data_dir / "redis"
        rdir.mkdir(exist_ok=True)
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(rdir), "--save", ""]
        argv += ["--appendonly", "yes" if persist else "no"]
        proc = self.spawn("redis", argv)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        wait_until(lambda: bool(client.ping()), 15, "redis-server", proc)
        client.close()
        self.env["REELFORGE_REDIS_URL"] = url
        return url

    def start_api(
        self, port: int, name: str = "api", extra_env: dict[str, str] | None = None, module: str = "scheduler"
    ) -> str:
        """The API on `port` (`python -m module`: a test fixture may wrap it). The first one (`api`) also
        becomes the stack's public base URL; others (with their own `extra_env`) serve the same Redis
        and storage."""
        base = f"http://127.0.0.1:{port}"
        env = {"REELFORGE_API_HOST": "127.0.0.1", "REELFORGE_API_PORT": str(port)}
        env["REELFORGE_PUBLIC_BASE_URL"] = base
        if name == "api":
            self.env.update(env)
        proc = self.spawn(name, [sys.executable, "-m", module], {**env, **(extra_env or {})})
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 30, "API", proc)
        return base

    def start_worker(
        self, name: str, extra_env: dict[str, str] | None = None, module: str = "workers"
    ) -> subprocess.Popen:
        """A worker run as `python -m <module>` (tests pass a module that injects a fault), once its
        first heartbeat is in Redis."""
        env = {"REELFORGE_WORKER_NAME": f"{name}@reelforge", **(extra_env or {})}
        proc = self.spawn(name, [sys.executable, "-m", module], env)
        url = self.env["REELFORGE_REDIS_URL"]
        client = redis.Redis.from_url(url)
        key = keys.worker(f"{name}@reelforge")
        wait_until(lambda: bool(client.exists(key)), 90, f"worker {name}", proc)
        client.close()
        return proc

    def start_delivery(self, name: str = "delivery") -> subprocess.Popen:
        """The webhook delivery worker (no torch): its own queue, threads for slow receivers."""
        argv = [sys.executable, "-m", "celery", "-A", "shared.webhooks.delivery", "worker"]
        argv += ["-Q", keys.WEBHOOK_QUEUE, "-P", "threads", "-c", "8", "-n", f"{name}@reelforge"]
        argv += ["--without-gossip", "--without-mingle"]
        client = redis.Redis.from_url(self.env["REELFORGE_REDIS_URL"])
        try:
            client.zrem(keys.WEBHOOK_CONSUMERS, f"{name}@reelforge")  # a dead predecessor's, if any
            proc = self.spawn(name, argv)
            # Its poller registers once the worker is ready.
            registered = lambda: client.zscore(keys.WEBHOOK_CONSUMERS, f"{name}@reelforge") is not None  # noqa: E731
            wait_until(registered, 60, f"webhook delivery worker {name}", proc)
        finally:
            client.close()
        return proc

    def start_flower(self, port: int, basic_auth: str) -> str:
        """Flower behind basic auth (`user:password`); its health check answers without it."""
        argv = [sys.executable, "-m", "celery", "-A", "scheduler.flower", "flower", f"--port={port}"]
        argv += ["--address=127.0.0.1", f"--basic-auth={basic_auth}"]
        proc = self.spawn("flower", argv)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200, 30, "Flower", proc)
        return base

    def kill(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        # Workers and clients first, the broker last, so nothing reconnects to a dead Redis.
        for name in sorted(self.procs, key=lambda n: n == "redis"):
            self.kill(name)
