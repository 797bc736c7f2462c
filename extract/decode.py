"""Decode a video with PyAV and sample it at 2 fps by presentation timestamps.

Frame k of the sampled video is the decoded frame on screen at time k/fps: the
latest frame whose timestamp, measured from the stream's first frame, is ≤ k/fps,
for k = 0 … ⌈fps·duration⌉ − 1. Timestamps are handled as exact fractions, so
variable-frame-rate input gives the count its duration implies. Only sampled
frames are resized, inside FFmpeg's scaler; no full-resolution frame outlives
the next one, so memory stays bounded for long videos.

This module must not import torch: it runs in the isolated decoder process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import AstarError
from .preprocessing import Preprocessing
from .schema import FPS

TRUNCATION_TOLERANCE_S = 1.0
"""Decoded duration may fall this far (plus 10 %) short of the declared one before the file counts as truncated."""


class DecodeError(AstarError):
    """A video that cannot be decoded; the message is one line saying why."""


@dataclass
class DecodedVideo:
    """A video sampled at ``fps`` and preprocessed to C3D's geometry.

    Attributes:
        frames: (N, 112, 112, 3) uint8 RGB frames, N = ⌈fps·duration⌉.
        duration: seconds from the first frame's timestamp to the end of the last frame.
        source_fps: the stream's average frame rate (frames/s), None when unknown.
        width, height: size of the source frames in pixels.
    """

    frames: np.ndarray
    duration: float
    source_fps: float | None
    width: int
    height: int


def open_container(source: str) -> av.container.InputContainer:
    """Open a local path or an fsspec URL (``s3://…``) for reading."""
    if "://" in source and not source.startswith("file://"):
        import fsspec

        return av.open(fsspec.open(source, "rb").open())
    return av.open(source.removeprefix("file://"))


def decode_video(source: str | Path, preprocessing: Preprocessing, fps: int = FPS) -> DecodedVideo:
    """Decode ``source`` and return its frames sampled at ``fps``, resized and cropped.

    Raises:
        DecodeError: the file is missing, empty, not a video, has no decodable
            frame, fails mid-stream, or decodes to much less than its declared duration.
    """
    source = str(source)
    try:
        with open_container(source) as container:
            if not container.streams.video:
                raise DecodeError("no video stream (audio-only or not a video)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            video = _sample(container, stream, preprocessing, fps)
            _check_complete(video.duration, container, stream)
            return video
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except av.FFmpegError as error:
        raise DecodeError(f"FFmpeg cannot decode it ({_one_line(error.strerror or str(error))})") from None
    except (OSError, ValueError, EOFError) as error:
        raise DecodeError(f"{type(error).__name__}: {_one_line(str(error))}") from None


def _sample(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    preprocessing: Preprocessing,
    fps: int,
) -> DecodedVideo:
    height, width = preprocessing.resize
    sampled: list[np.ndarray] = []
    first_time: Fraction | None = None
    held_frame: av.VideoFrame | None = None
    held_time = Fraction(0)
    held_pixels: np.ndarray | None = None

    def emit_until(limit: Fraction) -> None:
        """Append the held frame for every sample time k/fps < limit, resizing it once."""
        nonlocal held_pixels
        while Fraction(len(sampled), fps) < limit:
            if held_pixels is None:
                held_pixels = held_frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
            sampled.append(held_pixels)

    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        time = Fraction(frame.pts) * frame.time_base
        if first_time is None:
            first_time = time
        time -= first_time
        if held_frame is not None and time < held_time:
            continue  # out-of-order timestamp: the frame on screen is still the held one
        if held_frame is not None:
            emit_until(time)
        held_frame, held_time, held_pixels = frame, time, None
    if held_frame is None:
        raise DecodeError("no decodable video frames")
    duration = held_time + _frame_duration(held_frame, stream)
    total = max(1, math.ceil(duration * fps))
    emit_until(Fraction(total, fps))
    frames = preprocessing.crop_frames(np.stack(sampled))
    rate = stream.average_rate or stream.guessed_rate
    return DecodedVideo(
        frames=np.ascontiguousarray(frames),
        duration=float(duration),
        source_fps=float(rate) if rate else None,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
    )


def _frame_duration(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> Fraction:
    """How long the last frame stays on screen: its own duration, else one nominal frame period."""
    if frame.duration:
        return Fraction(frame.duration) * frame.time_base
    rate = stream.average_rate or stream.guessed_rate
    return 1 / Fraction(rate) if rate else Fraction(0)


def _check_complete(duration: Fraction, container: av.container.InputContainer, stream) -> None:
    """Refuse files that decode to much less than the duration their container declares."""
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / av.time_base
    if declared and float(duration) < declared * 0.9 - TRUNCATION_TOLERANCE_S:
        raise DecodeError(f"truncated or corrupt: decoded {float(duration):.2f} s of {declared:.2f} s declared")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"
