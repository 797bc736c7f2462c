"""Decode a video with PyAV and sample it at 2 fps by presentation timestamps.

Frame k of the sampled video is the decoded frame on screen at time k/fps: the
latest frame whose timestamp, measured from the stream's first frame, is ≤ k/fps,
for k = 0 … ⌈fps·duration⌉ − 1. Timestamps are handled as exact fractions, so
variable-frame-rate input gives the count its duration implies. Only sampled
frames are resized, inside FFmpeg's scaler; no full-resolution frame outlives
the next one, so memory stays bounded for long videos.

**Timestamps are checked, not trusted** (one rule, ``_timestamped``). A *frame
rate* is a declared rate of at most ``MAX_FRAME_RATE``: anything faster is the clock
the timestamps count in (Matroska's 1 ms tick, which a variable-frame-rate H.264
encode also writes as its "frame rate"; QuickTime's 600; MPEG's 90 kHz), never a
frame rate. Timestamps are ignored when a frame has none (a raw ``.h264`` stream),
when all frames share one (20 MJPEG frames muxed at one time), when they are *made
up*: every frame exactly one tick after the previous, with ticks shorter than the
nominal frame period (frames muxed at one time that a demuxer or muxer spread one
tick apart), or when the mean frame rate they imply, (N − 1) frames over their span,
is more than ``RATE_TOLERANCE`` times above or below the frame rate the codec itself
declares (H.264's timing information, which a container's patched time scale cannot
change: a 2 s clip whose header says 1024 s). Container rates are not used for the
mean-rate check: they are derived from the very timestamps in question. Ignored
timestamps make the frames count: N frames at the nominal frame rate (the codec's,
else the container's), and ``DecodedVideo.timing`` says why in one line. A lying
container costs bounded work: sampling stops trusting timestamps as soon as they run
``RATE_TOLERANCE`` times past the codec's rate (or ``UNKNOWN_RATE_BOUND``) after
``GRACE_S`` seconds, before the samples pile up.

**The video is the best real video stream**, as FFmpeg's best-stream selection
picks it: cover art (an ``attached_pic`` stream, which may come first) is never
the video. **Completeness is judged by that stream alone**: a file counts as
truncated when it decodes to much less than the duration its video stream declares
(``_declared_duration``); audio that outlasts the video, a video that starts after
the audio or a longer second video stream never make a file that plays "truncated".

**Display rotation is applied as players apply it.** A display matrix (the
rotation phones record for portrait clips) turns and mirrors every frame by
quarter turns before it is resized and cropped; ``DecodedVideo.rotation`` and
``mirrored`` record it.

Only regular files and URLs are opened: a FIFO or device is refused at once
instead of blocking, and a still image (PNG, JPEG … renamed ``.mp4``) is refused
as not a video.

This module must not import torch: it runs in the isolated decoder process.
"""
from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import AstarError
from .preprocessing import Preprocessing
from .store.ids import is_url, local_path
from .store.schema import FPS

TRUNCATION_TOLERANCE_S = 1.0
"""Decoded duration may fall this far (plus 10 %) short of the declared one before the file counts as truncated."""

MAX_FRAME_RATE = Fraction(300)
"""Fastest declared rate taken for a frame rate (frames/s): cameras record at most 240 fps, while
the clocks timestamps count in tick at 600 (QuickTime), 1000 (Matroska, WebM, FLV) or 90000 (MPEG)."""

RATE_TOLERANCE = 100
"""Timestamps whose mean frame rate is more than this factor above or below the stream's nominal
rate are ignored. Variable-frame-rate phone clips stay within a factor of 10; a patched time
scale or frames muxed at one timestamp are off by hundreds or more."""

GRACE_S = 600.0
"""Seconds of timestamps sampling always trusts before the running rate check can stop it."""

UNKNOWN_RATE_BOUND = Fraction(FPS)
"""Nominal rate assumed only to bound the work of a stream that declares none (frames/s)."""

DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX
ATTACHED_PIC = av.stream.Disposition.attached_pic


class DecodeError(AstarError):
    """A video that cannot be decoded; the message is one line saying why."""


class _UntrustedTimestamps(Exception):
    """Raised while sampling by timestamps when they break the rule; the message says how."""


