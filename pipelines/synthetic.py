"""Synthetic captioned videos: moving shapes whose captions name colour, shape, size, direction and count.

A small, fully known captioning task for the demo and for tests: ``generate_dataset``
writes short H.264 clips of one or two identical shapes crossing the frame, and a
captions CSV in the generic ``video_id,caption,split`` form, e.g.

    synth0003,a small red circle moves to the left,train
    synth0003,a red circle is moving left,train

Everything a caption says is visible to the extraction stage (2 fps sampling, frames
resized to 112×112): shapes span 24 % (small) or 42 % (large) of the frame's shorter
side, colours are saturated on a dark background, and the motion runs from one edge
of the frame to the other over the whole clip, so every 2-fps sample sees a
different position. Clips vary in frame rate (``FRAME_RATES``), size
(``FRAME_SIZES``, portrait included) and duration (2–8 s by default).

The same seed gives the same parameters and byte-identical clips and captions CSV. ``write_video`` is the project's in-process PyAV encoder for
(T, H, W, 3) frames; tests elsewhere reuse it to make videos.
"""
from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (240, 50, 50),
    "green": (40, 190, 60),
    "blue": (60, 110, 255),
    "yellow": (235, 215, 40),
    "white": (245, 245, 245),
}
"""Bright, saturated RGB on a dark background (levels 10–35): every shape differs from the
background in brightness, not only in colour, which yuv420p stores at half resolution."""
SIZES: dict[str, float] = {"small": 0.12, "large": 0.21}
"""Shape radius as a fraction of the frame's shorter side. Large is 1.75× small, and
two large shapes still fit side by side across the shorter side."""
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
"""Unit motion (dx, dy) in image coordinates (y grows downwards)."""
COUNTS: tuple[int, ...] = (1, 2)
BACKGROUNDS: tuple[str, ...] = ("plain", "textured")

FRAME_RATES: tuple[int, ...] = (12, 15, 24, 25, 30)
FRAME_SIZES: tuple[tuple[int, int], ...] = ((160, 120), (176, 144), (128, 128), (96, 160))
"""(width, height) in pixels; all even, as yuv420p requires; (96, 160) is portrait."""
DURATION_RANGE_S: tuple[float, float] = (2.0, 8.0)

SPLIT_FRACTIONS: dict[str, float] = {"train": 0.70, "val": 0.15, "test": 0.15}
CAPTIONS_FILE = "captions.csv"
CAPTION_COLUMNS: tuple[str, ...] = ("video_id", "caption", "split")

_EDGE_MARGIN_PX = 2
_TEXTURE_AMPLITUDE = 8.0
_ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast", "x264-params": "asm=0"}}
"""x264's assembly reads memory it never wrote for some frame sizes (176×144, 160×120): the same
frames gave 2–6 different files in 16 encodes, depending on what the process had freed before.
Plain C code (asm=0) writes the same bytes every time, at twice the encoding time (7 s for 96 demo clips)."""

_Value = TypeVar("_Value")

_COUNT_WORDS = {1: "a", 2: "two"}
_SIZE_SYNONYMS = {"small": "little", "large": "big"}
_DIRECTION_WORDS = {
    "left": ("to the left", "left"),
    "right": ("to the right", "right"),
    "up": ("up", "upwards"),
    "down": ("down", "downwards"),
}


@dataclass(frozen=True)
class SyntheticClip:
    """One generated video and what it shows.

    ``captions`` are paraphrases of the same content, canonical one first.
    ``width``/``height`` in pixels, ``fps`` in frames per second, ``n_frames``
    frames, so the clip lasts ``n_frames / fps`` seconds.
    """

    video_id: str
    filename: str
    captions: list[str]
    split: str
    shape: str
    colour: str
    size: str
    direction: str
    count: int
    background: str
    fps: int
    n_frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return self.n_frames / self.fps


def clip_captions(shape: str, colour: str, size: str, direction: str, count: int) -> list[str]:
    """Paraphrased captions of ``count`` identical shapes moving in ``direction``, canonical first.

    >>> clip_captions("circle", "red", "small", "left", 1)[:2]
    ['a small red circle moves to the left', 'a red circle is moving left']
    """
    det = _COUNT_WORDS[count]
    noun = shape if count == 1 else f"{shape}s"
    is_, there_is = ("is", "there is") if count == 1 else ("are", "there are")
    towards, bare = _DIRECTION_WORDS[direction]

    def verb(singular: str) -> str:
        return singular if count == 1 else singular.removesuffix("s")

    return [
        f"{det} {size} {colour} {noun} {verb('moves')} {towards}",
        f"{det} {colour} {noun} {is_} moving {bare}",
        f"{there_is} {det} {size} {colour} {noun} moving {towards}",
        f"{det} {size} {colour} {noun} {verb('slides')} {bare}",
        f"{det} {_SIZE_SYNONYMS[size]} {colour} {noun} {verb('travels')} {bare} across the screen",
    ]


