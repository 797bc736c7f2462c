"""The presets of ``--preset``, in one registry: each a model's sizes and the recipe that trains it.

A preset feeds ``TrainConfig``'s validation and defaults, the ``ModelConfig`` a run
builds, the ``--preset`` choices and help of ``astar-train`` and ``astar-ablate``, and the
per-preset defaults their recipe flags show. Adding one is one entry of ``PRESETS``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from astar.extract.store.schema import LayerGeometry

from .model.config import C3D_GEOMETRY, SMALL_FC7_DIM, paper_sizes, small_sizes, small_widths


@dataclass(frozen=True)
class Recipe:
    """How a preset's model is trained: Adam's learning rate, the batch size, the learning
    rate of self-critical fine-tuning (a tenth of the first: it starts from a trained model),
    the temperature it samples at, and the early-stopping patience (validations without
    improvement)."""

    lr: float
    batch_size: int
    scst_lr: float
    scst_temperature: float
    patience: int

    @property
    def summary(self) -> str:
        """The recipe in words, for ``--help``: "lr 0.0002, batches of 32, patience 5"."""
        return f"lr {self.lr:g}, batches of {self.batch_size}, patience {self.patience}"


@dataclass(frozen=True)
class Preset:
    """A named model and recipe: ``sizes(geometry, top_channels)`` gives the ``ModelConfig``
    fields for a store's layers, ``recipe`` how to train it, ``description`` what it is for
    ``--help``."""

    sizes: Callable[[Sequence[LayerGeometry], int], dict[str, Any]]
    recipe: Recipe
    description: str


PRESETS: dict[str, Preset] = {
    # Section 4.2; SCST is not in the paper: Rennie et al.'s sampling at temperature 1.
    "paper": Preset(
        paper_sizes, Recipe(lr=2e-4, batch_size=32, scst_lr=2e-5, scst_temperature=1.0, patience=5),
        "the paper's sizes and recipe",
    ),
    # What trains the small model on the demo data. Its 14 val videos make greedy CIDEr swing
    # by ±30 % between epochs, and patience 5 stopped rows whose val loss was still falling.
    # SCST at temperature 0.3: +14.1 % test CIDEr-D on 400 synthetic clips, against +0.9 % at 1.
    "small": Preset(
        small_sizes, Recipe(lr=1e-2, batch_size=16, scst_lr=1e-3, scst_temperature=0.3, patience=10),
        f"a tiny CPU model reading the first {'/'.join(map(str, small_widths(C3D_GEOMETRY)))} channels of the stored "
        f"layers (C3D: pool2-pool5) and {SMALL_FC7_DIM} of fc7, with the recipe that trains it",
    ),
}
"""Every preset by name; ``--lr``, ``--batch-size``, ``--temperature`` and ``--patience`` override its recipe."""


def preset_help() -> str:
    """``--preset``'s help: each preset's description and recipe ("paper: the paper's sizes … (lr 0.0002, …)")."""
    return " ".join(f"{name}: {preset.description} ({preset.recipe.summary})." for name, preset in PRESETS.items())