@dataclass
class DecodedVideo:
    """A video sampled at ``fps`` and preprocessed to C3D's geometry.

    Attributes:
        frames: (N, 112, 112, 3) uint8 RGB frames, N = ⌈fps·duration⌉, as displayed (rotation applied).
        duration: seconds from the first frame's timestamp to the end of the last frame.
        source_fps: the stream's nominal frame rate (frames/s), None when unknown.
        width, height: size of the coded source frames in pixels (before rotation).
        rotation: counter-clockwise display rotation applied, in degrees (0, 90, 180 or -90).
        mirrored: the display matrix also mirrors the frames (applied).
        timing: ``timestamps``, or one line saying why timestamps were ignored and how it was sampled.
    """

    frames: np.ndarray
    duration: float
    source_fps: float | None
    width: int
    height: int
    rotation: int = 0
    mirrored: bool = False
    timing: str = "timestamps"


def open_container(source: str) -> av.container.InputContainer:
    """Open a local path or an fsspec URL (``s3://…``) for reading."""
    if is_url(source):
        import fsspec

        return av.open(fsspec.open(source, "rb").open())
    return av.open(source.removeprefix("file://"))


def decode_video(source: str | Path, preprocessing: Preprocessing, fps: int = FPS, threads: int | None = None) -> DecodedVideo:
    """Decode ``source`` and return its frames sampled at ``fps``, rotated for display, resized and cropped.

    ``threads``: FFmpeg decoding threads; None lets FFmpeg use every core (frame and slice
    threads), 1 decodes on one core, as a ``DecoderPool`` child does.

    Timestamps that break the rule of the module docstring are ignored: the file is
    decoded a second time and sampled by frame count at the nominal rate.

    Raises:
        DecodeError: the file is missing, not a regular file, empty, a still image,
            not a video, has no decodable frame, fails mid-stream, decodes to much
            less than its declared duration, or has unusable timestamps and no frame rate.
    """
    source = str(source)
    try:
        _refuse_special_file(source)
        with open_container(source) as container:
            stream = _video_stream(container, threads)
            try:
                video = _sample(_timestamped(container.decode(stream), stream), stream, preprocessing, fps)
            except _UntrustedTimestamps as reason:
                untrusted = str(reason)
            else:
                _check_complete(video.duration, container, stream)
                return video
        with open_container(source) as container:
            stream = _video_stream(container, threads)
            rate = _nominal_rate(stream)
            if rate is None:
                raise DecodeError(f"unusable timestamps ({untrusted}) and no frame rate to sample by")
            video = _sample(_by_frame_rate(container.decode(stream), rate), stream, preprocessing, fps)
            video.timing = (
                f"timestamps ignored ({untrusted}); sampled as {round(video.duration * rate)} frames "
                f"at {float(rate):g} fps"
            )
            return video
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except av.FFmpegError as error:
        raise DecodeError(f"FFmpeg cannot decode it ({_one_line(error.strerror or str(error))})") from None
    except (OSError, ValueError, EOFError) as error:
        raise DecodeError(f"{type(error).__name__}: {_one_line(str(error))}") from None


def _refuse_special_file(source: str) -> None:
    """A local source must be a regular file: a FIFO would block the decoder, a device never ends."""
    path = local_path(source)
    if path is None:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DecodeError("dangling symlink" if os.path.islink(path) else "file not found") from None
    except OSError as error:
        raise DecodeError(f"cannot open ({error.strerror or error})") from None
    if stat.S_ISDIR(mode):
        raise DecodeError("a folder, not a video file")
    if not stat.S_ISREG(mode):
        raise DecodeError("not a regular file (FIFO, socket or device); refused without reading")


def _video_stream(container: av.container.InputContainer, threads: int | None) -> av.video.stream.VideoStream:
    """The best real video stream (FFmpeg's choice, never cover art), set to decode on ``threads`` threads
    (None: FFmpeg's choice); still images are not videos."""
    real = [stream for stream in container.streams.video if not stream.disposition & ATTACHED_PIC]
    if not real:
        what = "only cover art" if container.streams.video else "no video stream"
        raise DecodeError(f"{what} (audio-only or not a video)")
    if container.format.name.endswith("_pipe") or container.format.name == "image2":
        raise DecodeError(f"a still image ({container.format.name.removesuffix('_pipe')}), not a video")
    best = container.streams.best("video")
    stream = best if best in real else real[0]
    if threads is None:
        stream.thread_type = "AUTO"
    else:
        stream.codec_context.thread_count = threads
    return stream


