"""k8s/ renders, validates against the Kubernetes and KEDA schemas, and agrees with the code: each
pool's ScaledJob consumes the queue the code computes for its pool, and selectors find their pods."""

from __future__ import annotations

import copy
import importlib.util
import json
from typing import Any

import pytest
import yaml

from shared.catalog import GPU_TYPES
from shared.settings import PoolConfig, Settings
from tests.deploy import K8S, kustomize, pool_overlays

spec = importlib.util.spec_from_file_location("k8s_validate", K8S / "validate.py")
assert spec and spec.loader
validator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validator)

PLACEHOLDERS = {"POOL", "QUEUE", "GPU_TYPE", "REGION", "GPU_PRODUCT"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
SECRET_TEMPLATE = yaml.safe_load((K8S / "base" / "secret.template.yaml").read_text())


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(K8S / "base")


@pytest.fixture(scope="module")
def pools() -> dict[str, list[dict[str, Any]]]:
    return {p.name: kustomize(p) for p in pool_overlays()}


def config_map(base: list[dict[str, Any]]) -> dict[str, str]:
    return next(d for d in base if d["kind"] == "ConfigMap")["data"]


def scaled_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = [d for d in docs if d["kind"] == "ScaledJob"]
    return job


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in docs:
        if d["kind"] in WORKLOADS:
            out.append((d["metadata"]["name"], d["spec"]["template"]))
        elif d["kind"] == "ScaledJob":
            out.append((d["metadata"]["name"], d["spec"]["jobTargetRef"]["template"]))
    return out


def test_every_kustomization_validates_offline() -> None:
    assert validator.main([]) == 0


def test_the_validator_refuses_unknown_fields_and_bad_values(pools: dict[str, list[dict[str, Any]]]) -> None:
    job = scaled_job(next(iter(pools.values())))
    typo = copy.deepcopy(job)
    typo["spec"]["minReplicaCont"] = 0
    assert validator.validate(typo)
    pod = copy.deepcopy(job)
    pod["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert validator.validate(pod)  # caught by the Job schema, which KEDA's model leaves open
    quantity = copy.deepcopy(job)
    quantity["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = (
        "lots"
    )
    assert validator.validate(quantity)


def test_one_pool_overlay_per_gpu_type(pools: dict[str, list[dict[str, Any]]]) -> None:
    served = set()
    for docs in pools.values():
        env = {e["name"]: e["value"] for e in pod_specs(docs)[0][1]["spec"]["containers"][0]["env"]}
        served.add(env["REELFORGE_WORKER_GPU_TYPE"])
    assert served == set(GPU_TYPES) - {"CPU"}


def test_each_scaled_job_listens_on_its_pools_queue(
    base: list[dict[str, Any]], pools: dict[str, list[dict[str, Any]]]
) -> None:
    configured = {p.queue for p in Settings(_env_file=None, pools=config_map(base)["REELFORGE_POOLS"]).pools}  # type: ignore[call-arg]
    for overlay, docs in pools.items():
        job = scaled_job(docs)
        (container,) = job["spec"]["jobTargetRef"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        pool = PoolConfig(
            gpu_type=env["REELFORGE_WORKER_GPU_TYPE"],
            region=env["REELFORGE_WORKER_REGION"],
            model_versions=[],
        )
        (trigger,) = job["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == pool.queue, overlay
        assert pool.queue in configured, f"{overlay}: {pool.queue} missing from REELFORGE_POOLS"
        assert overlay == f"{pool.gpu_type.lower()}-{pool.region}"
        label = job["metadata"]["labels"]["reelforge.io/pool"]
        assert (
            label
            == overlay
            == job["spec"]["jobTargetRef"]["template"]["metadata"]["labels"]["reelforge.io/pool"]
        )
        assert not PLACEHOLDERS & set(json.dumps(job).replace('"', " ").split()), overlay


def test_scaled_jobs_scale_from_zero_without_killing_or_restarting_workers(
    base: list[dict[str, Any]], pools: dict[str, list[dict[str, Any]]]
) -> None:
    execution_timeout = float(config_map(base)["REELFORGE_EXECUTION_TIMEOUT_S"])
    for overlay, docs in pools.items():
        spec = scaled_job(docs)["spec"]
        assert spec["minReplicaCount"] == 0
        assert spec["rollout"]["strategy"] == "gradual", overlay
        assert spec["scalingStrategy"] == {"strategy": "accurate", "pendingPodConditions": ["Ready"]}
        pod = spec["jobTargetRef"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert spec["jobTargetRef"]["backoffLimit"] == 0
        assert pod["terminationGracePeriodSeconds"] > execution_timeout
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", "workers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert container["readinessProbe"]["exec"]["command"] == ["python", "-m", "shared.probes", "worker"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        (expression,) = terms["nodeSelectorTerms"][0]["matchExpressions"]
        assert expression["key"] == "nvidia.com/gpu.product" and expression["values"], overlay
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["hf-cache"]["mountPath"] == env["REELFORGE_HF_HOME"] and mounts["hf-cache"]["readOnly"]
        assert env["HF_HUB_OFFLINE"] == "1"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["hf-cache"]["persistentVolumeClaim"]["claimName"] == "reelforge-hf-cache"


def test_selectors_find_their_pods(base: list[dict[str, Any]]) -> None:
    pods = {name: t["metadata"]["labels"] for name, t in pod_specs(base)}
    for d in base:
        selector = None
        if d["kind"] in {"Deployment", "StatefulSet", "PodDisruptionBudget"}:
            selector = d["spec"]["selector"]["matchLabels"]
        elif d["kind"] == "Service":
            selector = d["spec"]["selector"]
        if selector is None:
            continue
        matched = [n for n, labels in pods.items() if selector.items() <= labels.items()]
        assert matched, f"{d['kind']}/{d['metadata']['name']} selects no pod"
        if d["kind"] in {"Deployment", "StatefulSet"}:
            assert matched == [d["metadata"]["name"]], f"{d['metadata']['name']} selects {matched}"
    hpa = next(d for d in base if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] in pods


def test_api_probes_and_flower_auth(base: list[dict[str, Any]]) -> None:
    api = next(t for n, t in pod_specs(base) if n == "reelforge-api")["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "REELFORGE_FLOWER_BASIC_AUTH" in SECRET_TEMPLATE["stringData"]


def test_pods_run_locked_down(base: list[dict[str, Any]], pools: dict[str, list[dict[str, Any]]]) -> None:
    docs = base + [d for p in pools.values() for d in p] + kustomize(K8S / "jobs" / "hf-download")
    for name, template in pod_specs(docs):
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            assert ":" in c["image"] and not c["image"].endswith(":latest"), name


def test_settings_are_real_and_the_secret_template_holds_no_secret(base: list[dict[str, Any]]) -> None:
    fields = {f"REELFORGE_{name.upper()}" for name in Settings.model_fields}
    keys = set(config_map(base)) | set(SECRET_TEMPLATE["stringData"])
    assert {k for k in keys if k.startswith("REELFORGE_")} <= fields
    assert all("changeme" in v for v in SECRET_TEMPLATE["stringData"].values())
    assert not any(d["kind"] == "Secret" for d in base)  # `kubectl apply -k` never overwrites the real one


def test_every_overlay_renders_from_the_worker_template() -> None:
    for overlay in pool_overlays():
        text = (overlay / "kustomization.yaml").read_text()
        assert "../../worker" in text, overlay
