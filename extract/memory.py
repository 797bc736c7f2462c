"""Keep freed memory in the process, so that C3D's large activations are reused, not faulted back in.

A whole-video pass allocates hundreds of MB per layer (conv1's output alone is
N′·64·112·112 float32, 822 MB for 256 frames). glibc's malloc serves blocks that large
with ``mmap`` and unmaps them when freed, so every pass makes the kernel zero and
map the same memory again: 6.3 M page faults and 12 s of system time in a 64- and
256-frame benchmark on 2 cores, and 15–17 % of C3D's wall time. Raising the mmap and
trim thresholds keeps those blocks in the heap for the next pass; the process's
resident memory then stays near its peak instead of shrinking between passes, and
the peak itself grows with heap fragmentation (2.4 → 2.8 GB over fp32 passes of
256, 64, 256, 128 and 256 frames).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import mmap
import platform

import numpy as np

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters from glibc's malloc.h
_LARGEST = 2**31 - 1  # mallopt takes a C int: blocks up to 2 GiB come from (and go back to) the heap


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed blocks of up to 2 GiB rather than return them to the OS.

    Process-wide and idempotent. Returns whether it took effect: False off glibc (macOS,
    musl), where the allocator's own policy stays.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, _LARGEST)
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, _LARGEST)
    return bool(mmap_set and trim_set)


def offheap_empty(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """An uninitialised array in an anonymous mapping of its own, given back to the OS when it is freed.

    For buffers that outlive one tile of a pass (maps waiting for the writer thread, a
    chunk's held steps, the top-feature windows): in the heap that ``keep_freed_memory``
    keeps, each would pin a few MB amid the hundreds freed by the tile's activations, and
    the next tile's activations, no longer fitting, would grow the heap by a tile's worth
    (peak memory then rose ~1 MB per sampled frame of a long video).
    """
    dtype = np.dtype(dtype)
    nbytes = max(1, math.prod(shape) * dtype.itemsize)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=math.prod(shape)).reshape(shape)


def offheap_copy(values: np.ndarray) -> np.ndarray:
    """``values`` copied into ``offheap_empty``."""
    copy = offheap_empty(values.shape, values.dtype)
    copy[...] = values
    return copy
