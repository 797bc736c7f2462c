"""The facts of the feature-store contract (storage_schema.md), defined once.

Everything that writes or reads a store imports these constants; the version
number changes whenever any of them changes meaning. What a store's layers *are*
(names, channels, strides, receptive fields) is not here: each backbone
definition (``astar.extract.backbones``) writes it as ``LayerGeometry`` records,
computed from its architecture by ``trace_layer``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SCHEMA_VERSION = 2
"""Version of storage_schema.md that this code writes."""

READABLE_SCHEMA_VERSIONS = (1, 2)
"""Versions this code reads; a version-1 store's layers are C3D's (its geometry is implied)."""

FPS = 2
"""Frames per second sampled from every video (paper Section 4.2)."""

CLIP_FRAMES = 16
"""Clip length: frames are padded to a multiple of this, top-feature windows span it."""

WINDOW_STRIDE = 8
"""Offset between consecutive top-feature windows (16-frame windows, 8-frame overlap; Section 2.1)."""

FRAME_SIZE = 112
"""Side of every backbone's square input, in pixels (Section 4.2)."""

FEATURE_DTYPE = "float16"
"""On-disk dtype of every feature array."""

TOP_FEATURE = "fc7"
"""Array name of a_{L+1}, the video-level vector (C3D's fc7; another backbone's pooled top feature)."""

TOP_WINDOWS = "fc7_windows"
"""Array name of the per-window top features whose mean is ``TOP_FEATURE``."""

CHUNK_BYTES = 2 << 20
"""Stored layer chunks hold at most this many bytes along time (a power-of-two number of steps)."""

MAX_TIME_CHUNK = 64
"""Most time steps per stored chunk (and windows per ``fc7_windows`` chunk)."""

Operation = tuple[tuple[int, int, int], tuple[int, int, int]]
"""One network operation as (time, space) × (kernel, stride, padding), in its input's cells."""

FILL_VALUE = float("nan")
"""Fill value of every feature array: what a missing chunk reads as. Features are finite
post-ReLU values, so a NaN read means a chunk is gone, and no written chunk equals the
fill value, so every chunk is stored (storage_schema.md §8)."""


@dataclass(frozen=True)
class LayerGeometry:
    """Where one stored layer's cells lie in the input video (storage_schema.md §3, ``layers``).

    Indices are 0-based; input frame k and pixel x have coordinates k and x. Cell j of
    the layer along time is centred at ``time_stride·j + time_centre`` (in frames) and
    sees ``time_field`` frames; along rows and columns likewise in pixels.

    Attributes:
        name: array name in the store (``pool2``, ``layer3``, …).
        channels: n_F, the last dimension of the array.
        time_stride: input frames per time step.
        space_stride: input pixels per row and per column.
        height, width: rows and columns for a 112×112 input.
        time_centre, space_centre: centre of cell 0's receptive field (frames, pixels);
            None where the architecture gives no receptive field (attention).
        time_field, space_field: receptive-field size (frames, pixels), or None.
        pool_padding: (time, space) zero padding, in its input cells, of the strided
            operation that made this grid (C3D's pool5: (0, 1)); the centres include its effect.
    """

    name: str
    channels: int
    time_stride: int
    space_stride: int
    height: int
    width: int
    time_centre: float | None
    space_centre: float | None
    time_field: int | None
    space_field: int | None
    pool_padding: tuple[int, int]

    def time_steps(self, padded_frames: int) -> int:
        """Number of time steps for a video padded to ``padded_frames`` frames."""
        return padded_frames // self.time_stride

    @property
    def step_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one time step."""
        return (self.height, self.width, self.channels)

    @property
    def time_chunk(self) -> int:
        """Time steps per stored chunk: a power of two of at most ``CHUNK_BYTES`` (pool2: 8, pool5: 64)."""
        step_bytes = self.height * self.width * self.channels * 2
        return max(1, min(MAX_TIME_CHUNK, 2 ** int(math.log2(max(1, CHUNK_BYTES // step_bytes)))))

    @property
    def dimensions(self) -> list[str]:
        """Per-layer dimension names, so xarray opens a video's layers as one Dataset."""
        return [f"{self.name}_{axis}" for axis in ("time", "y", "x", "channel")]

    def describe(self) -> dict[str, Any]:
        """JSON-ready record written to the store's ``layers`` root attribute."""
        record = asdict(self)
        record["pool_padding"] = list(self.pool_padding)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LayerGeometry:
        """Inverse of ``describe`` (lists from JSON or TOML become tuples)."""
        values = {key: record[key] for key in cls.__dataclass_fields__}
        values["pool_padding"] = tuple(values["pool_padding"])
        return cls(**values)