ATTRIBUTES: dict[str, tuple] = {
    "colour": tuple(COLOURS), "shape": SHAPES, "size": tuple(SIZES), "direction": tuple(DIRECTIONS), "count": COUNTS,
}
"""What a synthetic caption says (``clip_captions``'s arguments) and the values each can take."""


@cache
def value_words(attribute: str) -> dict[object, frozenset[str]]:
    """Per value of ``attribute``, the words of ``clip_captions`` that name it and no other value.

    E.g. size: small → {small, little}; direction: up → {up, upwards}; count: 2 → {two, are, …}.
    """
    words: dict[object, set[str]] = {value: set() for value in ATTRIBUTES[attribute]}
    for combination in itertools.product(*ATTRIBUTES.values()):
        chosen = dict(zip(ATTRIBUTES, combination))
        for caption in clip_captions(**chosen):
            words[chosen[attribute]].update(caption.split())
    return {value: frozenset(named - set().union(*(words[other] for other in words if other != value)))
            for value, named in words.items()}


def stated_value(caption: str, attribute: str) -> object | None:
    """The one value of ``attribute`` that ``caption`` names, or None if it names none or several."""
    said = set(caption.split())
    named = [value for value, words in value_words(attribute).items() if said & words]
    return named[0] if len(named) == 1 else None