def _frame_rate(rate: object) -> Fraction | None:
    """A declared rate as a frame rate (frames/s); None when absent or faster than ``MAX_FRAME_RATE`` (a clock's tick rate)."""
    return Fraction(rate) if rate and 0 < Fraction(rate) <= MAX_FRAME_RATE else None


def _nominal_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The frame rate the stream declares: the codec's own, else the container's; None when neither declares one."""
    rates = (_frame_rate(rate) for rate in (stream.codec_context.framerate, stream.base_rate, stream.average_rate))
    return next((rate for rate in rates if rate), None)


def _codec_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """Frames/s the codec's own headers declare, independent of the container's timestamps; None if they don't."""
    return _frame_rate(stream.codec_context.framerate)


TimedFrames = Iterator[tuple[Fraction, av.VideoFrame, Fraction]]
"""(seconds since the first frame, frame, how long it stays on screen if it is the last)."""


def _timestamped(frames: Iterator[av.VideoFrame], stream: av.video.stream.VideoStream) -> TimedFrames:
    """Frames at their timestamps; raises ``_UntrustedTimestamps`` when they break the rule (module docstring)."""
    rate = _codec_rate(stream)
    bound = rate or UNKNOWN_RATE_BOUND
    first: Fraction | None = None
    previous_pts: int | None = None
    span, count, one_tick_apart = Fraction(0), 0, True
    tick = Fraction(0)
    for frame in frames:
        if frame.pts is None:
            raise _UntrustedTimestamps("a frame has no timestamp")
        if previous_pts is not None:
            one_tick_apart = one_tick_apart and frame.pts - previous_pts == 1
        previous_pts, tick = frame.pts, Fraction(frame.time_base)
        time = frame.pts * tick
        first = time if first is None else first
        time -= first
        count += 1
        if time > GRACE_S + RATE_TOLERANCE * Fraction(count, 1) / bound:
            raise _UntrustedTimestamps(
                f"frame {count} is stamped {float(time):.0f} s in, over {RATE_TOLERANCE}× slower than {float(bound):g} fps"
            )
        span = max(span, time)
        yield time, frame, _frame_duration(frame, stream)
    if count > 1 and not span:
        raise _UntrustedTimestamps(f"{count} frames share one timestamp")
    nominal = _nominal_rate(stream)
    if count > 2 and one_tick_apart and 1 / tick > (nominal or MAX_FRAME_RATE):
        against = f"the stream's {float(nominal):g} fps" if nominal else "no frame rate that fast"
        raise _UntrustedTimestamps(f"{count} frames stamped one tick ({float(tick) * 1000:g} ms) apart, against {against}")
    if count > 1 and rate and not rate / RATE_TOLERANCE <= (count - 1) / span <= rate * RATE_TOLERANCE:
        raise _UntrustedTimestamps(
            f"{count} frames stamped over {float(span):.3g} s, a mean {float((count - 1) / span):.3g} fps "
            f"against the codec's {float(rate):g} fps"
        )


def _by_frame_rate(frames: Iterator[av.VideoFrame], rate: Fraction) -> TimedFrames:
    """Frame i at i / rate seconds, whatever its timestamp says."""
    for index, frame in enumerate(frames):
        yield Fraction(index) / rate, frame, 1 / rate


