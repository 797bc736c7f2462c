"""The flags of a run's recipe, defined once: ``astar-train`` and ``astar-ablate`` share them.

Kept apart from ``astar.train.cli`` so that importing the package does not import the
command module (``torchrun -m astar.train.cli`` runs it as ``__main__``).
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

import click

from astar.extract.clitools import FiniteFloat
from astar.extract.options import AUTOCAST_PRECISIONS

from .presets import PRESETS
from .train_config import STOPPING_METRICS, VOCABULARY_SPLITS, TrainConfig

DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(TrainConfig)}
RECIPE_HELP = {name: ", ".join(f"{preset} {getattr(entry.recipe, name):g}" for preset, entry in PRESETS.items())
               for name in ("lr", "batch_size", "scst_lr", "scst_temperature", "patience")}

RECIPE_OPTIONS = [
    click.option("--samples", type=click.IntRange(min=2), help="K of the multi-sample bound for hard attention. Default: 10 (paper), 4 (small)."),
    click.option("--patience", type=click.IntRange(min=1), help="Validations without improvement before early stopping. Default: the preset's recipe, " + RECIPE_HELP["patience"] + "."),
    click.option("--metric", type=click.Choice(STOPPING_METRICS), default=DEFAULTS["metric"], show_default=True, help="Early-stopping metric on the val split: CIDEr or METEOR (needs Java) of greedy captions, or the loss."),
    click.option("--eval-every", type=click.IntRange(min=1), default=DEFAULTS["eval_every"], show_default=True, help="Epochs between validations."),
    click.option("--lr", type=FiniteFloat(min=0, min_open=True), help="Adam learning rate. Default: the preset's recipe, " + RECIPE_HELP["lr"] + " (for --objective scst: " + RECIPE_HELP["scst_lr"] + ")."),
    click.option("--clip-norm", type=FiniteFloat(min=0, min_open=True), default=DEFAULTS["clip_norm"], show_default=True, help="Gradient norm clipping threshold (paper: 5)."),
    click.option("--min-count", type=click.IntRange(min=1), default=DEFAULTS["min_count"], show_default=True, help="Vocabulary keeps words seen at least this often; rarer ones become <unk>."),
    click.option("--vocabulary-from", type=click.Choice(VOCABULARY_SPLITS), default=DEFAULTS["vocabulary_from"], show_default=True, help="Count the vocabulary on the train split, or on all splits (with --min-count 1 the rule the paper's YouTube2Text size implies; see the README)."),
    click.option("--max-caption-len", type=click.IntRange(min=1), default=DEFAULTS["max_caption_len"], show_default=True, help="Training captions are cut to this many words; validation captions stop there."),
    click.option("--word2vec", type=click.Path(dir_okay=False), help="word2vec vectors (binary or text) to initialise word embeddings (paper: GoogleNews 300-d)."),
    click.option("--precision", type=click.Choice(AUTOCAST_PRECISIONS), default=DEFAULTS["precision"], show_default=True, help="CUDA autocast: auto = bf16 where supported, else fp16. CPU always runs fp32."),
]
"""The flags of a run's recipe and text that do not pick the model's variant: ``astar-train`` and
``astar-ablate`` (which applies them to every row) share these definitions."""
RECIPE_FIELDS: tuple[str, ...] = tuple(option(lambda: None).__click_params__[0].name for option in RECIPE_OPTIONS)
"""``TrainConfig`` fields of ``RECIPE_OPTIONS``."""


def recipe_options(command: Any) -> Any:
    """Decorate ``command`` with ``RECIPE_OPTIONS``, in their order."""
    for option in reversed(RECIPE_OPTIONS):
        command = option(command)
    return command
