"""`python -m bench.sampler --preset gpu-catalog` runs its code path on the CPU and ours matches plain.

bench is not an installed package, so the script runs as a subprocess from the repository root, as a
person or CI would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_catalog_preset_runs_on_cpu_and_matches(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["--preset", "gpu-catalog", "--device", "cpu", "--tiny", "--dtype", "fp32", "--sdpa", "math"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sampler", *args, "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["impl"]: r for r in result["rows"]}
    assert set(rows) == {"plain pipeline", "ours"}
    assert result["device"] == "cpu" and result["tiny"]
    # One attention kernel, FP32: the only differences left are matmul rounding over fewer rows.
    assert rows["ours"]["latents_rel_diff"] <= 1e-4
    assert rows["ours"]["psnr_db"] >= 60
    assert "ours" in proc.stdout and "plain pipeline" in proc.stdout
