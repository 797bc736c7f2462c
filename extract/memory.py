"""Buffers outside the heap, so that an extraction's memory is one tile's pass whatever the video's length.

A whole-video pass allocates hundreds of MB per layer (conv1's output alone is
N′·64·112·112 float32, 822 MB for 256 frames). glibc's malloc serves blocks that large
with ``mmap`` and unmaps them when freed, so each pass's activations go back to the OS.
Keeping them in the heap instead (raising the mmap and trim thresholds, as astar did
until this was measured) saved the kernel zeroing them again, but the heap then
fragmented across passes by a different amount each run: a 5-minute 32×32 video
(4 passes) peaked at 2.49, 3.59 and 2.88 GB in three runs against 2.43–2.45 GB with
glibc's own policy, for 5 % less wall time (25.1 s against 26.5 s, 2 cores). A bounded,
repeatable peak is worth more than 5 % of CPU C3D, and a GPU's activations are not in
this heap at all.

What lives longer than one tile's pass is allocated here, outside the heap.
"""
from __future__ import annotations

import math
import mmap

import numpy as np


def offheap_empty(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """An uninitialised array in an anonymous mapping of its own, given back to the OS when it is freed.

    For buffers that outlive one tile of a pass (maps waiting for the writer thread, a
    chunk's held steps, the top-feature windows): in the heap, each would pin a few MB
    amid the blocks freed by the tile's activations, and the next tile's activations, no
    longer fitting, would grow the heap (peak memory rose ~1 MB per sampled frame of a
    long video while the heap kept freed blocks).
    """
    dtype = np.dtype(dtype)
    nbytes = max(1, math.prod(shape) * dtype.itemsize)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=math.prod(shape)).reshape(shape)


def offheap_copy(values: np.ndarray) -> np.ndarray:
    """``values`` copied into ``offheap_empty``."""
    copy = offheap_empty(values.shape, values.dtype)
    copy[...] = values
    return copy
