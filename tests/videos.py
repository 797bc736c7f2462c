"""Videos made by the tests with PyAV: flat test patterns, audio-only files and broken timestamps.

Encoding itself is the package's ``astar.pipelines.synthetic.write_video`` (any codec,
size, frame rate or explicit timestamps).
"""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from astar.pipelines.synthetic import write_video

__all__ = [
    "level_frames", "patch_mp4_timescale", "write_audio_only", "write_one_timestamp_mjpeg", "write_raw_h264", "write_video",
    "write_at_one_time", "write_millisecond_vfr", "write_with_audio", "write_with_cover_art_first",
]

ENCODERS = {".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".mov": "libx264"}
"""The video encoder the tests use for each container."""


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


def _add_video(container: av.container.OutputContainer, codec: str, frames: np.ndarray, fps: int):
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    stream.codec_context.thread_count = 1
    return stream


def write_at_one_time(path: Path, frames: np.ndarray, fps: int = 10, codec: str | None = None, spread: bool = False) -> Path:
    """Frames muxed at one timestamp (``spread``: each one tick of the container's clock after the previous,
    as FFmpeg's muxing bumps equal timestamps); the stream still declares ``fps``."""
    with av.open(str(path), "w") as container:
        stream = _add_video(container, codec or ENCODERS[path.suffix], frames, fps)
        for index, packet in enumerate(_encoded(stream, frames)):
            packet.pts = packet.dts = index if spread else 0
            packet.time_base = stream.time_base or Fraction(1, fps)  # the muxer's own clock once the header is written
            container.mux(packet)
    return path


def write_with_audio(path: Path, frames: np.ndarray, fps: int, audio_seconds: float, video_start: float = 0.0,
                     second_video: np.ndarray | None = None, codec: str | None = None) -> Path:
    """A video stream starting at ``video_start`` seconds beside silent audio of ``audio_seconds`` from 0
    (and, with ``second_video``, a second video stream after the first)."""
    rate = 48000
    with av.open(str(path), "w") as container:
        codec = codec or ENCODERS[path.suffix]
        videos = [_add_video(container, codec, clip, fps) for clip in (frames, second_video) if clip is not None]
        audio = container.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=rate) if audio_seconds else None
        for stream, clip in zip(videos, (frames, second_video)):
            for index, image in enumerate(clip):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = index + round(video_start * fps), Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        if audio is not None:
            for start in range(0, int(rate * audio_seconds), 960):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the ISO-BMFF boxes between ``start`` and ``end``."""
    found, position = [], start
    while position < end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        found.append((kind, position, size))
        position += size
    return found


def write_with_cover_art_first(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """An mp4 with cover art (an ``attached_pic`` MJPEG image) that FFmpeg lists as stream 0, before the video.

    FFmpeg writes the cover into ``moov/udta`` after the tracks; moving ``udta`` first (as
    other taggers write it) makes the demuxer create the cover's stream first. Only boxes
    inside ``moov`` move, so every sample offset stays right.
    """
    with av.open(str(path), "w") as container:
        cover = _add_video(container, "mjpeg", frames[:1], fps)
        cover.disposition = av.stream.Disposition.attached_pic
        video = _add_video(container, "libx264", frames, fps)
        for packet in _encoded(video, frames):
            container.mux(packet)
        for packet in _encoded(cover, level_frames([200], *frames.shape[1:3])):
            container.mux(packet)
    data = bytearray(path.read_bytes())
    _, start, size = next(box for box in _boxes(data, 0, len(data)) if box[0] == b"moov")
    children = _boxes(data, start + 8, start + size)
    order = sorted(children, key=lambda box: {b"mvhd": 0, b"udta": 1}.get(box[0], 2))
    data[start + 8 : start + size] = b"".join(bytes(data[offset : offset + length]) for _, offset, length in order)
    path.write_bytes(bytes(data))
    return path


def write_millisecond_vfr(path: Path, frames: np.ndarray, times: list[float]) -> Path:
    """Variable-frame-rate frames at ``times`` (seconds) encoded in a 1 ms time base, as phones and
    ``ffmpeg -fps_mode vfr`` write them: the encoder's clock is 1000 ticks/s, and H.264 declares it as "1000 fps"."""
    with av.open(str(path), "w") as container:
        stream = _add_video(container, ENCODERS[path.suffix], frames, 1000)
        for image, time in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
