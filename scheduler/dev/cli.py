"""`reelforge`: run the embedded stack, submit jobs, wait for them.

reelforge dev [--port 8000]          Redis, storage, API, Flower and a CPU worker, until Ctrl-C
reelforge demo                       the stack, one job with a progress bar, the MP4's location
reelforge submit --prompt ... | --file req.json
reelforge wait JOB_ID [--output video.mp4]
reelforge batch FILE.jsonl [--defaults JSON] [--output manifest.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scheduler.dev.client import ApiError, Client
from scheduler.dev.stack import Stack, free_port
from scheduler.dev.supervisor import ManagedPool, Supervisor
from shared.catalog import CPU_REQUEST
from shared.settings import get_settings
from shared.storage import S3Storage

DEMO_REQUEST: dict[str, Any] = dict(CPU_REQUEST)
"""The catalog's example request, CPU-sized for the tiny-random model version."""


def _client(args: argparse.Namespace) -> Client:
    return Client(args.api_base, args.api_key)


def start_stack(data_dir: Path, port: int, flower_port: int) -> tuple[Stack, str, str, Supervisor]:
    """Redis, the API, Flower, a CPU worker, and a supervisor that brings CPU workers back after
    their idle shutdown when work (or a prewarm) arrives."""
    settings = get_settings()
    stack = Stack(
        data_dir,
        env={
            "REELFORGE_STORAGE_BACKEND": "local",
            "REELFORGE_STORAGE_DIR": str((data_dir / "storage").resolve()),
            "REELFORGE_API_KEYS": ",".join(settings.api_keys),
        },
    )
    try:
        stack.start_redis(free_port(), persist=True)
        base = stack.start_api(port)
        flower = stack.start_flower(flower_port, settings.flower_basic_auth)
        stack.start_worker("cpu-worker")
        stack.start_delivery()
        cpu_pools = [ManagedPool(p) for p in settings.pools if p.gpu_type == "CPU"]
        local = settings.model_copy(update={"redis_url": stack.env["REELFORGE_REDIS_URL"]})
        supervisor = Supervisor(stack, local, cpu_pools).start()
    except BaseException:
        stack.stop()
        raise
    return stack, base, flower, supervisor


def cmd_dev(args: argparse.Namespace) -> int:
    stack, base, flower, supervisor = start_stack(Path(args.data_dir), args.port, args.flower_port)
    print(f"ReelForge dev stack is up (logs in {args.data_dir}/logs)")
    print(f"  API      {base}")
    print(f"  API key  {get_settings().api_keys[0]}")
    print(f"  Flower   {flower} (user:password {get_settings().flower_basic_auth})")
    print("Ctrl-C stops everything.")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            for name, proc in stack.procs.items():
                if name in ("redis", "api", "flower", "delivery") and proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    stopped.set()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping…")
        supervisor.stop()
        stack.stop()
    return 0


