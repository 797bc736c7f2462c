"""Videos made by the tests with PyAV: flat test patterns and audio-only files.

Encoding itself is the package's ``astar.pipelines.synthetic.write_video`` (any codec,
size, frame rate or explicit timestamps).
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from astar.pipelines.synthetic import write_video

__all__ = ["level_frames", "write_audio_only", "write_video"]


def level_frames(levels: list[int], height: int = 64, width: int = 64) -> np.ndarray:
    """Flat grey frames whose brightness encodes their index: (T, H, W, 3) uint8."""
    return np.stack([np.full((height, width, 3), level, np.uint8) for level in levels])


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """A file with one AAC audio stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        tone = (np.sin(np.arange(samples) / 5) * 0.1).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
