"""Whether the paper's mechanism is alive: dead alignment channels, α's spread, β's use of layers.

Every equation of ASTAR can be right while training throws the mechanism away: the
eq. (4) convolutions can lose their channels to the ReLU, α (eq. 5) can flatten into mean
pooling, β (eq. 6) can put its weight on an all-zero map. Training logs these figures at
each validation (``metrics.csv`` and TensorBoard, ``health/*``) and ``astar-eval`` writes
them to ``health.json``, measured on the videos evaluated:

- ``dead_<layer>``: the share of the layer's aligned channels (before aligned-map
  normalisation) that are zero at every valid position of every video; layers whose
  alignment is learnt only (the top layer and raw maps are never "dead").
- ``alpha_entropy``: α_t's entropy divided by ln P (P: the video's valid positions), the
  mean over greedy-decoded words; 1 is uniform attention, i.e. mean pooling.
- ``beta_<layer>``: the mean β_t of each layer over those words (two-level variants).
- ``top_<layer>``: the share of words whose most probable layer is that layer.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .align import LEARNT_ALIGNMENTS
from .astar import ASTAR
from .batch import VideoBatch

HEALTH_FILE = "health.json"
"""Beside an evaluation's ``scores.json``."""


@dataclass
class HealthTally:
    """Running sums over batches; ``merge`` adds another process's (torchrun), ``figures`` reads them.

    Attributes:
        layers: the attended layers, in order.
        learnt: the layers whose alignment is learnt (the only ones that can die).
        channel_peak: per learnt layer, (D,) the largest aligned value seen per channel.
        entropy_sum, words: Σ over words of H(α_t)/ln P, and the words counted.
        layer_weight_sum: (L,) Σ β_t; top_layer_count: (L,) words whose argmax β is each layer.
    """

    layers: tuple[str, ...]
    learnt: tuple[str, ...]
    channel_peak: dict[str, Tensor] = field(default_factory=dict)
    entropy_sum: float = 0.0
    words: int = 0
    layer_weight_sum: Tensor | None = None
    top_layer_count: Tensor | None = None

    def merge(self, other: HealthTally) -> HealthTally:
        """The tally of both sets of videos."""
        peaks = {name: torch.maximum(self.channel_peak[name], peak) if name in self.channel_peak else peak
                 for name, peak in other.channel_peak.items()}
        return HealthTally(
            self.layers, self.learnt, {**self.channel_peak, **peaks}, self.entropy_sum + other.entropy_sum,
            self.words + other.words, _add(self.layer_weight_sum, other.layer_weight_sum),
            _add(self.top_layer_count, other.top_layer_count),
        )

    def figures(self) -> dict[str, float]:
        """The named figures of the module docstring (``metrics.csv`` columns, ``health.json`` keys)."""
        figures = {f"dead_{name}": float((peak <= 0).float().mean()) for name, peak in self.channel_peak.items()}
        if self.words:
            figures["alpha_entropy"] = self.entropy_sum / self.words
        if self.layer_weight_sum is not None and self.top_layer_count is not None and self.words:
            for index, name in enumerate(self.layers):
                figures[f"beta_{name}"] = float(self.layer_weight_sum[index]) / self.words
                figures[f"top_{name}"] = float(self.top_layer_count[index]) / self.words
        return figures


def _add(first: Tensor | None, second: Tensor | None) -> Tensor | None:
    return second if first is None else first if second is None else first + second


def position_entropy_ratio(positions: Tensor, valid_positions: Tensor) -> Tensor:
    """(N, P) α rows and (N,) valid position counts → (N,) H(α)/ln P (0 where P = 1)."""
    entropy = -(positions * positions.clamp_min(1e-30).log()).sum(-1)
    return torch.where(valid_positions > 1, entropy / valid_positions.clamp_min(2).log(), torch.zeros_like(entropy))


@torch.no_grad()
def tally_batch(model: ASTAR, batch: VideoBatch, max_len: int, tally: HealthTally) -> HealthTally:
    """Add one batch of videos (on the model's device) to ``tally``: its aligned maps and greedy captions' attention."""
    aligned, mask = model.aligned_maps(batch)  # (B, L, P, D), (B, P)
    peaks = {}
    for index, name in enumerate(tally.layers):
        if name in tally.learnt:
            values = aligned[:, index].float().masked_fill(~mask[..., None], float("-inf"))
            peaks[name] = values.flatten(0, 1).max(0).values.cpu()
    tokens, attention = model.greedy(batch, max_len)
    batch_tally = HealthTally(tally.layers, tally.learnt, peaks)
    if attention is not None:
        words = tokens[:, 1:] != model.config.pad_id  # row 0 (word 1, from fc7) attends to nothing
        positions = attention.positions[:, 1:][words].float()  # (N, P)
        valid = mask.sum(1)[:, None].expand_as(words)[words]
        batch_tally.entropy_sum = float(position_entropy_ratio(positions, valid).sum())
        batch_tally.words = int(words.sum())
        if len(tally.layers) > 1:
            layers = attention.layers[:, 1:][words].float()  # (N, L)
            batch_tally.layer_weight_sum = layers.sum(0).cpu()
            batch_tally.top_layer_count = torch.bincount(layers.argmax(-1), minlength=len(tally.layers)).float().cpu()
    return tally.merge(batch_tally)


def empty_tally(model: ASTAR) -> HealthTally | None:
    """A tally for ``model``'s attended maps; None for the fc7 baseline, which has none."""
    if model.aligner is None:
        return None
    config = model.config
    layers = ("+".join(config.layers),) if config.attended_layers == 1 and len(config.layers) > 1 else config.layers
    learnt = tuple(name for name, transform in model.aligner.transforms.items()
                   if isinstance(transform, LEARNT_ALIGNMENTS) and name in layers)
    return HealthTally(layers, learnt)


def tally_videos(model: ASTAR, batches: Iterable[VideoBatch], max_len: int) -> HealthTally | None:
    """Tally ``batches`` (each on the model's device) in eval mode; None for the fc7 baseline."""
    tally = empty_tally(model)
    if tally is None:
        return None
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            tally = tally_batch(model, batch, max_len, tally)
    finally:
        model.train(was_training)
    return tally


def combined_figures(tallies: Iterable[HealthTally | None]) -> dict[str, float]:
    """The figures of the module docstring over every tally's videos (one per process); {} for fc7."""
    combined = None
    for tally in tallies:
        if tally is not None:
            combined = tally if combined is None else combined.merge(tally)
    return {} if combined is None else combined.figures()


def health_line(figures: dict[str, float]) -> str:
    """``figures`` in a few words for a validation line: "; dead pool2 0% pool3 3%, α entropy 0.82 of uniform"."""
    dead = " ".join(f"{key[5:]} {value:.0%}" for key, value in figures.items() if key.startswith("dead_"))
    parts = [f"dead {dead}"] if dead else []
    if "alpha_entropy" in figures:
        parts.append(f"α entropy {figures['alpha_entropy']:.2f} of uniform")
    beta = " ".join(f"{key[5:]} {value:.2f}" for key, value in figures.items() if key.startswith("beta_"))
    if beta:
        parts.append(f"β {beta}")
    return "; " + ", ".join(parts) if parts else ""
