"""A trained run loaded for use: its model on a device, vocabulary, settings and the store identity it was trained on.

The run directory's layout and files are ``rundir``'s; this module adds the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, restore_weights
from .data.loader import FeatureReader
from .model.astar import ASTAR
from .model.config import ModelConfig
from .rundir import RunError, RunPaths, identity_differences, read_run_config, read_store_attrs, read_vocabulary
from .text import Vocabulary
from .train_config import TrainConfig


@dataclass
class LoadedRun:
    """A trained model with everything needed to use it on new features.

    Attributes:
        run_dir: the run directory.
        model: ``ASTAR`` in eval mode on the requested device.
        vocabulary: ids ↔ words of the model's outputs.
        config: the run's training settings.
        model_config: the model's architecture (feature widths included).
        store_attrs: the root attributes of the store it was trained on (extraction identity).
        checkpoint: ``best`` or ``last``.
        epoch, step: training progress when the checkpoint was written.
    """

    run_dir: Path
    model: ASTAR
    vocabulary: Vocabulary
    config: TrainConfig
    model_config: ModelConfig
    store_attrs: dict[str, Any]
    checkpoint: str
    epoch: int
    step: int

    def reader(self, store, storage_options: dict | None = None) -> FeatureReader:
        """A ``FeatureReader`` giving this model its inputs from ``store`` (an opened ``FeatureStore``)."""
        return FeatureReader(store, self.model_config, storage_options)

    def identity_differences(self, store_attrs: dict[str, Any]) -> list[str]:
        """How ``store_attrs`` (another store's, or ``Extractor.identity()``) differ from the run's store."""
        return identity_differences(self.store_attrs, store_attrs)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run's model (eval mode), vocabulary, settings and store identity.

    Args:
        run_dir: a directory written by ``astar-train`` / ``train``.
        checkpoint: ``best`` (best validation score) or ``last`` (latest state).
        device: where the model goes.

    Raises:
        RunError: not a run directory, or a file of it is missing or unusable.
        CheckpointError: the checkpoint is missing, corrupt or foreign.
    """
    paths = RunPaths(Path(run_dir))
    config, model_config = read_run_config(paths.root)
    vocabulary = read_vocabulary(paths)
    if checkpoint == "best" and not paths.checkpoint("best").exists() and paths.checkpoint("last").exists():
        raise RunError(f"{paths.root}: no best checkpoint yet (no validation has run); load checkpoint 'last'")
    document = load_checkpoint(paths.checkpoint(checkpoint), map_location=device)
    if not model_config.describes(document.get("model_config")):
        raise CheckpointError(f"{paths.checkpoint(checkpoint)}: its model differs from {paths.config}")
    model = ASTAR(model_config).to(device)
    restore_weights(model, document["model"], paths.checkpoint(checkpoint))
    model.eval()
    return LoadedRun(
        run_dir=paths.root,
        model=model,
        vocabulary=vocabulary,
        config=config,
        model_config=model_config,
        store_attrs=read_store_attrs(paths),
        checkpoint=checkpoint,
        epoch=int(document["progress"]["epoch"]),
        step=int(document["progress"]["step"]),
    )
