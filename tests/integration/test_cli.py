"""The CLI as a user runs it: submit + wait and batches against the test stack, and `reelforge dev` up
and down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import psutil
import pytest

from scheduler.dev.stack import free_port, wait_until
from tests.integration.support import KEY_A, SMALL_REQUEST, Live, wait_for, wait_job

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
DEFAULTS = {k: v for k, v in SMALL_REQUEST.items() if k != "prompt"}


def cli(live: Live, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "scheduler.dev.cli", *args]
    env = os.environ | {"REELFORGE_API_BASE": live.base, "REELFORGE_API_KEY": KEY_A}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_submit_from_file_and_flags_then_wait_downloads(live: Live, tmp_path: Path) -> None:
    request = tmp_path / "req.json"
    request.write_text(json.dumps(SMALL_REQUEST))
    submitted = cli(live, "submit", "--file", str(request), "--seed", "12", "--fps", "8")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    out = tmp_path / "v.mp4"
    waited = cli(live, "wait", job_id, "--output", str(out))
    assert waited.returncode == 0, waited.stderr
    assert f"video: {out}" in waited.stdout
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (float(stream.average_rate), stream.width) == (8.0, 48)
    with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {KEY_A}"}) as api:
        assert api.get(f"/v1/jobs/{job_id}").json()["request"]["seed"] == 12


def test_submit_reports_validation_errors(live: Live) -> None:
    bad = cli(live, "submit", "--prompt", "x", "--model-version", "tiny-random", "--width", "40")
    assert bad.returncode == 2 and "width" in bad.stderr and "multiple of 16" in bad.stderr


def test_job_records_outlive_the_api_process(live: Live) -> None:
    flags = [
        "--prompt",
        "a lighthouse",
        "--model-version",
        "tiny-random",
        "--region",
        "local",
        "--width",
        "32",
    ]
    job_id = cli(live, "submit", *flags, "--height", "16", "--num-frames", "17").stdout.strip()
    other = live.stack.start_api(free_port(), name="api-second")
    try:
        seen = httpx.get(f"{other}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY_A}"})
        assert seen.status_code == 200 and seen.json()["request"]["prompt"] == "a lighthouse"
    finally:
        live.stack.kill("api-second")


def running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_dev_stack_starts_and_ctrl_c_leaves_nothing_running(tmp_path: Path) -> None:
    port, flower = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "scheduler.dev.cli",
        "dev",
        "--port",
        str(port),
        "--flower-port",
        str(flower),
    ]
    proc = subprocess.Popen([*argv, "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 90, "dev API")
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{flower}/healthcheck").status_code == 200, 60, "Flower"
        )
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in (line := proc.stdout.readline() if proc.stdout else ""):
            assert line and time.monotonic() < deadline
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # redis, API, Flower, worker
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        wait_for(lambda: not any(map(running, children)), 10, "every child of the dev stack to exit")
        assert [c.pid for c in children if running(c)] == []
        assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()  # persisted under the data folder
    finally:
        # On a failure above, stop the stack as a user would, then anything it left behind.
        if proc.poll() is None:
            leftovers = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            for child in leftovers:
                if child.is_running():
                    child.kill()


def test_cli_batch_end_to_end(live: Live, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps({"prompt": f"cli {i}", "seed": i}) + "\n" for i in range(3)))
    output = tmp_path / "out" / "manifest.jsonl"
    api_args = ["--api-base", live.base, "--api-key", KEY_A]
    argv = [
        sys.executable,
        "-m",
        "scheduler.dev.cli",
        "batch",
        str(requests),
        "--defaults",
        json.dumps(DEFAULTS),
    ]
    run = subprocess.run(
        [*argv, "--output", str(output), "--poll-s", "0.3", *api_args],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    entries = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(e["line"], e["status"]) for e in entries] == [
        (1, "succeeded"),
        (2, "succeeded"),
        (3, "succeeded"),
    ]
    assert "manifest:" in run.stdout and "succeeded=3" in run.stdout
    with live.client() as api:
        jobs = [wait_job(api, e["job_id"]) for e in entries]
    assert [j["request"]["seed"] for j in jobs] == [0, 1, 2]
    assert len({j["batch_id"] for j in jobs}) == 1

    requests.write_text(
        json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": "bad", "width": 40}) + "\n"
    )
    refused = subprocess.run(
        [*argv, "--output", str(tmp_path / "never.jsonl"), *api_args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "line 2: width: must be a multiple of 16, got 40" in refused.stderr
    assert not (tmp_path / "never.jsonl").exists()


def test_status_list_events_cancel_and_one_line_errors(live: Live) -> None:
    flags = ["--prompt", "queued", "--model-version", "tiny-random", "--region", "idle"]
    flags += ["--width", "48", "--height", "32", "--num-frames", "17"]
    job_id = cli(live, "submit", *flags).stdout.strip()
    status = cli(live, "status", job_id)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "queued"
    listed = cli(live, "list", "--status", "queued")
    assert listed.returncode == 0 and listed.stdout.startswith(job_id) and "CPU/idle" in listed.stdout
    events = subprocess.Popen(
        [sys.executable, "-m", "scheduler.dev.cli", "events", job_id],
        env=os.environ | {"REELFORGE_API_BASE": live.base, "REELFORGE_API_KEY": KEY_A},
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert events.stdout is not None
    first = json.loads(events.stdout.readline())
    assert (first["event"], first["status"]) == ("status", "queued")
    canceled = cli(live, "cancel", job_id)
    assert canceled.returncode == 0 and canceled.stdout.strip() == f"{job_id} canceled"
    last = json.loads(events.stdout.read().splitlines()[-1])
    assert (last["event"], last["status"]) == ("completed", "canceled") and events.wait(30) == 0

    again = cli(live, "cancel", job_id)
    assert again.returncode == 2 and again.stderr.startswith("error: already_finished: ")
    missing = cli(live, "status", "nope")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: not_found: job nope not found"
    down = cli(live, "list", "--api-base", "http://127.0.0.1:9")
    assert down.returncode == 2 and len(down.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr + again.stderr + down.stderr


def test_wait_shows_the_phase_and_help_names_the_env_vars(live: Live, tmp_path: Path) -> None:
    job_id = cli(live, "submit", "--file", _request(tmp_path)).stdout.strip()
    waited = cli(live, "wait", job_id, "--output", str(tmp_path / "v.mp4"))
    assert waited.returncode == 0, waited.stderr
    assert (
        "schedule iterations" in waited.stderr or "uploading" in waited.stderr or "encoding" in waited.stderr
    )
    helped = cli(live, "wait", "--help")
    assert "REELFORGE_API_BASE" in helped.stdout and "REELFORGE_API_KEY" in helped.stdout


def _request(tmp_path: Path) -> str:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(SMALL_REQUEST))
    return str(path)


def test_dev_prints_exports_and_stops_everything_on_sighup_or_a_closed_pipe(tmp_path: Path) -> None:
    for ending in ("hangup", "pipe"):
        port, flower = free_port(), free_port()
        argv = [sys.executable, "-m", "scheduler.dev.cli", "dev", "--port", str(port)]
        argv += ["--flower-port", str(flower), "--data-dir", str(tmp_path / ending)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            deadline = time.monotonic() + 120
            lines: list[str] = []
            while "Ctrl-C" not in (line := proc.stdout.readline()):
                assert line and time.monotonic() < deadline
                lines.append(line.strip())
            assert f"export REELFORGE_API_BASE=http://127.0.0.1:{port} REELFORGE_API_KEY=" in "\n".join(lines)
            children = psutil.Process(proc.pid).children(recursive=True)
            assert len(children) >= 4
            if ending == "hangup":
                proc.send_signal(signal.SIGHUP)
            else:
                proc.stdout.close()
            assert proc.wait(60) == 0
            wait_for(lambda: not any(map(running, children)), 15, f"every child to exit after {ending}")  # noqa: B023
        finally:
            if proc.poll() is None:
                leftovers = psutil.Process(proc.pid).children(recursive=True)
                proc.kill()
                for child in leftovers:
                    if child.is_running():
                        child.kill()
