"""A split's features decompressed once and served from memory: one copy in shared host RAM, or on the GPU.

Streaming (``FeatureReader``) decompresses a video from Zarr whenever its per-worker LRU
has dropped it; at the paper's widths a training split outgrows that 1 GiB, so every
epoch decompresses it again, in every loader worker. A ``FeatureCache`` reads each
video of a split once, through the reader (so cut to the model's widths and layers,
exactly the bytes streaming gives), into one flat float16 tensor per layer:

    layers[l]: (Σ_v T_l(v), H_l, W_l, C_l), video v's steps at rows starts[l][v] … starts[l][v + 1]
    fc7:       (V, fc7_dim)

On the CPU the tensors live in shared memory (``Tensor.share_memory_``) before any loader
worker starts, so forked and spawned workers alike map the same pages: one copy, not one
per worker. On a CUDA device batches are gathered there, with no workers. Filling runs
in threads, one video each (Zarr's and Blosc's decompression release the GIL).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from astar.extract.store.schema import FEATURE_DTYPE

from .loader import FeatureReader

CACHE_DTYPE = getattr(torch, FEATURE_DTYPE)
"""The stored features' dtype, kept as it is (storage_schema.md): the cache holds the store's bytes."""


def cache_bytes(reader: FeatureReader, video_ids: Sequence[str]) -> int:
    """Bytes a ``FeatureCache`` of ``video_ids`` takes: everything ``reader`` gives of them, from the store index alone."""
    size = CACHE_DTYPE.itemsize
    return sum(math.prod(shape) * size for video_id in dict.fromkeys(video_ids)
               for shape in reader.shapes(video_id).values())


@dataclass(frozen=True)
class FeatureCache:
    """Every feature a model reads of some videos, decompressed once (module docstring); a ``FeatureSource``.

    Attributes:
        layers: per layer l, (Σ_v T_l(v), H_l, W_l, C_l) float16, the videos' steps one after another.
        starts: per layer, V + 1 row offsets: video v's steps are ``layers[l][starts[l][v] : starts[l][v + 1]]``.
        fc7: (V, fc7_dim) float16.
        rows: video id → v.
        steps: (V,) top-layer steps T_L of each video.
    """

    layers: dict[str, Tensor]
    starts: dict[str, tuple[int, ...]]
    fc7: Tensor
    rows: dict[str, int]
    steps: tuple[int, ...]

    @classmethod
    def build(cls, reader: FeatureReader, video_ids: Sequence[str], device: torch.device,
              threads: int | None = None) -> FeatureCache:
        """Decompress ``video_ids`` (each once) through ``reader`` into tensors on ``device``, ``threads`` videos at a time
        (default: torch's CPU threads); on the CPU in shared memory.

        Raises:
            DamagedVideoError: a chunk of one of the videos is corrupt or missing.
        """
        ids = list(dict.fromkeys(video_ids))
        shapes = [reader.shapes(video_id) for video_id in ids]
        starts = {name: tuple(np.cumsum([0] + [shape[name][0] for shape in shapes]).tolist()) for name in reader.layers}
        layers = {name: torch.empty((starts[name][-1], *shapes[0][name][1:]), dtype=CACHE_DTYPE, device=device)
                  for name in reader.layers}
        fc7 = torch.empty((len(ids), reader.fc7_dim), dtype=CACHE_DTYPE, device=device)
        if device.type == "cpu":  # before filling: moving filled pages would copy them
            for values in (*layers.values(), fc7):
                values.share_memory_()

        def fill(row: int) -> None:
            video_layers, video_fc7 = reader.decompress(ids[row])
            for name, values in video_layers.items():
                layers[name][starts[name][row] : starts[name][row + 1]].copy_(values)
            fc7[row].copy_(video_fc7)

        with ThreadPoolExecutor(threads or torch.get_num_threads()) as pool:
            try:
                for _ in pool.map(fill, range(len(ids))):
                    pass
            except BaseException:  # a damaged video: the others need not be read
                pool.shutdown(cancel_futures=True)
                raise
        return cls(layers, starts, fc7, {video_id: row for row, video_id in enumerate(ids)},
                   tuple(reader.top_steps(video_id) for video_id in ids))

    @property
    def device(self) -> torch.device:
        return self.fc7.device

    @property
    def nbytes(self) -> int:
        return sum(values.nbytes for values in (*self.layers.values(), self.fc7))

    def read(self, video_id: str) -> tuple[dict[str, Tensor], Tensor]:
        """Views of ``video_id``'s features, as ``FeatureReader.read`` gives them: per layer (T_l, H_l, W_l, C_l), fc7 (fc7_dim,)."""
        row = self.rows[video_id]
        return ({name: values[self.starts[name][row] : self.starts[name][row + 1]] for name, values in self.layers.items()},
                self.fc7[row])

    def top_steps(self, video_id: str) -> int:
        """T_L of ``video_id``."""
        return self.steps[self.rows[video_id]]
