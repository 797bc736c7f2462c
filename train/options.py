"""The names and defaults that the training stage's options offer, torch-free.

Click defines ``astar-train``'s, ``astar-eval``'s, ``astar-caption``'s and
``astar-ablate``'s options when their modules are imported, before any model exists, so
the choices and defaults they show live here, where importing them loads nothing
heavy; the modules that act on them (``normalise``, ``loader``, ``cache_plan``, ``search``, ``rundir``)
import them from here.
"""
from __future__ import annotations

INPUT_NORMS = ("channel", "rms")
"""``ModelConfig.input_norm`` choices (``astar.train.model.normalise``'s docstring)."""
ALIGNED_NORMS = ("layer", "rms", "none")
"""``ModelConfig.aligned_norm`` choices (``astar.train.model.normalise``'s docstring)."""

DEFAULT_LOADER_WORKERS = 2
"""Processes reading features from the store for training and evaluation (0: in the calling process)."""

FEATURE_CACHES = ("auto", "device", "host", "none")
"""Where training reads features from (``astar.train.data.cache_plan``): decompressed once onto the GPU or into
shared host memory, streamed from the store (``none``), or the fastest of those that fits (``auto``)."""
DEVICE_MEMORY_SHARE = 0.5
"""The most of the training GPU's free memory a feature cache may take; the rest holds the model,
Adam's moments and a batch's activations."""
HOST_MEMORY_SHARE = 0.5
"""The most of the host's available memory a host feature cache may take; the rest holds the loader
workers, their batches in flight and the training process."""

DEFAULT_BEAM_SIZE = 5
"""K of beam search when captioning (``astar.train.model.search``)."""

CHECKPOINTS = ("best", "last")
"""The checkpoints a run directory keeps: best validation score, latest state."""


def check_modes(input_norm: str, aligned_norm: str) -> None:
    """Raise ``ValueError`` naming the choices when either normalisation mode is unknown."""
    for what, value, choices in (("input_norm", input_norm, INPUT_NORMS), ("aligned_norm", aligned_norm, ALIGNED_NORMS)):
        if value not in choices:
            raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
