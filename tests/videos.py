"""Videos made by the tests with PyAV: flat test patterns, audio-only files and broken timestamps.

Encoding itself is the package's ``astar.pipelines.synthetic.write_video`` (any codec,
size, frame rate or explicit timestamps).
"""
from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

from astar.pipelines.synthetic import write_video

__all__ = [
    "level_frames", "patch_mp4_timescale", "write_audio_only", "write_one_timestamp_mjpeg", "write_raw_h264", "write_video",
]


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


def _encoded(stream: av.video.stream.VideoStream, frames: np.ndarray):
    """Packets of ``frames`` encoded at pts 0, 1, 2 … (then flushed)."""
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        yield from stream.encode(frame)
    yield from stream.encode()


def write_one_timestamp_mjpeg(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """MJPEG frames in Matroska, every packet muxed at pts 0 (as a broken muxer writes them)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuvj420p"
        for packet in _encoded(stream, frames):
            packet.pts = packet.dts = 0
            container.mux(packet)
    return path


def write_raw_h264(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """A raw Annex-B H.264 elementary stream: no container, so no timestamps."""
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for packet in _encoded(stream, frames):
            container.mux(packet)
    return path


def patch_mp4_timescale(path: Path, factor: int) -> Path:
    """Divide the time scales of an mp4's movie and media headers by ``factor``: every time becomes ``factor``× longer.

    The bytes of the frames are untouched; only the container lies (as a hand-edited
    or corrupted header does).
    """
    data = bytearray(path.read_bytes())
    for box in (b"mvhd", b"mdhd"):
        offset = data.find(box) + 4 + 4 + 8  # version+flags, creation and modification times (version 0)
        (scale,) = struct.unpack(">I", data[offset : offset + 4])
        data[offset : offset + 4] = struct.pack(">I", max(1, scale // factor))
    path.write_bytes(bytes(data))
    return path
