"""The model's input record: a batch of padded C3D feature maps (Section 3, Appendix C).

Kept apart from the model so the loader can build batches without importing it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from astar.extract import LAYERS

LAYER_NAMES: tuple[str, ...] = tuple(LAYERS)
"""The convolutional layers a_1 … a_L the model attends to, lowest first (Section 4.2)."""

POOL5_RATIO: dict[str, int] = {name: LAYERS["pool5"].time_stride // spec.time_stride for name, spec in LAYERS.items()}
"""Time steps (and, up to border padding, rows and columns) of each layer per pool5 cell.

These are also the max-pooling ratios of eq. (4) in Section 4.2 (8³, 4³, 2³).
"""


def time_mask(pool5_steps: Tensor, layer: str, steps: int) -> Tensor:
    """(B, steps) bool, True on the valid time steps of ``layer`` given (B,) valid pool5 steps."""
    valid = pool5_steps * POOL5_RATIO[layer]
    return torch.arange(steps, device=valid.device) < valid[:, None]


LAYER_SIDE: dict[str, int] = {name: spec.height for name, spec in LAYERS.items()}
"""Rows (= columns) of each layer's map for C3D's 112×112 input (Appendix C)."""


@dataclass
class VideoBatch:
    """Features of B videos, zero-padded in time to the longest one.

    Attributes:
        features: ``pool2`` (B, 8·T₅, 28, 28, 128), ``pool3`` (B, 4·T₅, 14, 14, 256),
            ``pool4`` (B, 2·T₅, 7, 7, 512) and ``pool5`` (B, T₅, 4, 4, 512), float,
            laid out as stored: (batch, time, height, width, channel).
        pool5_steps: (B,) long, valid pool5 time steps per video (padded frames / 16);
            layer l has ``POOL5_RATIO[l]`` times as many valid steps.
        fc7: (B, 4096) float, a_{L+1}, the mean fc7 of the video's 16-frame windows.
    """

    features: dict[str, Tensor]
    pool5_steps: Tensor
    fc7: Tensor

    @property
    def batch_size(self) -> int:
        return self.fc7.shape[0]

    def time_mask(self, layer: str) -> Tensor:
        """(B, T_l) bool, True on the valid (unpadded) time steps of ``layer``."""
        return time_mask(self.pool5_steps, layer, self.features[layer].shape[1])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> VideoBatch:
        """The same batch on ``device``; float tensors optionally cast to ``dtype``."""
        return VideoBatch(
            features={name: value.to(device, dtype) for name, value in self.features.items()},
            pool5_steps=self.pool5_steps.to(device),
            fc7=self.fc7.to(device, dtype),
        )


def random_batch(
    pool5_steps: list[int],
    layer_channels: tuple[int, ...],
    fc7_dim: int,
    generator: torch.Generator | None = None,
) -> VideoBatch:
    """Synthetic non-negative features shaped like the store's, for tests, demos and benchmarks.

    Args:
        pool5_steps: valid pool5 steps per video (frames / 16); shorter videos are zero-padded.
        layer_channels: n_F of pool2 … pool5 (``ModelConfig.layer_channels``).
        fc7_dim: width of fc7.
    """
    longest = max(pool5_steps)
    steps = torch.tensor(pool5_steps)
    features = {}
    for name, channels in zip(LAYER_NAMES, layer_channels, strict=True):
        side, ratio = LAYER_SIDE[name], POOL5_RATIO[name]
        values = torch.rand(len(pool5_steps), longest * ratio, side, side, channels, generator=generator)
        features[name] = values * time_mask(steps, name, longest * ratio)[:, :, None, None, None]
    return VideoBatch(features, steps, torch.rand(len(pool5_steps), fc7_dim, generator=generator))
