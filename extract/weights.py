"""What every backbone's weights share: their identity record, file reading, and key checking.

A weights definition (``WeightsSpec``) carries its preprocessing, so no caller can pair
weights with the wrong input. Files are read with ``torch.load(weights_only=True)``:
pickled code is refused, never run.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import AstarError
from .preprocessing import Preprocessing
from .torchfile import load_plain

RANDOM_INIT = "random-init"


class WeightsError(AstarError):
    """A weights file that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class WeightsSpec:
    """Everything needed to use a set of weights, its preprocessing included.

    Attributes:
        name: ``random-init``, the file name the weights came from, or a torchvision
            weights name (``KINETICS400_V1``).
        format: ``random-init``, ``c3d.pickle``, ``mmaction2`` or ``torchvision``.
        preprocessing: the input recipe the weights expect.
        sha256: hex digest of the weights file (None for random init).
        seed: the generator seed of random-init weights (None for files).
        architecture: the network, recorded in the store (``c3d-sports1m``, ``r3d_18``, …).
    """

    name: str
    format: str
    preprocessing: Preprocessing
    sha256: str | None = None
    seed: int | None = None
    architecture: str = "c3d-sports1m"

    @property
    def is_random(self) -> bool:
        return self.format == RANDOM_INIT

    def describe(self) -> dict:
        """JSON-ready identity stored in the feature store (``model`` root attribute)."""
        return {
            "architecture": self.architecture,
            "weights": RANDOM_INIT if self.is_random else self.name,
            "format": self.format,
            "sha256": self.sha256,
            "seed": self.seed,
            "random_init": self.is_random,
        }


def read_checkpoint(path: str | Path) -> tuple[object, str]:
    """The unpickled tensors of a weights file and its sha256 hex digest.

    Raises:
        WeightsError: missing, truncated or not a PyTorch file, or it holds pickled code.
    """
    path = Path(path)
    checkpoint = load_plain(path, WeightsError, "weights file")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise WeightsError(f"{path}: cannot read ({error.strerror or error})") from None
    return checkpoint, digest


def state_dict_of(checkpoint: object, path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict (unwrapping ``{"state_dict": …}``), all tensors, or a ``WeightsError``."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(checkpoint).__name__}")
    return dict(checkpoint)


def load_matching(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str, optional: Iterable[str] = ()
) -> None:
    """Load ``state`` into ``model`` by key, or raise naming every missing, unexpected or misshapen key.

    Keys in ``optional`` (a classifier head) may be absent or of another shape (another
    label set); they are loaded only when they fit.
    """
    optional = set(optional)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in state
        if k in expected and tuple(state[k].shape) != tuple(expected[k].shape) and k not in optional
    )
    problems = [
        f"{label}: {', '.join(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    ]
    if problems:
        raise WeightsError(f"{path}: not {what} weights ({'; '.join(problems)})")
    usable = {k: v for k, v in state.items() if tuple(v.shape) == tuple(expected[k].shape)}
    model.load_state_dict(usable, strict=False)
