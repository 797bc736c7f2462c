"""The facts of the feature-store contract (storage_schema.md), defined once.

Everything that writes or reads a store imports these constants; the version
number changes whenever any of them changes meaning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEMA_VERSION = 1
"""Version of storage_schema.md that this code writes and reads."""

FPS = 2
"""Frames per second sampled from every video (paper Section 4.2)."""

CLIP_FRAMES = 16
"""C3D's clip length: frames are padded to a multiple of this, fc7 windows span it."""

WINDOW_STRIDE = 8
"""Offset between consecutive fc7 windows (16-frame windows, 8-frame overlap; Section 2.1)."""

FC7_DIM = 4096
"""Width of C3D's fc6 and fc7 layers."""

FEATURE_DTYPE = "float16"
"""On-disk dtype of every feature array."""

FILL_VALUE = float("nan")
"""Fill value of every feature array: what a missing chunk reads as. Features are finite
post-ReLU values, so a NaN read means a chunk is gone, and no written chunk equals the
fill value, so every chunk is stored (storage_schema.md §8)."""


@dataclass(frozen=True)
class LayerSpec:
    """Shape facts of one stored convolutional layer.

    Attributes:
        name: array name in the store (``pool2`` … ``pool5``).
        time_stride: input frames per time step (pool2 halves time, pool5 divides by 16).
        height, width, channels: per-time-step map size for a 112×112 input.
        time_chunk: time steps per stored chunk (about 1 MiB of float16 per chunk).
    """

    name: str
    time_stride: int
    height: int
    width: int
    channels: int
    time_chunk: int

    def time_steps(self, padded_frames: int) -> int:
        """Number of time steps for a video padded to ``padded_frames`` frames."""
        return padded_frames // self.time_stride

    @property
    def step_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one time step."""
        return (self.height, self.width, self.channels)


LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        LayerSpec("pool2", 2, 28, 28, 128, 8),
        LayerSpec("pool3", 4, 14, 14, 256, 16),
        LayerSpec("pool4", 8, 7, 7, 512, 32),
        LayerSpec("pool5", 16, 4, 4, 512, 64),
    )
}
"""The four convolutional layers the store holds, in C3D order."""

FC7_WINDOW_CHUNK = 64
"""Windows per chunk of the ``fc7_windows`` array."""

DIMENSIONS: dict[str, list[str]] = {
    **{name: ["time", "height", "width", "channel"] for name in LAYERS},
    "fc7": ["fc7_channel"],
    "fc7_windows": ["window", "fc7_channel"],
}
"""Dimension names of every per-video array (xarray's ``_ARRAY_DIMENSIONS``)."""


def padded_frame_count(frames: int) -> int:
    """N′ = max(16, 16·⌈N/16⌉): the frame count a video of N frames is padded to.

    Padding repeats the last frame, so pool2…pool5 have exactly N′/2 … N′/16
    time steps and align with each other (Appendix C).
    """
    if frames < 1:
        raise ValueError(f"a video needs at least one frame, got {frames}")
    return max(CLIP_FRAMES, CLIP_FRAMES * math.ceil(frames / CLIP_FRAMES))