def attribute_accuracy(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Per attribute, (generated captions naming the true value, videos) over (generated, canonical) pairs."""
    pairs = list(pairs)
    return {
        attribute: (sum(stated_value(generated, attribute) == stated_value(truth, attribute) for generated, truth in pairs),
                    len(pairs))
        for attribute in ATTRIBUTES
    }


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int | Fraction,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: Sequence[float] | None = None,
    rotation: int = 0,
    hflip: bool = False,
) -> Path:
    """Encode RGB ``frames`` (T, H, W, 3) uint8 at ``fps`` into ``path`` with PyAV.

    Frame ``i`` is shown at ``i / fps`` seconds, or at ``times[i]`` seconds when
    given (variable frame rate, millisecond timestamps). The container follows ``path``'s
    suffix (``.mp4``, ``.mkv``, ``.avi`` …). For yuv420p, H and W must be even.
    libx264 runs at crf 18 (visually lossless), on one thread and without assembly, so
    the same frames always give the same bytes (with several threads or with its assembly
    it does not); other codecs use their defaults. ``rotation`` (degrees counter-clockwise)
    and ``hflip`` write a display matrix, as phones do for portrait clips: players turn
    the stored frames by it.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    rate = Fraction(fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = 1 / rate if times is None else Fraction(1, 1000)
        stream.options = _ENCODER_OPTIONS.get(codec, {})
        stream.codec_context.thread_count = 1
        if rotation or hflip:
            stream.set_display_rotation(rotation, hflip=hflip)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times is None:
                frame.pts = index
            else:
                frame.pts, frame.time_base = round(times[index] * 1000), stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def shape_mask(shape: str, grid_x: np.ndarray, grid_y: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean mask of a filled ``shape`` centred at ``centre`` = (x, y) on pixel grids.

    Circle of radius ``radius``; axis-aligned square of half-side ``0.9 * radius``;
    upright triangle with its apex ``radius`` above and its base ``radius`` below the
    centre, base width ``2 * radius``. All shapes fit in a 2·radius box.
    """
    dx, dy = grid_x - centre[0], grid_y - centre[1]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        half = 0.9 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "triangle":
        return (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def render_clip(clip: SyntheticClip, rng: np.random.Generator) -> np.ndarray:
    """Frames of ``clip``: (n_frames, height, width, 3) uint8 RGB.

    Each shape moves at constant speed from touching one edge (plus a 2-pixel
    margin) to touching the opposite edge, first frame to last. Two shapes sit at
    1/4 and 3/4 of the perpendicular axis, so they never overlap. ``rng`` draws the
    background level, texture and, for one shape, its perpendicular position.
    """
    width, height = clip.width, clip.height
    radius = SIZES[clip.size] * min(width, height)
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)  # (H, W) each
    level = rng.uniform(10, 35)
    background = np.full((height, width), level, np.float32)
    if clip.background == "textured":
        frequency_x, frequency_y = rng.uniform(0.05, 0.25, size=2)
        background += _TEXTURE_AMPLITUDE * np.sin(frequency_x * grid_x + frequency_y * grid_y + rng.uniform(0, 2 * np.pi))
    background_rgb = np.repeat(background[..., None], 3, axis=-1).round().astype(np.uint8)  # (H, W, 3)

    step_x, step_y = DIRECTIONS[clip.direction]
    along_length, across_length = (width, height) if step_x else (height, width)
    low, high = radius + _EDGE_MARGIN_PX, along_length - radius - _EDGE_MARGIN_PX
    start, end = (low, high) if step_x + step_y > 0 else (high, low)
    if clip.count == 1:
        across = [rng.uniform(radius + _EDGE_MARGIN_PX, across_length - radius - _EDGE_MARGIN_PX)]
    else:
        across = [across_length / 4, 3 * across_length / 4]

    colour = np.array(COLOURS[clip.colour], np.uint8)
    frames = np.repeat(background_rgb[None], clip.n_frames, axis=0)  # (T, H, W, 3)
    for index in range(clip.n_frames):
        along = start + (end - start) * index / (clip.n_frames - 1)
        for position in across:
            centre = (along, position) if step_x else (position, along)
            frames[index][shape_mask(clip.shape, grid_x, grid_y, centre, radius)] = colour
    return frames


def _balanced(values: Sequence[_Value], n: int, rng: np.random.Generator) -> list[_Value]:
    """``n`` values cycling through ``values`` in a random order: each appears n/len(values) times (±1)."""
    return [values[index] for index in rng.permutation(np.resize(np.arange(len(values)), n))]


def _splits(n: int, rng: np.random.Generator) -> list[str]:
    """Split name per video, ``SPLIT_FRACTIONS`` of ``n`` (val and test at least one each when n ≥ 3)."""
    sizes = {name: round(fraction * n) for name, fraction in SPLIT_FRACTIONS.items() if name != "train"}
    if n >= 3:
        sizes = {name: max(1, size) for name, size in sizes.items()}
    names = ["train"] * (n - sum(sizes.values())) + [name for name, size in sizes.items() for _ in range(size)]
    return [names[index] for index in rng.permutation(n)]


def generate_dataset(
    out_dir: Path,
    n_videos: int = 48,
    seed: int = 0,
    duration_range_s: tuple[float, float] = DURATION_RANGE_S,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    suffix: str = ".mp4",
) -> list[SyntheticClip]:
    """Write ``n_videos`` captioned clips and ``captions.csv`` into ``out_dir``; return the clips.

    Shape, colour, size, direction, count, background, frame rate and frame size
    are each balanced over the dataset and shuffled by ``seed``; durations are
    uniform in ``duration_range_s`` (seconds). Splits are 70/15/15 % train/val/test.
    ``captions.csv`` has columns ``video_id,caption,split``, one row per caption.
    """
    if n_videos < 1:
        raise ValueError(f"n_videos must be at least 1, got {n_videos}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    attributes = {
        "shape": _balanced(SHAPES, n_videos, rng),
        "colour": _balanced(list(COLOURS), n_videos, rng),
        "size": _balanced(list(SIZES), n_videos, rng),
        "direction": _balanced(list(DIRECTIONS), n_videos, rng),
        "count": _balanced(COUNTS, n_videos, rng),
        "background": _balanced(BACKGROUNDS, n_videos, rng),
        "fps": _balanced(FRAME_RATES, n_videos, rng),
        "frame_size": _balanced(FRAME_SIZES, n_videos, rng),
    }
    splits = _splits(n_videos, rng)
    durations_s = rng.uniform(*duration_range_s, size=n_videos)

    clips = []
    for index in range(n_videos):
        chosen = {name: values[index] for name, values in attributes.items()}
        width, height = chosen.pop("frame_size")
        video_id = f"synth{index:04d}"
        clip = SyntheticClip(
            video_id=video_id,
            filename=f"{video_id}{suffix}",
            captions=clip_captions(chosen["shape"], chosen["colour"], chosen["size"], chosen["direction"], chosen["count"]),
            split=splits[index],
            n_frames=max(2, round(durations_s[index] * chosen["fps"])),
            width=width,
            height=height,
            **chosen,
        )
        write_video(out_dir / clip.filename, render_clip(clip, rng), clip.fps, codec=codec, pix_fmt=pix_fmt)
        clips.append(clip)

    with open(out_dir / CAPTIONS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CAPTION_COLUMNS)
        writer.writerows((clip.video_id, caption, clip.split) for clip in clips for caption in clip.captions)
    return clips
