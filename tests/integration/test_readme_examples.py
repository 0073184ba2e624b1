"""The README's "Use it" examples, run as written (shell and Python) against the test stack, with
`REELFORGE_API_BASE` and `REELFORGE_API_KEY` exported as `reelforge dev` tells a user to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.integration.support import KEY_A, Live

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SECTION = (ROOT / "README.md").read_text().split("## Use it", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)


@pytest.fixture
def user_env(live: Live, tmp_path: Path) -> dict[str, str]:
    """A shell where `reelforge` is this checkout's CLI, as `pip install` would put it on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "reelforge"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m scheduler.dev.cli "$@"\n')
    shim.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return os.environ | {
        "PATH": path,
        "PYTHONPATH": str(ROOT),
        "REELFORGE_API_BASE": live.base,
        "REELFORGE_API_KEY": KEY_A,
    }


def test_shell_examples_run_as_written(user_env: dict[str, str], tmp_path: Path) -> None:
    [script] = blocks("sh")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert '"event": "completed"' in run.stdout and "video: " in run.stdout
    assert '"status": "succeeded"' in run.stdout  # the `Prefer: wait` curl got the ended job
    assert "event: completed" in run.stdout  # the curl -N stream of the ended job
    with av.open(str(tmp_path / "fox.mp4")) as container:
        assert container.streams.video[0].width == 128


@pytest.mark.parametrize(("block", "videos"), [(0, ["boat.mp4"]), (1, ["0.mp4", "1.mp4"])])
def test_python_examples_run_as_written(
    user_env: dict[str, str], tmp_path: Path, block: int, videos: list[str]
) -> None:
    assert len(blocks("python")) == 2
    script = blocks("python")[block]
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == videos
    assert all((tmp_path / video).stat().st_size > 1000 for video in videos)
