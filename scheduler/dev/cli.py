"""`reelforge`: run the embedded stack, submit jobs, follow them.

reelforge dev [--port 8000]          Redis, storage, API, Flower and a CPU worker, until Ctrl-C
reelforge demo                       the stack, one job with a progress bar, the MP4's location
reelforge submit --prompt ... | --file req.json [--wait]
reelforge wait JOB_ID [--output video.mp4]   progress bar with the phase, then the MP4
reelforge status JOB_ID | list [--status S] | cancel JOB_ID | events JOB_ID
reelforge batch FILE.jsonl [--defaults JSON] [--output manifest.jsonl]

API commands read REELFORGE_API_BASE (default http://127.0.0.1:8000) and REELFORGE_API_KEY (default
the dev stack's rf-dev-key), or --api-base and --api-key. Errors are one line: `error: <code>: <message>`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from scheduler.client import DEFAULT_API_BASE, DEFAULT_API_KEY, JobEvent, ReelForge, ReelForgeError
from scheduler.dev.stack import Stack, free_port
from scheduler.dev.supervisor import ManagedPool, Supervisor
from shared.catalog import CPU_REQUEST
from shared.settings import get_settings
from shared.states import JobStatus
from shared.storage import S3Storage

DEMO_REQUEST: dict[str, Any] = dict(CPU_REQUEST)
"""The catalog's example request, CPU-sized for the tiny-random model version."""


def _client(args: argparse.Namespace) -> ReelForge:
    return ReelForge(args.api_base, args.api_key)


def start_stack(data_dir: Path, port: int, flower_port: int) -> tuple[Stack, str, str, Supervisor]:
    """Redis, the API, Flower, a CPU worker, the webhook delivery worker, and a supervisor that brings
    CPU workers back after their idle shutdown when work (or a prewarm) arrives, and restarts the
    delivery worker if it dies."""
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
        supervisor = Supervisor(stack, local, cpu_pools, keep_up={"delivery": stack.start_delivery}).start()
    except BaseException:
        stack.stop()
        raise
    return stack, base, flower, supervisor


def cmd_dev(args: argparse.Namespace) -> int:
    stopped = threading.Event()
    # Closing the terminal (SIGHUP) or the reader of our output (SIGPIPE, EPIPE) stops the stack as
    # Ctrl-C does: no child is left running without anyone to stop it.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopped.set())
    stack, base, flower, supervisor = start_stack(Path(args.data_dir), args.port, args.flower_port)
    key = get_settings().api_keys[0]
    try:
        say(f"ReelForge dev stack is up (logs in {args.data_dir}/logs)")
        say(f"  API         {base}   (docs {base}/docs, playground {base}/playground)")
        say(f"  API key     {key}")
        say(f"  Flower      {flower} (user:password {get_settings().flower_basic_auth})")
        say("In another terminal:")
        say(f"  export REELFORGE_API_BASE={base} REELFORGE_API_KEY={key}")
        say("Ctrl-C stops everything.")
        while not stopped.wait(1.0):
            if output_closed():
                stopped.set()
            # The delivery worker is not here: the supervisor starts it again (its `keep_up`).
            for name, proc in list(stack.procs.items()):
                if name in ("redis", "api", "flower") and proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    stopped.set()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        with contextlib.suppress(OSError):
            say("stopping…")
        supervisor.stop()
        stack.stop()
    return 0


def output_closed() -> bool:
    """Whether our stdout is a pipe whose reader has gone (`reelforge dev | tee log` and tee killed):
    nothing is being written then, so the error only shows when polled."""
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError):
        return True


def say(line: str) -> None:
    """Print and flush, so a closed pipe shows at once (BrokenPipeError) rather than at exit."""
    print(line, flush=True)


def follow_with_bar(client: ReelForge, job_id: str) -> Any:
    """The ended job, drawing its progress: the phase, and the denoising iterations of the
    diffusion-forcing schedule (more than `num_inference_steps` when `ar_step > 0`)."""
    bar = tqdm(total=1, unit="it", desc=job_id[:8], dynamic_ncols=True, file=sys.stderr)

    def on_event(event: JobEvent) -> None:
        progress = event.progress
        if progress is not None and progress.total:
            bar.total = progress.total
            bar.n = progress.step
        phase = progress.phase.value if progress is not None and progress.phase else None
        label = event.status if event.status != "running" or not phase else phase
        if phase == "denoising":
            label = "denoising (schedule iterations)"
        queued = event.job.queue_position if event.job is not None else None
        bar.set_postfix_str(label + (f" #{queued}" if queued else ""))
        bar.refresh()

    try:
        return client.wait(job_id, on_event=on_event)
    finally:
        bar.close()