def _sample(
    timed: TimedFrames,
    stream: av.video.stream.VideoStream,
    preprocessing: Preprocessing,
    fps: int,
) -> DecodedVideo:
    height, width = preprocessing.resize
    sampled: list[np.ndarray] = []
    held_frame: av.VideoFrame | None = None
    held_time = held_period = Fraction(0)
    held_pixels: np.ndarray | None = None
    orientation = _Orientation()

    def emit_until(limit: Fraction) -> None:
        """Append the held frame for every sample time k/fps < limit, resizing it once."""
        nonlocal held_pixels
        while Fraction(len(sampled), fps) < limit:
            if held_pixels is None:
                held_pixels = orientation.display(held_frame, width, height)
            sampled.append(held_pixels)

    for time, frame, period in timed:
        if held_frame is None:
            orientation = _Orientation.of(frame)
        elif time < held_time:
            continue  # out-of-order timestamp: the frame on screen is still the held one
        else:
            emit_until(time)
        held_frame, held_time, held_period, held_pixels = frame, time, period, None
    if held_frame is None:
        raise DecodeError("no decodable video frames")
    duration = held_time + held_period
    total = max(1, math.ceil(duration * fps))
    emit_until(Fraction(total, fps))
    frames = preprocessing.crop_frames(np.stack(sampled))
    rate = _nominal_rate(stream)
    return DecodedVideo(
        frames=np.ascontiguousarray(frames),
        duration=float(duration),
        source_fps=float(rate) if rate else None,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        rotation=orientation.rotation,
        mirrored=orientation.mirrored,
    )


@dataclass(frozen=True)
class _Orientation:
    """How a player turns coded frames for display: FFmpeg's display matrix as quarter turns and a mirror.

    The matrix's 2×2 part [[a, b], [c, d]] maps a coded pixel (x, y) to (a·x + c·y, b·x + d·y)
    on screen; for phone clips it is a signed permutation. ``swap`` exchanges x and y,
    ``flip_rows``/``flip_columns`` reverse the result's rows/columns.
    """

    swap: bool = False
    flip_rows: bool = False
    flip_columns: bool = False
    rotation: int = 0
    mirrored: bool = False

    @classmethod
    def of(cls, frame: av.VideoFrame) -> "_Orientation":
        matrix = next((np.frombuffer(bytes(data), "<i4") for data in frame.side_data if data.type == DISPLAYMATRIX), None)
        if matrix is None:
            return cls()
        a, b, c, d = (int(round(value / 65536)) for value in matrix[[0, 1, 3, 4]])
        if sorted(map(abs, (a, b, c, d))) != [0, 0, 1, 1] or (a == 0) != (d == 0):
            raise DecodeError(f"display rotation of {frame.rotation}° is not a quarter turn; not supported")
        swap = a == 0
        return cls(
            swap=swap,
            flip_rows=(b if swap else d) < 0,
            flip_columns=(c if swap else a) < 0,
            rotation=(round(frame.rotation) + 179) % 360 - 179,
            mirrored=a * d - b * c < 0,
        )

    def display(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        """``frame`` as displayed, resized to (height, width): (height, width, 3) uint8 RGB.

        The scaler resizes to the coded-orientation size, then the small image is turned:
        the same pixels as turning first and resizing after, for a fraction of the work.
        """
        coded_width, coded_height = (height, width) if self.swap else (width, height)
        pixels = frame.reformat(width=coded_width, height=coded_height, format="rgb24").to_ndarray()
        if self.swap:
            pixels = pixels.transpose(1, 0, 2)
        if self.flip_rows:
            pixels = pixels[::-1]
        if self.flip_columns:
            pixels = pixels[:, ::-1]
        return np.ascontiguousarray(pixels)


def _frame_duration(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> Fraction:
    """How long the last frame stays on screen: its own duration, else one nominal frame period."""
    if frame.duration:
        return Fraction(frame.duration) * frame.time_base
    rate = _nominal_rate(stream)
    return 1 / rate if rate else Fraction(0)


def _declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds the video stream itself declares, from its first frame; None when only other streams would say.

    Matroska's per-track ``DURATION`` tag (written from that track's own packets; it is the
    track's end time, so its start is taken off), else the stream's duration (mp4, avi),
    else the container's duration when the video is the file's only stream: with others
    it spans them too, and FFmpeg copies it into streams that declare none, so a stream's
    duration is only used when no tag says better.
    """
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    tag = next((value for key, value in stream.metadata.items() if key.upper() == "DURATION"), None)
    if tag is not None:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds) - start
        except ValueError:
            return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _check_complete(duration: Fraction, container: av.container.InputContainer, stream) -> None:
    """Refuse files that decode to much less than the duration their video stream declares."""
    declared = _declared_duration(container, stream)
    if declared and float(duration) < declared * 0.9 - TRUNCATION_TOLERANCE_S:
        raise DecodeError(f"truncated or corrupt: decoded {float(duration):.2f} s of {declared:.2f} s declared")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"
