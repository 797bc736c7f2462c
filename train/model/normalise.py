"""Input and aligned-map normalisation: the scale details the paper leaves unstated.

The paper feeds C3D's layers to eq. (4) and the aligned maps to eqs. (5)–(6) without
saying how they are scaled. Two things go wrong when they are fed as stored:

- **Inputs (eq. 4).** Post-ReLU maps are all non-negative. Every output channel of an
  alignment convolution then gets a gradient of one sign over its whole fan-in (2,744
  weights for pool2 in the small preset, 43,904 at the paper's widths), so Adam's first,
  sign-like steps move each channel's pre-activation by about lr × fan-in × mean input,
  and the channels pushed negative die under the ReLU for good. ``input_norm="channel"``
  (the default) centres every channel of every input (each layer and fc7) and divides it
  by its standard deviation, both measured once on training videos
  (``astar.train.data.loader.feature_statistics``); ``"rms"`` divides each input by one root
  mean square and does not centre (astar before 0.2: most alignment channels died).
- **Aligned maps (eqs. 5–6).** The learnt â_l are unnormalised ReLU outputs that grow to
  many times the top layer's scale; their stacked keys saturate eq. (5)'s tanh, α becomes
  uniform (plain mean pooling) and β weighs layers by magnitude. ``aligned_norm="rms"``
  (the default) divides each video's â_l by its root mean square over valid positions,
  keeping the contrast between positions; ``"layer"`` gives every â_{i,l} zero mean and
  unit variance over its D channels; ``"none"`` keeps them raw.

Both statistics and the chosen modes are part of the model: the statistics are buffers
saved with the weights, so evaluation and captioning normalise exactly as training did.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

@dataclass(frozen=True)
class ChannelStatistics:
    """One input's statistics over training videos, float64.

    Attributes:
        mean: (C,) per-channel mean.
        std: (C,) per-channel standard deviation (a constant channel gets 1).
        rms: root mean square over every element and channel (the ``"rms"`` mode's divisor).
    """

    mean: np.ndarray
    std: np.ndarray
    rms: float

    @classmethod
    def from_sums(cls, total: np.ndarray, squares: np.ndarray, count: int) -> ChannelStatistics:
        """From per-channel sums of x and x² over ``count`` values of each channel."""
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        floor = max(float(std.max(initial=0.0)) * 1e-6, 1e-12)
        rms = float(np.sqrt(squares.sum() / (count * len(squares))))
        return cls(mean, np.where(std > floor, std, 1.0), rms if rms > 0 else 1.0)


class InputNormaliser(nn.Module):
    """(x − shift) / scale per channel of each input, with buffers ``<name>_shift`` and ``<name>_scale``.

    Until ``set_statistics`` runs, every input passes unchanged (shift 0, scale 1).
    """

    def __init__(self, widths: Mapping[str, int], mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.names = tuple(widths)
        for name, width in widths.items():
            self.register_buffer(f"{name}_shift", torch.zeros(width))
            self.register_buffer(f"{name}_scale", torch.ones(width))

    def set_statistics(self, statistics: Mapping[str, ChannelStatistics]) -> None:
        """Normalise input ``name`` by ``statistics[name]`` from now on (others keep theirs)."""
        for name, stats in statistics.items():
            shift, scale = getattr(self, f"{name}_shift"), getattr(self, f"{name}_scale")
            if self.mode == "channel":
                shift.copy_(torch.from_numpy(stats.mean[: len(shift)]))
                scale.copy_(torch.from_numpy(stats.std[: len(scale)]))
            else:
                shift.zero_()
                scale.fill_(stats.rms)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per input: the mean of its channel shifts and scales (``config.toml``'s record)."""
        return {name: {"shift": float(getattr(self, f"{name}_shift").mean()),
                       "scale": float(getattr(self, f"{name}_scale").mean())} for name in self.names}

    def forward(self, name: str, features: Tensor, dtype: torch.dtype) -> Tensor:
        """Input ``name`` (…, C) in ``dtype``, normalised over its last (channel) axis."""
        shift, scale = getattr(self, f"{name}_shift").to(dtype), getattr(self, f"{name}_scale").to(dtype)
        return (features.to(dtype) - shift) / scale


def normalise_aligned(aligned: Tensor, mask: Tensor, mode: str) -> Tensor:
    """(B, L, P, D) â and its (B, P) mask → the same, normalised by ``mode``.

    ``"layer"``: each â_{i,l} at zero mean and unit variance over its D channels.
    ``"rms"``: each video's â_l divided by its root mean square over valid positions and
    channels, which keeps the contrast between positions. ``"none"``: unchanged.
    """
    if mode == "none":
        return aligned
    if mode == "layer":
        return F.layer_norm(aligned, aligned.shape[-1:])
    valid = mask[:, None, :, None].to(aligned.dtype)
    mean_square = (aligned.square() * valid).sum((2, 3), keepdim=True) / (valid.sum(2, keepdim=True) * aligned.shape[-1])
    return aligned * torch.rsqrt(mean_square.clamp_min(1e-12))


