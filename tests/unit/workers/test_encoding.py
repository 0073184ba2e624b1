"""The MP4 the worker uploads: H.264, yuv420p, the requested fps, index first (faststart)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from workers.encoding import encode_mp4


def test_mp4_is_h264_yuv420p_faststart_with_fps(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).random((9, 32, 48, 3), dtype=np.float32)
    path = tmp_path / "v.mp4"
    encode_mp4(frames, 8, path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.format.name) == ("h264", "yuv420p")
        assert (stream.width, stream.height, float(stream.average_rate)) == (48, 32, 8.0)
        assert sum(1 for _ in container.decode(stream)) == 9
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
