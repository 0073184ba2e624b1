"""The growing preview of a running job: the frames the sampler has decoded so far, as an MP4.

The sampler hands over frames as their causal blocks become final (`workers.sampler.FinalFrames`); a
background thread re-encodes everything so far and uploads it over `videos/<id>.preview.mp4` at most
every `REELFORGE_PREVIEW_INTERVAL_S`, then records it on the job. The sampler never waits for storage:
a slow or failing upload only makes the preview lag, and a preview that fails is not retried (the next
one carries its frames). Uploads are sequential, so a later preview never lands before an earlier one.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.errors import InvalidTransition, ReelForgeError
from shared.storage import Storage, preview_key
from workers.encoding import encode_mp4, to_uint8

log = logging.getLogger(__name__)


class PreviewPublisher:
    """One job's preview. `add` from the sampler's thread; `close` once the frames are all decoded."""

    def __init__(
        self,
        storage: Storage,
        job_id: str,
        fps: int,
        interval_s: float,
        record: Callable[[str, int], object],
        started: float | None = None,
    ) -> None:
        """`record(key, frames)` puts a finished upload on the job record (`JobStore.preview`); times
        count from `started` (a `time.perf_counter()`, by default now)."""
        self.storage = storage
        self.key = preview_key(job_id)
        self.fps = fps
        self.interval_s = interval_s
        self.record = record
        self.started = time.perf_counter() if started is None else started
        self.first_frames_s: float | None = None
        """Seconds from `started` to the first frames handed over."""
        self.first_preview_s: float | None = None
        """Seconds from `started` to the first preview on the job record."""
        self._chunks: list[np.ndarray] = []
        self._published = 0
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"preview-{job_id}", daemon=True)
        self._thread.start()

    def add(self, frames: np.ndarray) -> None:
        """The next frames of the video, (T, H, W, 3) floats in [0, 1] or uint8."""
        chunk = to_uint8(frames)
        with self._wake:
            if self.first_frames_s is None:
                self.first_frames_s = time.perf_counter() - self.started
            self._chunks.append(chunk)
            self._wake.notify()

    def close(self) -> None:
        """Stop: an upload under way finishes, frames not uploaded yet are dropped (the final video
        follows)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        last = float("-inf")
        while True:
            with self._wake:
                while not self._closed and self._frames() <= self._published:
                    self._wake.wait()
                if self._closed:
                    return
                frames = np.concatenate(self._chunks)
            # At most one upload per interval; the first as soon as there are frames.
            wait = last + self.interval_s - time.monotonic()
            if wait > 0:
                with self._wake:
                    if self._wake.wait_for(lambda: self._closed, timeout=wait):
                        return
                    frames = np.concatenate(self._chunks)
            last = time.monotonic()
            if not self._publish(frames):
                return

    def _frames(self) -> int:
        return sum(len(c) for c in self._chunks)

    def _publish(self, frames: np.ndarray) -> bool:
        """Upload and record `frames`; False once the job is no longer this worker's to preview."""
        try:
            with tempfile.TemporaryDirectory(prefix="reelforge-preview-") as tmp:
                path = Path(tmp) / "preview.mp4"
                encode_mp4(frames, self.fps, path)
                self.storage.put_file(self.key, path, "video/mp4")
            self.record(self.key, len(frames))
        except InvalidTransition as exc:
            log.info("preview stopped: %s", exc)
            return False
        except ReelForgeError as exc:
            log.warning("preview of %d frames not published: %s", len(frames), exc.message)
        except Exception:
            log.exception("preview of %d frames not published", len(frames))
        else:
            self._published = len(frames)
            if self.first_preview_s is None:
                self.first_preview_s = time.perf_counter() - self.started
        return True
