"""The model's input records: a batch of padded stored feature maps (Section 3, Appendix C),
and a batch of them with captions.

Kept apart from the networks so the loader (``astar.train.data.loader``) can build batches
without importing them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from astar.extract.store.schema import LayerGeometry

from .config import C3D_GEOMETRY


def time_mask(valid: Tensor, steps: int) -> Tensor:
    """(B, steps) bool, True on the first ``valid`` (B,) time steps of each video."""
    return torch.arange(steps, device=valid.device) < valid[:, None]


def to_device(values: Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> Tensor:
    """``values`` on ``device`` (optionally cast to ``dtype``); a copy to CUDA does not wait for
    the GPU, so one from pinned memory overlaps the host's work. The one place batches are moved."""
    device = torch.device(device)
    return values.to(device, dtype, non_blocking=device.type == "cuda")


@dataclass
class VideoBatch:
    """Features of B videos, zero-padded in time to the longest one.

    Attributes:
        features: per stored layer (B, r_l·T_L, H_l, W_l, C_l), float, laid out as stored:
            (batch, time, height, width, channel); C3D: ``pool2`` (B, 8·T₅, 28, 28, 128), …,
            ``pool5`` (B, T₅, 4, 4, 512).
        top_steps: (B,) long, valid time steps T_L of the top layer per video (C3D: pool5,
            padded frames / 16); layer l has ``ModelConfig.time_ratio(l)`` times as many.
        fc7: (B, D) float, a_{L+1}, the mean top feature of the video's 16-frame windows.
    """

    features: dict[str, Tensor]
    top_steps: Tensor
    fc7: Tensor

    @property
    def batch_size(self) -> int:
        return self.fc7.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> VideoBatch:
        """The same batch on ``device`` (``to_device``); float tensors optionally cast to ``dtype``."""
        return VideoBatch(
            features={name: to_device(value, device, dtype) for name, value in self.features.items()},
            top_steps=to_device(self.top_steps, device),
            fc7=to_device(self.fc7, device, dtype),
        )

    def pin_memory(self) -> VideoBatch:
        """The same batch in page-locked host memory (``CaptionBatch.pin_memory``)."""
        return VideoBatch({name: value.pin_memory() for name, value in self.features.items()},
                          self.top_steps.pin_memory(), self.fc7.pin_memory())


def random_batch(
    top_steps: list[int],
    layer_channels: tuple[int, ...],
    fc7_dim: int,
    generator: torch.Generator | None = None,
    geometry: Sequence[LayerGeometry] = C3D_GEOMETRY,
) -> VideoBatch:
    """Synthetic non-negative features shaped like the store's, for tests, demos and benchmarks.

    Args:
        top_steps: valid top-layer steps per video (C3D: frames / 16); shorter videos are zero-padded.
        layer_channels: n_F of each stored layer (``ModelConfig.layer_channels``).
        fc7_dim: width of fc7.
        geometry: the stored layers (``ModelConfig.geometry``); C3D's by default.
    """
    longest = max(top_steps)
    steps = torch.tensor(top_steps)
    features = {}
    for layer, channels in zip(geometry, layer_channels, strict=True):
        ratio = geometry[-1].time_stride // layer.time_stride
        values = torch.rand(len(top_steps), longest * ratio, layer.height, layer.width, channels, generator=generator)
        features[layer.name] = values * time_mask(steps * ratio, longest * ratio)[:, :, None, None, None]
    return VideoBatch(features, steps, torch.rand(len(top_steps), fc7_dim, generator=generator))


@dataclass
class CaptionBatch:
    """One batch: the distinct videos' features, the items' ids and, for training pairs, the captions.

    Attributes:
        video_ids: (B,) store ids, one per item (repeated when a video has several captions).
        videos: (V ≤ B) features of each distinct video once, float16, zero-padded in time.
        caption_videos: (B,) long, the row of ``videos`` each item is (``ASTAR.loss``).
        tokens: (B, T) long captions padded with <pad>, or None for evaluation items.
    """

    video_ids: list[str]
    videos: VideoBatch
    caption_videos: Tensor
    tokens: Tensor | None

    def to(self, device: torch.device | str) -> CaptionBatch:
        """The same batch with its tensors on ``device`` (``VideoBatch.to``: without waiting, to CUDA)."""
        return CaptionBatch(self.video_ids, self.videos.to(device), to_device(self.caption_videos, device),
                            None if self.tokens is None else to_device(self.tokens, device))

    def pin_memory(self) -> CaptionBatch:
        """The same batch in page-locked memory, which CUDA copies from while the host goes on (``DataLoader``'s pin_memory)."""
        return CaptionBatch(self.video_ids, self.videos.pin_memory(), self.caption_videos.pin_memory(),
                            None if self.tokens is None else self.tokens.pin_memory())
