"""Checkpoint files: written atomically, read with ``weights_only=True``, refused when foreign or broken.

A checkpoint is a ``torch.save`` of a plain dict holding only tensors, numbers,
strings, lists, tuples and dicts (so ``torch.load(weights_only=True)`` reads it and
unpickles no code). It always has ``format`` = ``CHECKPOINT_FORMAT``, ``version``,
``model`` (the state dict) and ``model_config``; the trainer adds the rest (optimizer,
RNG states, progress, early stopping; see ``trainer``).

Writing goes to a temporary file in the same folder, which is flushed and fsynced
and then renamed over the target (``os.replace``, atomic on POSIX and Windows); the
folder is fsynced too. A kill at any moment leaves either the old file or the new
one, never a partial one.
"""
from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from astar.extract import AstarError
from astar.extract.store.reader import error_reason
from astar.extract.torchfile import load_plain

CHECKPOINT_FORMAT = "astar-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(AstarError):
    """A checkpoint that cannot be used; the message names the file and the reason in one line."""


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` with what ``write`` writes to a binary stream, atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(temporary, "xb") as stream:  # created with the umask's permissions, unlike mkstemp
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(descriptor)


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Write ``checkpoint`` (with ``format`` and ``version`` added) to ``path`` atomically."""
    document = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **checkpoint}
    write_atomically(path, lambda stream: torch.save(document, stream))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``, with ``weights_only=True``.

    Raises:
        CheckpointError: missing, truncated or corrupt, holding pickled code, not a
            checkpoint of this format, or of another version (one line naming ``path``).
    """
    path = Path(path)
    document = load_plain(path, CheckpointError, "checkpoint", map_location)
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an astar checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if document.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {document.get('version')!r}, this astar reads version {CHECKPOINT_VERSION}"
        )
    return document


def restore_weights(model: torch.nn.Module, weights: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's ``model`` state into ``model``.

    Raises:
        CheckpointError: its tensors do not fit this model (names or shapes), e.g. a baseline
            saved before its layers changed; one line naming the file and the first misfits.
    """
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: its weights do not fit the model this astar builds from the run's "
                              f"config (saved by another version?): {error_reason(error)}") from None


def capture_rng() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as plain data."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``; CUDA states are restored where CUDA is present."""
    random.setstate(_tuples(state["python"]))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """Lists back to tuples, as ``random.setstate`` wants them."""
    return tuple(_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value
