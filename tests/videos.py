"""Videos made by the tests with PyAV: any codec, size, frame rate, timestamps or corruption."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 1000)


def level_frames(levels: list[int], height: int = 64, width: int = 64) -> np.ndarray:
    """Flat grey frames whose brightness encodes their index: (T, H, W, 3) uint8."""
    return np.stack([np.full((height, width, 3), level, np.uint8) for level in levels])


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: list[float] | None = None,
) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames; ``times`` (seconds) gives variable frame rate."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = TIME_BASE
        if codec == "libx264":
            stream.options = {"qp": "0", "preset": "ultrafast"} if pix_fmt != "yuv420p" else {"crf": "1", "preset": "ultrafast"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            seconds = times[index] if times is not None else index / fps
            frame.pts = round(Fraction(seconds).limit_denominator(10**6) / TIME_BASE)
            frame.time_base = TIME_BASE
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


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
