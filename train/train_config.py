"""``TrainConfig``: every ``astar-train`` flag as one dataclass, and the model it selects.

The training recipe defaults are the paper's (Section 4.2): Adam with learning rate
2e-4, mini-batches of 32 (video, caption) pairs, gradient norm clipped at 5, K = 10
samples for hard attention, early stopping on the validation set. What the paper does
not state is chosen here and documented on the field.

Presets (``--preset``, ``astar.train.presets``) bring a model and the recipe that trains it:

- ``paper``: ``ModelConfig``'s defaults, the paper's sizes (512 LSTM units, 300-d word
  vectors, full C3D widths, dropout 0.5), trained with the paper's Adam lr 2e-4 on
  batches of 32.
- ``small``: ``ModelConfig.small`` (64 LSTM units, 32-d words, the first 8/16/16/32
  channels of pool2…pool5 and 64 of fc7, no dropout, K = 4), so a CPU run over a few
  dozen short videos finishes in minutes. At lr 2e-4 this model stops early long before
  it has learnt anything (val CIDEr ~0.25 on the demo data), so its recipe is lr 1e-2
  on batches of 16, which trains it to convergence in a few dozen epochs.

``lr`` and ``batch_size`` left unset take the preset's recipe; the resolved values are
what a run saves, so a resumed run keeps them even if a recipe changes.

Objectives (``--objective``): ``xent``, the paper's maximum likelihood (eq. 3, or the
K-sample bound for hard attention); ``scst``, self-critical sequence training on
CIDEr-D (``astar.train.objectives.scst``), which starts from a trained run (``init_from``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from astar.extract.finite import require_finite
from astar.extract.options import AUTOCAST_PRECISIONS, DEVICES
from astar.extract.store.schema import LayerGeometry

from .data.datasets import DATASETS
from .model.config import C3D_FC7_DIM, C3D_GEOMETRY, Attention, ModelConfig
from .model.variants import VARIANTS
from .options import DEFAULT_LOADER_WORKERS, FEATURE_CACHES
from .presets import PRESETS
from .text import DEFAULT_MIN_COUNT, EOS_ID, PAD_ID, SPECIALS

STOPPING_METRICS = ("METEOR", "CIDEr", "loss")
OBJECTIVES = ("xent", "scst")
SCST_BASELINES = ("greedy", "mean")
"""Reward baselines of self-critical training (``astar.train.objectives.scst``)."""
VOCABULARY_SPLITS = ("train", "all")
"""Captions the vocabulary is counted on: the training split (default) or every split
(what the paper's YouTube2Text size implies; see the README's "Vocabulary")."""


SCST_FIELDS = frozenset({"scst_samples", "scst_baseline", "temperature", "bleu_weight"})
"""Fields only ``objective="scst"`` reads: a cross-entropy run is the same run whatever they say."""

MODEL_FIELDS = ("preset", "variant", "layers", "attention", "order", "input_norm", "aligned_norm", "samples", "min_count",
                "vocabulary_from")
"""Fields that fix a run's model and vocabulary: a run started ``init_from`` another takes them from it."""

