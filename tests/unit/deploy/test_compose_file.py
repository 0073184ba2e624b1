"""compose.yaml is a valid Compose file whose settings, pools and secrets are the real ones."""

from __future__ import annotations

import json
import re
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared.catalog import GPU_TYPES
from shared.settings import PoolConfig, Settings
from tests.deploy import COMPOSE_FILE, ENV_EXAMPLE, compose_binary, compose_config

RAW = yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """Every profile's services, as Compose resolves them from .env.example."""
    return compose_config(ENV_EXAMPLE, "*")


def worker_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in config["services"].items()
        if "REELFORGE_WORKER_GPU_TYPE" in (svc.get("environment") or {})
    }


def test_matches_the_compose_specification_schema() -> None:
    # The Compose specification's own schema, as vendored by check-jsonschema.
    schema = json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    jsonschema.validate(RAW, schema)


def test_compose_itself_accepts_every_profile() -> None:
    run = subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "--profile", "*",
         "config", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "missing",
    ["REELFORGE_API_KEYS", "REELFORGE_SIGNING_SECRET", "MINIO_ROOT_PASSWORD", "REELFORGE_FLOWER_BASIC_AUTH"],
)
def test_secrets_must_be_set(tmp_path: Path, missing: str) -> None:
    env = [line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(f"{missing}=")]
    (tmp_path / "env").write_text("\n".join(env) + "\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        compose_config(tmp_path / "env")
    assert missing in failed.value.stderr


def test_env_example_lists_every_variable_the_file_reads() -> None:
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    listed = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert read == listed


def test_every_reelforge_variable_is_a_setting(config: dict[str, Any]) -> None:
    fields = {f"REELFORGE_{name.upper()}" for name in Settings.model_fields}
    used = {
        key
        for svc in config["services"].values()
        for key in (svc.get("environment") or {})
        if key.startswith("REELFORGE_")
    }
    assert used - fields == set()
    assert "REELFORGE_POOLS" in used


def test_each_service_environment_is_valid_settings(config: dict[str, Any]) -> None:
    for svc in config["services"].values():
        env = {k.removeprefix("REELFORGE_").lower(): v for k, v in (svc.get("environment") or {}).items()
               if k.startswith("REELFORGE_")}  # fmt: skip
        if env:
            # Placeholders are refused in production: validate with real-looking secrets.
            env.update(api_keys="k-" + "x" * 32, signing_secret="s-" + "x" * 32,
                       flower_basic_auth="ops:" + "p" * 32)  # fmt: skip
            Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_one_worker_per_gpu_type_each_on_a_configured_pool(config: dict[str, Any]) -> None:
    workers = worker_services(config)
    served = {svc["environment"]["REELFORGE_WORKER_GPU_TYPE"] for svc in workers.values()}
    assert served == set(GPU_TYPES)
    for name, svc in workers.items():
        env = svc["environment"]
        pools = Settings(_env_file=None, pools=env["REELFORGE_POOLS"]).pools  # type: ignore[call-arg]
        queue = PoolConfig(
            gpu_type=env["REELFORGE_WORKER_GPU_TYPE"],
            region=env["REELFORGE_WORKER_REGION"],
            model_versions=[],
        ).queue
        assert queue in {p.queue for p in pools}, name
        assert svc["profiles"] == [env["REELFORGE_WORKER_GPU_TYPE"].lower()], name
        assert svc["command"] == ["python", "-m", "workers"]
        assert svc["stop_grace_period"], name
        if env["REELFORGE_WORKER_GPU_TYPE"] == "CPU":
            assert "deploy" not in svc
            assert env["REELFORGE_WORKER_DEVICE"] == "cpu"
        else:
            devices = svc["deploy"]["resources"]["reservations"]["devices"]
            assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name


def test_dependencies_wait_for_health_and_every_long_running_service_has_a_healthcheck(
    config: dict[str, Any],
) -> None:
    for name, svc in config["services"].items():
        for dep, how in (svc.get("depends_on") or {}).items():
            target = config["services"][dep]
            if "healthcheck" in target:
                assert how["condition"] == "service_healthy", (name, dep)
            else:
                assert how["condition"] == "service_completed_successfully", (name, dep)
        if svc.get("restart") == "unless-stopped":
            assert svc["healthcheck"]["test"][0] == "CMD", name


def test_redis_keeps_an_append_only_file_on_a_volume(config: dict[str, Any]) -> None:
    redis = config["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert [v["target"] for v in redis["volumes"]] == ["/data"]


def test_flower_is_never_open() -> None:
    flower = RAW["services"]["flower"]
    # The login is required (`:?`) and reaches Flower through scheduler/flower.py.
    assert flower["environment"]["REELFORGE_FLOWER_BASIC_AUTH"].startswith("${REELFORGE_FLOWER_BASIC_AUTH:?")
