"""compose.yaml's services run from their own `command` and `environment` entries (as Compose resolves
them) as local processes, and a job goes through them to success.

What stands in for the containers: service hostnames map to 127.0.0.1 on free ports, MinIO is moto's
S3 server, and the `cpu` profile's worker runs where the GPU workers would. Each service is waited
for as Compose would: `service_healthy` by running the service's own healthcheck command,
`service_completed_successfully` by its exit code. A wrong command, module path, variable or probe in
the file fails here.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler.dev.stack import Stack, free_port, wait_until
from tests.deploy import compose_config

pytestmark = pytest.mark.integration

# Where each service listens inside its container; each becomes 127.0.0.1 on a free port here.
CONTAINER_PORTS = {"redis": 6379, "minio": 9000, "api": 8000, "flower": 5555}
API_KEY = "compose-test-key-" + secrets.token_hex(8)
FLOWER_AUTH = "ops:" + secrets.token_hex(16)
TINY = {"prompt": "a cat", "width": 48, "height": 32, "num_frames": 17, "num_inference_steps": 4,
        "model_version": "tiny-random"}  # fmt: skip


@dataclass
class Project:
    config: dict[str, Any]
    ports: dict[str, int]
    stack: Stack

    def local(self, value: str) -> str:
        """A value from the file with service addresses and bind-all addresses made local."""
        for service, port in CONTAINER_PORTS.items():
            here = self.ports[service]
            for host in (service, "localhost", "127.0.0.1"):
                value = value.replace(f"{host}:{port}", f"127.0.0.1:{here}")
            value = value.replace(f"--port={port}", f"--port={here}")
        return value.replace("0.0.0.0", "127.0.0.1")

    def service(self, name: str) -> dict[str, Any]:
        return dict(self.config["services"][name])

    def env(self, name: str) -> dict[str, str]:
        env = {k: self.local(str(v)) for k, v in (self.service(name).get("environment") or {}).items()}
        for key, value in env.items():
            if key.endswith("_PORT"):  # a port given alone, e.g. REELFORGE_API_PORT
                service = next(s for s, p in CONTAINER_PORTS.items() if str(p) == value)
                env[key] = str(self.ports[service])
        return env

    def argv(self, args: list[str]) -> list[str]:
        args = [self.local(a) for a in args]
        head = args[0]
        if head == "python":
            return [sys.executable, *args[1:]]
        beside = Path(sys.executable).parent / head  # console scripts of the project's environment
        return [str(beside) if beside.exists() else head, *args[1:]]

    def start(self, name: str, extra: list[str] | None = None) -> subprocess.Popen:
        return self.stack.spawn(
            name, [*self.argv(self.service(name)["command"]), *(extra or [])], self.env(name)
        )

    def healthy(self, name: str) -> bool:
        test = self.service(name)["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: healthcheck is not in exec form"
        env = {**self.stack.env, **self.env(name)}
        return subprocess.run(self.argv(test[1:]), env=env, capture_output=True, timeout=30).returncode == 0

    def wait_healthy(self, name: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
        wait_until(lambda: self.healthy(name), timeout_s, f"{name} healthcheck", proc)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("compose")
    env_file = root / "env"
    env_file.write_text(
        f"REELFORGE_API_KEYS={API_KEY}\nREELFORGE_SIGNING_SECRET={secrets.token_hex(16)}\n"
        "MINIO_ROOT_USER=test\nMINIO_ROOT_PASSWORD=test-secret\n"
        f"REELFORGE_FLOWER_BASIC_AUTH={FLOWER_AUTH}\n"
    )
    config = compose_config(env_file, "cpu")
    stack = Stack(root / "run")
    project = Project(config, {s: free_port() for s in CONTAINER_PORTS}, stack)
    try:
        yield project
    finally:
        stack.stop()


def start_in_order(p: Project) -> dict[str, subprocess.Popen]:
    """Starts what `docker compose --profile cpu up --wait` would, honouring depends_on conditions."""
    procs: dict[str, subprocess.Popen] = {}
    services = p.config["services"]
    assert set(services) >= {"redis", "minio", "bucket-init", "api", "delivery", "flower", "worker-cpu"}

    # Redis from its own command (AOF flags included), on a local port and directory.
    redis_dir = p.stack.data_dir / "redis"
    redis_dir.mkdir()
    procs["redis"] = p.start(
        "redis", ["--port", str(p.ports["redis"]), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
    )
    # Its healthcheck is `redis-cli ping` on the default port: the same command, pointed here.
    health = p.service("redis")["healthcheck"]["test"][1:]
    wait_until(
        lambda: subprocess.run([*health[:1], "-p", str(p.ports["redis"]), *health[1:]], capture_output=True)
        .stdout.strip() == b"PONG", 30, "redis healthcheck", procs["redis"],
    )  # fmt: skip

    # MinIO's stand-in: moto's S3 server, with the credentials compose gives MinIO.
    s3 = f"http://127.0.0.1:{p.ports['minio']}"
    procs["minio"] = p.stack.spawn(
        "minio", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p.ports["minio"])]
    )
    wait_until(lambda: httpx.get(s3, timeout=2).status_code < 500, 30, "S3 stand-in", procs["minio"])

    started = {"redis", "minio"}
    pending = [name for name in services if name not in started]
    while pending:
        ready = [n for n in pending if set(services[n].get("depends_on") or {}) <= started]
        assert ready, f"unsatisfiable depends_on among {pending}"
        for name in ready:
            proc = p.start(name)
            procs[name] = proc
            if services[name].get("healthcheck"):
                p.wait_healthy(name, proc, timeout_s=120)
            else:  # a one-shot: what depends on it waits for it to complete successfully
                assert proc.wait(timeout=60) == 0, p.stack.log_path(name).read_text()[-2000:]
            started.add(name)
            pending.remove(name)
    return procs


def test_a_job_succeeds_through_the_services_of_compose_yaml(project: Project) -> None:
    procs = start_in_order(project)
    base = f"http://127.0.0.1:{project.ports['api']}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        submitted = api.post("/v1/inference/skywork-skyreels-v2", json=TINY)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 180
        job = api.get(f"/v1/jobs/{job_id}").json()
        while job["status"] not in {"succeeded", "failed", "canceled", "expired"}:
            assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
            assert all(proc.poll() is None for name, proc in procs.items() if name != "bucket-init")
            time.sleep(0.2)
            job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        assert job["gpu_type"] == "CPU"
        # The link is signed for the public S3 endpoint compose sets, which is reachable here.
        video = httpx.get(job["result"]["video_url"], timeout=30)
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"

    # Flower answers only with the credentials compose gives it.
    flower = f"http://127.0.0.1:{project.ports['flower']}/"
    assert httpx.get(flower, timeout=10).status_code == 401
    token = base64.b64encode(FLOWER_AUTH.encode()).decode()
    assert httpx.get(flower, headers={"Authorization": f"Basic {token}"}, timeout=10).status_code == 200