def wait_with_bar(client: ReelForge, job_id: str, output: Path | None) -> int:
    job = follow_with_bar(client, job_id)
    if job.status != "succeeded" or job.result is None or not job.result.video_url:
        error = f"{job.error.code}: {job.error.message}" if job.error else job.status
        print(f"error: job {job_id} {job.status}: {error}", file=sys.stderr)
        return 1
    result = job.result
    target = output or Path(f"{job_id}.mp4")
    size = client.download(result.video_url, target)
    print(f"video: {target.resolve()} ({size} bytes, {result.frames} frames @ {result.fps} fps)")
    print(f"storage key: {result.storage_key}")
    print(f"url (expires {result.video_url_expires_at}): {result.video_url}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    port = args.port or free_port()
    stack, base, flower, supervisor = start_stack(Path(args.data_dir), port, free_port())
    try:
        print(f"stack up: API {base}, Flower {flower}, playground {base}/playground")
        client = ReelForge(base, get_settings().api_keys[0])
        job = client.submit(DEMO_REQUEST)
        print(f"submitted job {job.id} to {job.gpu_type}/{job.region}")
        return wait_with_bar(client, job.id, Path(args.output))
    finally:
        supervisor.stop()
        stack.stop()


def cmd_submit(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = json.loads(Path(args.file).read_text()) if args.file else {}
    for name in ("prompt", "negative_prompt", "model_version", "gpu_type", "region"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    for name in ("width", "height", "num_frames", "base_num_frames", "seed", "num_inference_steps", "fps"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    job = _client(args).submit(payload, wait_s=args.wait)
    print(job.model_dump_json(indent=2) if args.wait is not None else job.id)
    return 0 if args.wait is None or job.status == "succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    print(_client(args).get(args.job_id).model_dump_json(indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for job in _client(args).list(status=args.status, limit=args.limit):
        progress = job.progress
        phase = progress.phase.value if progress and progress.phase else ""
        where = f"{job.gpu_type}/{job.region}"
        print(f"{job.id}  {job.status:<9} {phase:<10} {where}  {job.created_at:%Y-%m-%d %H:%M:%S}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    job = _client(args).cancel(args.job_id)
    print(f"{job.id} {job.status}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """The job's event stream, one JSON line per event, until it ends."""
    for event in _client(args).stream(args.job_id):
        data = (
            event.job.model_dump(mode="json")
            if event.job
            else {"progress": event.progress and event.progress.model_dump(mode="json")}
        )
        print(json.dumps({"event": event.type, "id": event.id, "status": event.status, **data}), flush=True)
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
    except ReelForgeError as exc:
        error = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
        print(f"error: {exc}", file=sys.stderr)
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
    api.add_argument(
        "--api-base",
        default=os.environ.get("REELFORGE_API_BASE", DEFAULT_API_BASE),
        help=f"the API's base URL (env REELFORGE_API_BASE; default {DEFAULT_API_BASE})",
    )
    api.add_argument(
        "--api-key",
        default=os.environ.get("REELFORGE_API_KEY", DEFAULT_API_KEY),
        help=f"a bearer API key (env REELFORGE_API_KEY; default {DEFAULT_API_KEY}, the dev stack's)",
    )

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
    for name in ("width", "height", "num-frames", "base-num-frames", "seed", "num-inference-steps", "fps"):
        submit.add_argument(f"--{name}", dest=name.replace("-", "_"), type=int)
    submit.add_argument(
        "--wait",
        nargs="?",
        const=60.0,
        type=float,
        metavar="SECONDS",
        help="hold until the job ends (Prefer: wait; default 60 s, capped by the API) and print it",
    )
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

    status = sub.add_parser("status", parents=[api], help="the job as JSON (GET /v1/jobs/ID)")
    status.add_argument("job_id")
    status.set_defaults(func=cmd_status)

    listing = sub.add_parser("list", parents=[api], help="your jobs, newest first, one line each")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_list)

    cancel = sub.add_parser("cancel", parents=[api], help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_cancel)

    events = sub.add_parser("events", parents=[api], help="follow the job's event stream (JSON lines)")
    events.add_argument("job_id")
    events.set_defaults(func=cmd_events)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ReelForgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the API at {getattr(args, 'api_base', '?')}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
