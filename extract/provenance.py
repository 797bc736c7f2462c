"""Where features came from, in words: the one wording of the weights line and of the random-init warning.

Both are functions of the weights identity, the ``model`` root attribute of a store
(``WeightsSpec.describe()``, storage_schema.md), so the extractor, the trainer, the
evaluator, the captioner and the pipelines all say the same thing.
"""
from __future__ import annotations

from typing import Any


def weights_line(identity: dict[str, Any]) -> str:
    """How the features were made, in a few words; random-init is said in capitals.

    Args:
        identity: the weights identity (a store's ``model`` attribute).
    """
    if identity.get("random_init"):
        return f"RANDOM-INIT C3D weights (seed {identity.get('seed')}), not pretrained Sports-1M ones"
    return f"C3D weights {identity.get('weights')} (sha256 {str(identity.get('sha256'))[:12]}…)"


def random_init_warning(identity: dict[str, Any]) -> str | None:
    """The warning every command prints for features from random-init weights; None for real weights."""
    if not identity.get("random_init"):
        return None
    return (f"WARNING: features from {weights_line(identity)}: captions and scores built on them rest on random "
            "features; extract with astar-extract --weights c3d.pickle for real ones")
