"""Where features came from, in words: the one wording of the weights line and of the random-init warning.

Both are functions of the weights identity, the ``model`` root attribute of a store
(``WeightsSpec.describe()``, storage_schema.md), so the extractor, the trainer, the
evaluator, the captioner and the pipelines all say the same thing.
"""
from __future__ import annotations

from typing import Any

from .backbones import backbone_of


def weights_line(identity: dict[str, Any]) -> str:
    """How the features were made, in a few words naming the backbone; random-init is said in capitals.

    Args:
        identity: the weights identity (a store's ``model`` attribute); its ``architecture``
            names the backbone (C3D, R(2+1)D-18, …).
    """
    backbone = backbone_of(identity.get("architecture"))
    label = backbone.label if backbone else str(identity.get("architecture"))
    if identity.get("random_init"):
        pretrained = f"pretrained {backbone.pretrained_on} ones" if backbone else "pretrained ones"
        return f"RANDOM-INIT {label} weights (seed {identity.get('seed')}), not {pretrained}"
    return f"{label} weights {identity.get('weights')} (sha256 {str(identity.get('sha256'))[:12]}…)"


def random_init_warning(identity: dict[str, Any]) -> str | None:
    """The warning every command prints for features from random-init weights; None for real weights."""
    if not identity.get("random_init"):
        return None
    backbone = backbone_of(identity.get("architecture"))
    weights = backbone.weights_example if backbone else "FILE"
    return (f"WARNING: features from {weights_line(identity)}: captions and scores built on them rest on random "
            f"features; extract with astar-extract --weights {weights} for real ones")
