"""Frames → a browser-playable MP4: H.264, yuv420p, the requested fps, `faststart` (moov first)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (the pipeline's `np` output) to 8-bit, rounding to nearest."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_mp4(frames: np.ndarray, fps: int, path: Path, crf: int = 18) -> None:
    """`frames`: (T, H, W, 3) floats in [0, 1] or uint8. H and W must be even (yuv420p)."""
    frames = to_uint8(frames)
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