UNSAVED = frozenset({"storage_options", "resume"})
"""Fields not written to ``config.toml``: storage options may hold credentials (pass
them again with ``--resume``), and ``resume`` says how a process started, not the run."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run; field names are the ``astar-train`` flags (``--max-steps`` → ``max_steps``).

    Attributes:
        store: feature store path or fsspec URL.
        dataset: caption adapter, one of ``DATASETS``.
        annotations: annotation file or folder; None looks in ``default_annotation_paths``.
        out: run directory; None gives ``runs/<dataset>-<variant>-<YYYYmmdd-HHMMSS>``.
        preset: a name of ``PRESETS`` (``paper`` or ``small``; module docstring).
        variant, layers, attention, order, samples: the model (``ModelConfig``); None
            keeps the preset's value (all four layers; K = 10 paper, 4 small).
            ``attention="hard"`` is the paper's hard attention (a sampled position and
            layer per word), ``hard_layer`` samples only the layer.
        epochs: most passes over the training pairs.
        patience: evaluations without improvement of ``metric`` before stopping early.
        metric: validation metric for early stopping: ``CIDEr`` (default; needs no
            Java), ``METEOR`` (needs Java) on greedy captions of the val split, or ``loss``.
        eval_every: epochs between validations (the last epoch is always validated).
        batch_size: (video, caption) pairs per step, or videos per step for ``scst``;
            None: the preset's recipe (paper: 32, small: 16).
        lr: Adam learning rate; None: the preset's recipe (paper: 2e-4, small: 1e-2; for
            ``scst`` a tenth of that).
        captions_per_video: C, captions of one video per batch, sharing its eq.-4
            alignment (batch_size // C videos a step; README, "Captions per video"). The
            default is the paper's 32 independent pairs, C = 1; C = 4 trains 3.3× more
            captions/s at the paper's widths on a CPU (benchmarks/model.py) but, with
            fewer videos a step, learned less from the videos in our small-data test.
        clip_norm: gradient norm clipping threshold (paper: 5).
        min_count: vocabulary keeps words seen this often (``text.DEFAULT_MIN_COUNT``).
        vocabulary_from: count the vocabulary on the ``train`` split or on ``all`` splits.
        max_caption_len: training captions are cut to this many words (then <eos>);
            greedy validation captions stop after it plus <eos>.
        word2vec: word2vec vectors to start W_e from (Section 4.2); width must be the
            preset's embedding size (300 for paper).
        paper_split: MSR-VTT only: the paper's re-split of the official training set.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: autocast dtype on CUDA, ``auto`` = bf16 where supported, else fp16
            (with loss scaling); CPU always runs fp32.
        seed: seeds initialisation, dropout, hard-attention samples and batch order.
        objective: ``xent`` (maximum likelihood) or ``scst`` (self-critical, CIDEr-D).
        init_from: run directory whose best checkpoint (weights, vocabulary, input scales)
            starts this run; its model fields (``MODEL_FIELDS``) must match. Required by ``scst``.
        scst_samples: K captions sampled per video by ``scst``.
        scst_baseline: ``mean`` (mean reward of the video's other K − 1 samples, the
            default: on the demo data it raised val CIDEr where ``greedy`` at the same lr
            lowered it) or ``greedy`` (reward of the greedy caption, Rennie et al.).
        temperature: ``scst`` samples from softmax(logits / temperature); None: the preset's
            recipe (paper 1, small 0.3).
        bleu_weight: ``scst``'s reward is CIDEr-D + bleu_weight · BLEU-4.
        loader_workers: processes reading the store (0: in the training process).
        feature_cache: where the training and val features are read from (``astar.train.data.cache_plan``):
            ``device`` (decompressed once onto the training GPU), ``host`` (once, into shared
            RAM every loader worker maps), ``none`` (streamed from the store) or ``auto`` (the
            first of those that fits). Results are the same whichever.
        checkpoint_every: also write ``last.pt`` every this many steps (0: at epoch ends only).
        max_steps: stop (resumably) after this many optimizer steps in total.
        storage_options: fsspec options of a remote store.
        resume: run directory to continue; ``rundir.resume_config`` builds this config.
        progress: show progress on stderr (bars on a terminal, plain lines in a log).
    """

    store: str
    dataset: str
    annotations: str | None = None
    out: str | None = None
    preset: str = "paper"
    variant: str = "astar"
    layers: tuple[str, ...] | None = None
    attention: Attention = "soft"
    order: Literal["position_first", "layer_first"] = "position_first"
    input_norm: str = "channel"
    aligned_norm: str = "rms"
    samples: int | None = None
    epochs: int = 50
    patience: int | None = None
    metric: str = "CIDEr"
    eval_every: int = 1
    batch_size: int | None = None
    captions_per_video: int = 1
    lr: float | None = None
    clip_norm: float = 5.0
    min_count: int = DEFAULT_MIN_COUNT
    vocabulary_from: str = "train"
    max_caption_len: int = 30
    word2vec: str | None = None
    paper_split: bool = False
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    objective: str = "xent"
    init_from: str | None = None
    scst_samples: int = 8
    scst_baseline: str = "mean"
    temperature: float | None = None
    bleu_weight: float = 0.0
    loader_workers: int = DEFAULT_LOADER_WORKERS
    feature_cache: str = "auto"
    checkpoint_every: int = 1000
    max_steps: int | None = None
    storage_options: dict[str, str] = field(default_factory=dict)
    resume: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        choices = {
            "dataset": DATASETS, "preset": tuple(PRESETS), "variant": VARIANTS, "metric": STOPPING_METRICS,
            "device": DEVICES, "precision": AUTOCAST_PRECISIONS, "objective": OBJECTIVES,
            "scst_baseline": SCST_BASELINES, "vocabulary_from": VOCABULARY_SPLITS, "feature_cache": FEATURE_CACHES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        recipe = PRESETS[self.preset].recipe
        from_recipe = {"lr": recipe.scst_lr if self.objective == "scst" else recipe.lr, "batch_size": recipe.batch_size,
                       "patience": recipe.patience, "temperature": recipe.scst_temperature}
        for name, value in from_recipe.items():  # a field left None takes the preset's recipe
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        positive = ("epochs", "patience", "eval_every", "batch_size", "max_caption_len", "min_count", "scst_samples",
                    "captions_per_video")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("loader_workers", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1; got {self.max_steps}")
        require_finite(lr=self.lr, clip_norm=self.clip_norm, temperature=self.temperature, bleu_weight=self.bleu_weight)
        if self.lr <= 0 or self.clip_norm <= 0:
            raise ValueError("lr and clip_norm must be positive")
        if self.objective == "scst" and not self.init_from:
            raise ValueError("objective scst fine-tunes a trained model: give init_from (--init-from RUN_DIR)")
        if self.scst_baseline == "mean" and self.scst_samples < 2:
            raise ValueError("scst_baseline mean averages the other samples: scst_samples must be at least 2")
        if self.temperature <= 0 or self.bleu_weight < 0:
            raise ValueError("temperature must be positive and bleu_weight 0 or more")
        if self.captions_per_video > self.batch_size:
            raise ValueError(f"captions_per_video ({self.captions_per_video}) cannot exceed batch_size ({self.batch_size})")
        if self.paper_split and self.dataset != "msr-vtt":
            raise ValueError("paper_split applies to --dataset msr-vtt only")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        self.model_config(len(SPECIALS) + 1, self._stand_in_geometry())  # a ValueError here names the impossible combination

    def _stand_in_geometry(self) -> tuple[LayerGeometry, ...]:
        """C3D's layers, renamed to ``layers`` when those are another backbone's: the names are
        checked against the store's when a run opens it, everything else here."""
        names = {layer.name for layer in C3D_GEOMETRY}
        if self.layers is None or set(self.layers) <= names:
            return C3D_GEOMETRY
        renamed = [replace(layer, name=name) for layer, name in zip(C3D_GEOMETRY[-len(self.layers):], self.layers)]
        return (*C3D_GEOMETRY[: len(C3D_GEOMETRY) - len(renamed)], *renamed)

    def model_config(
        self, vocab_size: int, geometry: tuple[LayerGeometry, ...] = C3D_GEOMETRY, top_channels: int = C3D_FC7_DIM
    ) -> ModelConfig:
        """The ``ModelConfig`` this run trains, for a vocabulary of ``vocab_size`` words, on stored
        layers of ``geometry`` with a_{L+1} ``top_channels`` wide (``FeatureStore.layers``, ``.top_channels``)."""
        chosen: dict[str, Any] = dict(
            vocab_size=vocab_size, pad_id=PAD_ID, eos_id=EOS_ID,
            variant=self.variant, attention=self.attention, order=self.order, geometry=geometry,
            input_norm=self.input_norm, aligned_norm=self.aligned_norm,
        )
        if self.layers is not None:
            chosen["layers"] = self.layers
        elif self.variant == "single":
            names = ", ".join(layer.name for layer in geometry)
            raise ValueError(f"variant 'single' needs exactly one layer: pass --layers, one of {names}")
        if self.samples is not None:
            chosen["samples"] = self.samples
        return ModelConfig(**{**PRESETS[self.preset].sizes(geometry, top_channels), **chosen})

    def self_critical(self, out: str, epochs: int) -> TrainConfig:
        """Self-critical fine-tuning of this run's best checkpoint (``init_from`` = ``out`` of this
        run) into ``out`` for up to ``epochs`` epochs, any of which may be the best (patience =
        ``epochs``), with the preset's SCST recipe (its lr and batch size)."""
        return replace(self, out=out, objective="scst", init_from=self.out, epochs=epochs, patience=epochs, lr=None,
                       batch_size=None)

    def to_dict(self) -> dict[str, Any]:
        """The saved fields (all but ``UNSAVED``) without None values, TOML-ready."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
            if name not in UNSAVED and value is not None
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys are a ``ValueError``."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings {', '.join(unknown)}")
        return cls(**values)

    def differences(self, other: TrainConfig, ignore: frozenset[str] = frozenset()) -> list[str]:
        """Names of the fields (outside ``ignore``) whose values differ from ``other``'s; between two
        cross-entropy runs, the fields only self-critical training reads (``SCST_FIELDS``) do not count."""
        if self.objective == other.objective == "xent":
            ignore = ignore | SCST_FIELDS
        return [
            item.name for item in fields(self)
            if item.name not in ignore and getattr(self, item.name) != getattr(other, item.name)
        ]

