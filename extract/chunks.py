"""Cut an array's time steps, arriving tile by tile, into runs of whole chunks: each chunk is then written once, whole.

A tile's core (``features.tile_plan``) need not be a multiple of a layer's chunk span
(C3D's pool5 chunk spans 1024 frames, a default pass 256), so the steps a tile leaves
short of a chunk boundary are held until the next tile completes the chunk. What is held
is less than one chunk per layer (at most ``schema.CHUNK_BYTES``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .memory import offheap_copy


@dataclass
class ChunkRuns:
    """One array of ``length`` time steps stored in chunks of ``chunk`` steps, filled in time order.

    ``add`` takes the next steps (T, …) and returns the run of whole chunks they complete,
    as (first step, (T′, …) steps), or None while the current chunk is still short;
    the array's last chunk is complete at its last step.
    """

    length: int
    chunk: int
    _first: int = 0
    _held: np.ndarray | None = field(default=None, repr=False)

    def add(self, steps: np.ndarray) -> tuple[int, np.ndarray] | None:
        pending = steps if self._held is None else np.concatenate([self._held, steps])
        first, end = self._first, self._first + len(pending)
        if end > self.length:
            raise ValueError(f"steps up to {end} overrun an array of {self.length}")
        whole = len(pending) if end == self.length else end // self.chunk * self.chunk - first
        self._held = offheap_copy(pending[whole:]) if whole < len(pending) else None  # a copy: the tile it came from is freed
        self._first = first + whole
        return (first, pending[:whole]) if whole > 0 else None
