"""``ModelConfig``: one dataclass selecting ASTAR or one of the paper's baselines.

Defaults are the paper's sizes (Section 4.2) on C3D's layers; ``paper_sizes`` and
``small_sizes`` are the presets' fields (``astar.train.presets``), ``ModelConfig.small`` the
CPU preset's model. A config carries the geometry of the stored layers it reads (from the
store, ``FeatureStore.layers``), so the same model code serves every backbone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from astar.extract import DEFAULT_BACKBONE, get_backbone
from astar.extract.store.schema import LayerGeometry

from ..options import check_modes
from ..text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from .variants import VARIANTS

Attention = Literal["soft", "hard", "hard_layer"]
"""Section 3.2: ``soft`` (eq. 7); ``hard`` (eq. 8 on positions and layers, the paper's);
``hard_layer`` (eq. 8 on layers only, positions soft)."""

HARD_ATTENTION: frozenset[str] = frozenset({"hard", "hard_layer"})
"""Attention forms trained with the K-sample bound and VIMCO (eqs. 10–14)."""

C3D_GEOMETRY: tuple[LayerGeometry, ...] = get_backbone(DEFAULT_BACKBONE).layers
"""C3D's pool2 … pool5, the paper's layers and the geometry a config has unless given another."""

C3D_LAYER_CHANNELS: tuple[int, ...] = tuple(layer.channels for layer in C3D_GEOMETRY)
"""Channels n_F of pool2 … pool5 in C3D (Appendix B), as the feature store holds them."""

C3D_FC7_DIM = get_backbone(DEFAULT_BACKBONE).top_channels

SMALL_FC7_DIM = 64
"""Width of a_{L+1} the small preset reads."""


def small_widths(geometry: Sequence[LayerGeometry]) -> tuple[int, ...]:
    """Channels the small preset reads per layer: 8 for the lowest, 32 for the top, 16 between
    (C3D: 8/16/16/32), never more than the layer holds."""
    wanted = [8] + [16] * (len(geometry) - 2) + [32] if len(geometry) > 1 else [32]
    return tuple(min(width, layer.channels) for width, layer in zip(wanted, geometry))


def paper_sizes(geometry: Sequence[LayerGeometry], top_channels: int = C3D_FC7_DIM) -> dict[str, Any]:
    """The paper preset's ``ModelConfig`` fields: its sizes (Section 4.2, the dataclass defaults) on
    every channel of the stored layers and of a_{L+1} (``top_channels`` wide)."""
    return {"layer_channels": tuple(layer.channels for layer in geometry), "fc7_dim": top_channels}


def small_sizes(geometry: Sequence[LayerGeometry], top_channels: int = C3D_FC7_DIM) -> dict[str, Any]:
    """The small preset's ``ModelConfig`` fields: a few-thousand-parameter model that a CPU trains
    in minutes, reading ``small_widths(geometry)`` channels (C3D: 8/16/16/32) and
    ``SMALL_FC7_DIM`` of a_{L+1} whatever ``top_channels`` the store holds; 64 LSTM units,
    32-d words, no dropout, K = 4."""
    return {"layer_channels": small_widths(geometry), "fc7_dim": SMALL_FC7_DIM, "embedding_dim": 32, "hidden_dim": 64,
            "attention_dim": 32, "dropout": 0.0, "samples": 4}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an ASTAR model or baseline; defaults are the paper's.

    Attributes:
        vocab_size: V, words including ``<pad>`` and ``<eos>``.
        pad_id: token id of ``<pad>``; ignored by the loss.
        eos_id: token id of ``<eos>``; ends greedy decoding; never a caption's first word.
        never_emitted: ids decoding never chooses besides ``<pad>`` (the vocabulary's ``<bos>``
            and ``<unk>``): captions hold words, so no search or sample joins n-grams across a gap.
        input_norm: how each stored input is scaled before eq. (4): ``channel`` (centred
            and scaled per channel, the default) or ``rms`` (one divisor per input); see
            ``astar.train.model.normalise``.
        aligned_norm: ``rms`` (each video's â_l divided by its RMS before eqs. 5–6, the
            default), ``layer`` (each â_{i,l} normalised over its channels) or ``none``;
            see ``astar.train.model.normalise``.
        variant: one of ``variants.VARIANTS``.
        layers: layers attended to, a subset of the stored layers (``geometry``) in
            their order; exactly one for ``single``. Empty (the default) means all.
        attention: ``soft`` (eq. 7); ``hard`` (eqs. 8–14), the paper's: a sampled position
            and a sampled layer per word; or ``hard_layer``: soft positions and a sampled
            layer (see ``astar.train.model.attention``).
        order: ``position_first`` (eq. 5 then eq. 6, the paper's) or
            ``layer_first`` (abstraction attention before positions, Section 3.2's alternative).
        samples: K of the multi-sample bound (eq. 10), hard attention only.
        layer_channels: n_F of each stored layer in the input features (one per ``geometry``).
        fc7_dim: width of a_{L+1}.
        geometry: the stored layers a_1 … a_L (``FeatureStore.layers``), lowest first; the
            last one's grid is the attention grid (â_L = a_L, eq. 4). Default: C3D's.
        embedding_dim: M, word-vector size (300 for word2vec).
        hidden_dim: LSTM units.
        attention_dim: width of the tanh layers inside the attention scores.
        dropout: drop probability on the LSTM's input words and its output h_t.
    """

    vocab_size: int
    pad_id: int = PAD_ID
    eos_id: int = EOS_ID
    never_emitted: tuple[int, ...] = (BOS_ID, UNK_ID)
    variant: str = "astar"
    layers: tuple[str, ...] = ()
    attention: Attention = "soft"
    order: Literal["position_first", "layer_first"] = "position_first"
    samples: int = 10
    layer_channels: tuple[int, ...] = C3D_LAYER_CHANNELS
    fc7_dim: int = C3D_FC7_DIM
    embedding_dim: int = 300
    hidden_dim: int = 512
    attention_dim: int = 512
    dropout: float = 0.5
    geometry: tuple[LayerGeometry, ...] = C3D_GEOMETRY
    input_norm: str = "channel"
    aligned_norm: str = "rms"

    def __post_init__(self) -> None:
        check_modes(self.input_norm, self.aligned_norm)
        object.__setattr__(self, "never_emitted", tuple(self.never_emitted))
        if {self.pad_id, self.eos_id} & set(self.never_emitted) or self.pad_id == self.eos_id:
            raise ValueError(f"pad_id {self.pad_id}, eos_id {self.eos_id} and never_emitted {self.never_emitted} must differ")
        if len({self.pad_id, self.eos_id, *self.never_emitted} & set(range(self.vocab_size))) >= self.vocab_size:
            raise ValueError(f"a vocabulary of {self.vocab_size} tokens holds no word to caption with")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        # Configs read back from TOML or a checkpoint hold records and lists; a config holds geometry and tuples.
        geometry = tuple(g if isinstance(g, LayerGeometry) else LayerGeometry.from_record(g) for g in self.geometry)
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "layers", tuple(self.layers) or self.layer_names)
        object.__setattr__(self, "layer_channels", tuple(self.layer_channels))
        names = self.layer_names
        if any(name not in names for name in self.layers):
            raise ValueError(f"layers must be a non-empty subset of {', '.join(names)}, got {', '.join(self.layers)}")
        if list(self.layers) != sorted(self.layers, key=names.index):
            raise ValueError(f"layers must be in the stored order {', '.join(names)}, got {', '.join(self.layers)}")
        if VARIANTS[self.variant].single_layer and len(self.layers) != 1:
            raise ValueError(f"variant 'single' attends to exactly one layer, got {self.layers}")
        if self.attention == "hard" and self.variant == "fc7":
            raise ValueError("hard attention chooses positions and layers; variant 'fc7' has neither")
        if self.attention == "hard_layer" and self.attended_layers < 2:
            raise ValueError(f"hard_layer attention chooses among layers; variant {self.variant!r} has none to choose")
        if self.attention in HARD_ATTENTION and self.samples < 2:
            raise ValueError("the VIMCO estimator (eqs. 12–14) needs samples >= 2")
        if len(self.layer_channels) != len(names):
            raise ValueError(f"layer_channels needs one entry per stored layer ({', '.join(names)})")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """A config from ``asdict`` output read back (TOML, a checkpoint); a config saved before
        configs carried geometry is a C3D one. Unknown keys are a ``TypeError``."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown model settings {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) and k != "geometry" else v for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists and the geometry as records: ready for TOML and checkpoints."""
        values = {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}
        return {**values, "geometry": [layer.describe() for layer in self.geometry]}

    def describes(self, saved: object) -> bool:
        """True when ``saved`` (a checkpoint's or config's ``to_dict`` record, or an older ``asdict``) is this config."""
        try:
            return isinstance(saved, dict) and ModelConfig.from_dict(saved) == self
        except (TypeError, ValueError, KeyError):
            return False

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Every stored layer's name, lowest first (C3D: pool2 … pool5)."""
        return tuple(layer.name for layer in self.geometry)

    @property
    def top(self) -> LayerGeometry:
        """a_L, the top stored layer, whose grid every aligned layer is pooled onto."""
        return self.geometry[-1]

    def layer(self, name: str) -> LayerGeometry:
        """The geometry of stored layer ``name``."""
        return self.geometry[self.layer_names.index(name)]

    def time_ratio(self, name: str) -> int:
        """Time steps of ``name`` per top-layer step (C3D: pool2 8, pool3 4, pool4 2, pool5 1)."""
        return self.top.time_stride // self.layer(name).time_stride

    def channels(self, layer: str) -> int:
        """n_F of ``layer`` in the input features."""
        return self.layer_channels[self.layer_names.index(layer)]

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
        return self.channels(self.top.name)  # â_L = a_L fixes the common width (eq. 4)

    @classmethod
    def small(cls, vocab_size: int, **overrides: object) -> ModelConfig:
        """The small preset's model (``small_sizes``) for CPU tests and demos on synthetic features.

        Inputs must be generated at its widths; for real C3D features pass
        ``layer_channels=C3D_LAYER_CHANNELS, fc7_dim=C3D_FC7_DIM``. A ``geometry`` override
        (another backbone's layers) sets the widths for its layers.
        """
        geometry = tuple(overrides.get("geometry", C3D_GEOMETRY))
        return replace(cls(vocab_size=vocab_size, geometry=geometry, **small_sizes(geometry)), **overrides)


def model_layers(config: ModelConfig) -> tuple[str, ...]:
    """Layers the model reads from the store: its attended layers, none for the fc7 baseline."""
    return () if config.variant == "fc7" else config.layers