def trace_layer(name: str, channels: int, operations: Sequence[Operation], size: int = FRAME_SIZE) -> LayerGeometry:
    """The geometry of a layer reached from the input through ``operations``.

    Composes each (kernel k, stride s, padding p) along an axis: the field grows by
    (k − 1)·jump, the jump (stride in input units) multiplies by s, the centre of cell 0
    moves by ((k − 1)/2 − p)·jump, and the size becomes ⌊(n + 2p − k)/s⌋ + 1.
    Residual branches (1×1 projections) add nothing outside the main path's field.
    """
    axes = []
    for axis in (0, 1):
        field, jump, centre, length = 1, 1, 0.0, size
        for operation in operations:
            kernel, stride, padding = operation[axis]
            field += (kernel - 1) * jump
            centre += ((kernel - 1) / 2 - padding) * jump
            jump *= stride
            length = (length + 2 * padding - kernel) // stride + 1
        axes.append((field, jump, centre, length))
    (time_field, time_stride, time_centre, _), (space_field, space_stride, space_centre, side) = axes
    strided = [operation for operation in operations if operation[0][1] > 1 or operation[1][1] > 1]
    last = strided[-1] if strided else operations[-1]
    return LayerGeometry(
        name=name, channels=channels, time_stride=time_stride, space_stride=space_stride, height=side, width=side,
        time_centre=time_centre, space_centre=space_centre, time_field=time_field, space_field=space_field,
        pool_padding=(last[0][2], last[1][2]),
    )


def traced_stages(stages: Sequence[tuple[str, int, Sequence[Operation]]]) -> tuple[LayerGeometry, ...]:
    """Geometries of stored layers reached one after another: (name, channels, operations since the previous one)."""
    operations: list[Operation] = []
    layers = []
    for name, channels, stage in stages:
        operations.extend(stage)
        layers.append(trace_layer(name, channels, operations))
    return tuple(layers)


EXTRACTION_IDENTITY_KEYS = ("astar_schema_version", "fps", "preprocessing", "backbone", "model", "precision")
"""Root attributes that must match for an extraction run to add videos to an existing store (§3)."""

FEATURE_IDENTITY_KEYS = ("astar_schema_version", "fps", "frame_size", "preprocessing", "model")
"""Root attributes that must agree for two stores' features to mean the same to a trained model:
the schema, frame rate and size, preprocessing, and the network's weights (name, sha256,
random_init and seed). Extraction precision may differ."""


def padded_frame_count(frames: int) -> int:
    """N′ = max(16, 16·⌈N/16⌉): the frame count a video of N frames is padded to.

    Padding repeats the last frame, so every stored layer has exactly N′/time_stride
    time steps and the layers align with each other (Appendix C).
    """
    if frames < 1:
        raise ValueError(f"a video needs at least one frame, got {frames}")
    return max(CLIP_FRAMES, CLIP_FRAMES * math.ceil(frames / CLIP_FRAMES))


def top_dimensions() -> dict[str, list[str]]:
    """Dimension names of the top-feature arrays (xarray's ``_ARRAY_DIMENSIONS``)."""
    return {TOP_FEATURE: [f"{TOP_FEATURE}_channel"], TOP_WINDOWS: ["window", f"{TOP_FEATURE}_channel"]}


def halo_frames(top: LayerGeometry) -> int:
    """Frames of context a tile of a whole-video pass needs on each side, on the 16-frame grid.

    A top-layer step sees ``time_field`` frames around its own ``time_stride``; the last
    top-feature window starting in a tile ends ``WINDOW_STRIDE`` frames past it. For C3D
    (pool5: 76-frame field, 30 frames beyond its own 16 on each side) that is 38 → 48.
    """
    if top.time_field is None or top.time_centre is None:
        raise ValueError(f"{top.name}: a whole-video pass needs a finite receptive field to cut into tiles")
    half = (top.time_field - 1) / 2
    before = half - top.time_centre
    after = top.time_centre + half - (top.time_stride - 1)
    return CLIP_FRAMES * math.ceil((max(before, after) + WINDOW_STRIDE) / CLIP_FRAMES)
