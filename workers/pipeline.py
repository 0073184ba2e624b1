"""The pipeline this worker process keeps loaded across jobs (one model version at a time)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from diffusers import SkyReelsV2DiffusionForcingPipeline

from workers.models import load_pipeline, revision_of
from workers.sampler.warmup import warm_up


class PipelineHolder:
    """The loaded pipeline of this process, kept across jobs; loading another version replaces it."""

    def __init__(self, device: str, hf_home: Path | None, compile_blocks: bool = False) -> None:
        self.device = device
        self.hf_home = hf_home
        self.compile_blocks = compile_blocks
        self.version: str | None = None
        self.pipe: SkyReelsV2DiffusionForcingPipeline | None = None
        self.default_block_size = 1
        self.cold_start_s: float | None = None
        self.loaded_at: float | None = None
        self.revision = "unloaded"
        # A preload thread and the task thread may both ask for a version: load it once.
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self.pipe is not None

    def get(self, version: str) -> SkyReelsV2DiffusionForcingPipeline:
        """The pipeline for `version`, loading it on first use (a cold start)."""
        with self._lock:
            return self._get(version)

    def _get(self, version: str) -> SkyReelsV2DiffusionForcingPipeline:
        if self.pipe is None or self.version != version:
            self.pipe, self.version = None, None  # drop the old weights before loading new ones
            t0 = time.perf_counter()
            pipe = load_pipeline(version, self.device, self.hf_home)
            if self.compile_blocks and self.device.startswith("cuda"):
                # Compile before the worker reports warm, never inside a job's deadline.
                warm_up(pipe, compile_blocks=True)
            self.pipe = pipe
            self.cold_start_s = round(time.perf_counter() - t0, 3)
            self.loaded_at = time.time()
            self.version = version
            self.default_block_size = int(self.pipe.transformer.config.num_frame_per_block)
            self.revision = revision_of(version, self.pipe)
        # `_set_ar_attention` writes causal_block_size into the transformer config and it persists:
        # reset it so no request inherits the previous one's.
        self.pipe.transformer.register_to_config(num_frame_per_block=self.default_block_size)
        self.pipe._interrupt = False
        return self.pipe
