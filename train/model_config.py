"""``ModelConfig``: one dataclass selecting ASTAR or one of the paper's baselines.

Defaults are the paper's sizes (Section 4.2); ``ModelConfig.small`` is the CPU preset.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from astar.extract import FC7_DIM, LAYERS

from .variants import VARIANTS
from .video_batch import LAYER_NAMES

Attention = Literal["soft", "hard", "hard_layer"]
"""Section 3.2: ``soft`` (eq. 7); ``hard`` (eq. 8 on positions and layers, the paper's);
``hard_layer`` (eq. 8 on layers only, positions soft)."""

HARD_ATTENTION: frozenset[str] = frozenset({"hard", "hard_layer"})
"""Attention forms trained with the K-sample bound and VIMCO (eqs. 10–14)."""

C3D_LAYER_CHANNELS: tuple[int, ...] = tuple(spec.channels for spec in LAYERS.values())
"""Channels n_F of pool2 … pool5 in C3D (Appendix B), as the feature store holds them."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an ASTAR model or baseline; defaults are the paper's.

    Attributes:
        vocab_size: V, words including ``<pad>`` and ``<eos>``.
        pad_id: token id of ``<pad>``; ignored by the loss.
        eos_id: token id of ``<eos>``; ends greedy decoding.
        variant: one of ``variants.VARIANTS``.
        layers: layers attended to, a subset of ``LAYER_NAMES`` in that order;
            exactly one for ``single``.
        attention: ``soft`` (eq. 7); ``hard`` (eqs. 8–14), the paper's: a sampled position
            and a sampled layer per word; or ``hard_layer``: soft positions and a sampled
            layer (see ``astar.train.attention``).
        order: ``position_first`` (eq. 5 then eq. 6, the paper's) or
            ``layer_first`` (abstraction attention before positions, Section 3.2's alternative).
        samples: K of the multi-sample bound (eq. 10), hard attention only.
        layer_channels: n_F of pool2 … pool5 in the input features.
        fc7_dim: width of a_{L+1}.
        embedding_dim: M, word-vector size (300 for word2vec).
        hidden_dim: LSTM units.
        attention_dim: width of the tanh layers inside the attention scores.
        dropout: drop probability on the LSTM's input words and its output h_t.
    """

    vocab_size: int
    pad_id: int = 0
    eos_id: int = 1
    variant: str = "astar"
    layers: tuple[str, ...] = LAYER_NAMES
    attention: Attention = "soft"
    order: Literal["position_first", "layer_first"] = "position_first"
    samples: int = 10
    layer_channels: tuple[int, ...] = C3D_LAYER_CHANNELS
    fc7_dim: int = FC7_DIM
    embedding_dim: int = 300
    hidden_dim: int = 512
    attention_dim: int = 512
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        if not self.layers or any(name not in LAYER_NAMES for name in self.layers):
            raise ValueError(f"layers must be a non-empty subset of {LAYER_NAMES}, got {self.layers}")
        if list(self.layers) != sorted(self.layers, key=LAYER_NAMES.index):
            raise ValueError(f"layers must be in C3D order {LAYER_NAMES}, got {self.layers}")
        if VARIANTS[self.variant].single_layer and len(self.layers) != 1:
            raise ValueError(f"variant 'single' attends to exactly one layer, got {self.layers}")
        if self.attention == "hard" and self.variant == "fc7":
            raise ValueError("hard attention chooses positions and layers; variant 'fc7' has neither")
        if self.attention == "hard_layer" and self.attended_layers < 2:
            raise ValueError(f"hard_layer attention chooses among layers; variant {self.variant!r} has none to choose")
        if self.attention in HARD_ATTENTION and self.samples < 2:
            raise ValueError("the VIMCO estimator (eqs. 12–14) needs samples >= 2")
        if len(self.layer_channels) != len(LAYER_NAMES):
            raise ValueError(f"layer_channels needs one entry per {LAYER_NAMES}")

    def channels(self, layer: str) -> int:
        """n_F of ``layer`` in the input features."""
        return self.layer_channels[LAYER_NAMES.index(layer)]

    @property
    def attended_layers(self) -> int:
        """Number of maps abstraction-level attention chooses among (1: positions only)."""
        return len(self.layers) if VARIANTS[self.variant].two_level else 1

    @property
    def context_dim(self) -> int:
        """Width D of each aligned feature â_{i,l} and of the context z_t (0 for fc7)."""
        if self.variant == "fc7":
            return 0
        if self.variant == "single":
            return self.channels(self.layers[0])
        if self.variant == "hypercolumn":
            return sum(self.channels(name) for name in self.layers)
        return self.channels("pool5")  # â_L = a_L fixes the common width (eq. 4)

    @classmethod
    def small(cls, vocab_size: int, **overrides: object) -> ModelConfig:
        """A few-thousand-parameter preset for CPU tests and demos on synthetic features.

        Feature channels are 8/16/16/32 and fc7 is 64 wide, so inputs must be generated
        at those widths; for real C3D features pass
        ``layer_channels=C3D_LAYER_CHANNELS, fc7_dim=FC7_DIM``.
        """
        small = cls(
            vocab_size=vocab_size,
            layer_channels=(8, 16, 16, 32),
            fc7_dim=64,
            embedding_dim=32,
            hidden_dim=64,
            attention_dim=32,
            dropout=0.0,
            samples=4,
        )
        return replace(small, **overrides)