def wait_with_bar(client: Client, job_id: str, output: Path | None) -> int:
    bar = tqdm(total=1, unit="step", desc=job_id[:8], dynamic_ncols=True)

    def on_update(job: dict[str, Any]) -> None:
        progress = job.get("progress") or {}
        if progress.get("total"):
            bar.total = progress["total"]
            bar.n = progress["step"]
        bar.set_postfix_str(
            job["status"] + (f" #{job['queue_position']}" if job.get("queue_position") else "")
        )
        bar.refresh()

    job = client.wait(job_id, on_update)
    bar.close()
    if job["status"] != "succeeded":
        print(f"job {job_id} {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    result = job["result"]
    target = output or Path(f"{job_id}.mp4")
    size = client.download(result["video_url"], target)
    print(f"video: {target.resolve()} ({size} bytes, {result['frames']} frames @ {result['fps']} fps)")
    print(f"storage key: {result['storage_key']}")
    print(f"url (expires {result['video_url_expires_at']}): {result['video_url']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    port = args.port or free_port()
    stack, base, flower, supervisor = start_stack(Path(args.data_dir), port, free_port())
    try:
        print(f"stack up: API {base}, Flower {flower}")
        client = Client(base, get_settings().api_keys[0])
        job = client.submit(DEMO_REQUEST)
        print(f"submitted job {job['id']} to {job['gpu_type']}/{job['region']}")
        return wait_with_bar(client, job["id"], Path(args.output))
    finally:
        supervisor.stop()
        stack.stop()


def cmd_submit(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = json.loads(Path(args.file).read_text()) if args.file else {}
    for name in ("prompt", "negative_prompt", "model_version", "gpu_type", "region"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    for name in ("width", "height", "num_frames", "seed", "num_inference_steps", "fps"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    try:
        job = _client(args).submit(payload)
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(job["id"])
    return 0


def cmd_storage_lifecycle(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.storage_backend != "s3":
        print("REELFORGE_STORAGE_BACKEND is not s3: the local store is swept by the API", file=sys.stderr)
        return 2
    days = args.days or settings.retention_days
    storage = S3Storage(settings)
    if args.create_bucket:
        storage.ensure_bucket()
    config = storage.apply_lifecycle(days)
    print(json.dumps(config, indent=2))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Submit a JSONL file as one batch, follow it with a progress bar, write its manifest."""
    try:
        defaults = json.loads(args.defaults) if args.defaults else None
    except json.JSONDecodeError as exc:
        print(f"--defaults: not valid JSON: {exc}", file=sys.stderr)
        return 2
    client = _client(args)
    try:
        batch = client.submit_batch_jsonl(Path(args.file).read_bytes(), defaults)
    except ApiError as exc:
        error = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
        print(f"HTTP {exc.status}: {error.get('message', exc)}", file=sys.stderr)
        for problem in error.get("errors", [])[1:]:
            print(f"  {problem['message']}", file=sys.stderr)
        return 2
    print(f"batch {batch['id']}: {batch['total']} jobs", file=sys.stderr)
    bar = tqdm(total=batch["total"], unit="job", desc=batch["id"][:8], dynamic_ncols=True)

    def on_update(current: dict[str, Any]) -> None:
        counts = current["counts"]
        bar.n = current["total"] - counts["queued"] - counts["running"]
        bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in counts.items() if v))
        bar.refresh()

    try:
        batch = client.wait_batch(batch["id"], on_update, poll_s=args.poll_s)
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped following; batch {batch['id']} keeps running", file=sys.stderr)
        return 130
    bar.close()
    manifest = batch["manifest"]
    target = Path(args.output) if args.output else Path(f"{batch['id']}.manifest.jsonl")
    client.download(manifest["url"], target)
    counts = batch["counts"]
    print(f"manifest: {target.resolve()} ({manifest['lines']} lines; storage key {manifest['storage_key']})")
    print(
        f"video links in it expire at {manifest['video_urls_expire_at']}; "
        "each line's storage_key stays valid, and GET /v1/jobs/ID signs a fresh link"
    )
    print(" ".join(f"{k}={v}" for k, v in counts.items() if v))
    return 0 if counts["succeeded"] == batch["total"] else 1


def cmd_wait(args: argparse.Namespace) -> int:
    return wait_with_bar(_client(args), args.job_id, Path(args.output) if args.output else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reelforge", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--api-base", default=os.environ.get("REELFORGE_API_BASE", "http://127.0.0.1:8000"))
    api.add_argument("--api-key", default=os.environ.get("REELFORGE_API_KEY", get_settings().api_keys[0]))

    dev = sub.add_parser("dev", help="run the embedded stack until Ctrl-C")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--flower-port", type=int, default=5555)
    dev.add_argument("--data-dir", default="data")
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="start the stack, run one job, print where the MP4 is")
    demo.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    demo.add_argument("--data-dir", default="data")
    demo.add_argument("--output", default="out/demo.mp4")
    demo.set_defaults(func=cmd_demo)

    submit = sub.add_parser("submit", parents=[api], help="submit a job; prints its id")
    submit.add_argument("--file", help="JSON request body; flags override its fields")
    submit.add_argument("--prompt")
    submit.add_argument("--negative-prompt", dest="negative_prompt")
    submit.add_argument("--model-version", dest="model_version")
    submit.add_argument("--gpu-type", dest="gpu_type")
    submit.add_argument("--region")
    for name in ("width", "height", "num-frames", "seed", "num-inference-steps", "fps"):
        submit.add_argument(f"--{name}", dest=name.replace("-", "_"), type=int)
    submit.set_defaults(func=cmd_submit)

    lifecycle = sub.add_parser("storage-lifecycle", help="apply the retention rule to the S3 bucket")
    lifecycle.add_argument("--days", type=int, help="default: REELFORGE_RETENTION_DAYS")
    lifecycle.add_argument(
        "--create-bucket", action="store_true", help="create REELFORGE_S3_BUCKET first if missing"
    )
    lifecycle.set_defaults(func=cmd_storage_lifecycle)

    batch = sub.add_parser("batch", parents=[api], help="submit a JSONL file as a batch; write its manifest")
    batch.add_argument("file", help="JSONL: one request per line")
    batch.add_argument("--defaults", help="JSON object of fields every line starts from")
    batch.add_argument("--output", help="where to write the manifest (default: BATCH_ID.manifest.jsonl)")
    batch.add_argument("--poll-s", dest="poll_s", type=float, default=1.0, help=argparse.SUPPRESS)
    batch.set_defaults(func=cmd_batch)

    wait = sub.add_parser("wait", parents=[api], help="progress bar until done, then download the MP4")
    wait.add_argument("job_id")
    wait.add_argument("--output", help="where to write the MP4 (default: JOB_ID.mp4)")
    wait.set_defaults(func=cmd_wait)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
