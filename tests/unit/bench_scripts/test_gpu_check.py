"""`python -m bench.gpu_check --device cpu --tiny` runs every section of the GPU check and writes its
table, so the script a GPU machine runs once has been run by CI. Run as a subprocess: bench is not an
installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_check_runs_on_cpu_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "gpu-check.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--device",
            "cpu",
            "--tiny",
            "--out",
            str(out),
            "--tmp",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["model_s"]["plain"] > 0 and data["model_s"]["ours"] > 0
    assert "ours + compile" not in data["model_s"]  # compile_blocks is CUDA only
    assert data["exact_fp32"]["verdict"] == "pass" and data["exact_fp32"]["rel"] <= 1e-3
    assert data["frames_psnr_db"]["ours"] > 30  # BF16, default kernels: reported, not exact
    assert "flash-cpu" in data["sdpa_backends"]["ours"]
    assert data["host_syncs"]["ours"] == "n/a (CPU)"
    assert data["memory_plan"]["policy"] == "all"  # CPU: free memory unknown
    assert data["cold_start_s"]["seconds"] > data["cold_start_s"]["load_s"] > 0
    assert data["text_encoder_s"]["seconds"] > 0 and data["vae_decode_s"]["seconds"] > 0
    table = out.read_text()
    assert table == proc.stdout[: len(table)] or table in proc.stdout
    assert "| model time, s (loop, no decode) |" in table and "skipped" not in table
