"""The Python clients of the ReelForge API: `ReelForge` (blocking) and `AsyncReelForge` (asyncio).

    from scheduler.client import ReelForge

    rf = ReelForge()  # REELFORGE_API_BASE and REELFORGE_API_KEY, or pass api_base= and api_key=
    video = rf.run({"prompt": "a lighthouse at dusk", "model_version": "tiny-random",
                    "width": 128, "height": 80, "num_frames": 37}, output="lighthouse.mp4")

They are light (httpx and pydantic, nothing of the API's server side), run in your program, and retry
what is safe to retry: 429 and 503 (after their `Retry-After`) and connection errors, with exponential
backoff and jitter. Every submission carries an `Idempotency-Key` (one per call, the same on each retry
of it), so a retried submission never creates a second job.
"""

from scheduler.client.aio import AsyncReelForge
from scheduler.client.blocking import ReelForge
from scheduler.client.protocol import (
    DEFAULT_API_BASE,
    DEFAULT_API_KEY,
    JobEvent,
    JobFailed,
    ReelForgeError,
)

__all__ = [
    "DEFAULT_API_BASE",
    "DEFAULT_API_KEY",
    "AsyncReelForge",
    "JobEvent",
    "JobFailed",
    "ReelForge",
    "ReelForgeError",
]
