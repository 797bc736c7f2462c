"""Reading PyTorch files (C3D weights, training checkpoints) safely, with one line for every way they can fail.

Both stages load files with ``torch.load(weights_only=True)``, which unpickles tensors and
plain data only, never code. Everything that can go wrong (missing, unreadable,
truncated, not a PyTorch file, pickled code) becomes one line naming the file, and a
refusal of pickled code says what astar does about it instead of quoting PyTorch's hint
to load the file with ``weights_only=False``.
"""
from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

PICKLED_CODE = "it holds pickled code or objects other than tensors and plain data, which astar never loads"
"""Why a file with pickled code is refused: astar reads only tensors and plain data."""


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text.split(". ")[0][:160] or type(error).__name__).rstrip(".")


def load_plain(path: str | Path, error: type[Exception], what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, every failure raised as one line of ``error``.

    Args:
        what: the kind of file, for messages (``weights file``, ``checkpoint``).

    Raises:
        error: missing, unreadable, truncated or corrupt, or holding pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    try:
        with warnings.catch_warnings():  # PyTorch warns about pickle protocols before refusing or reading a file
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as failure:
        found = re.search(r"GLOBAL (\S+)", str(failure))  # the unpickler met a reference to code
        if found:
            raise error(f"{path}: refused: {PICKLED_CODE} ({found.group(1)})") from None
        raise error(f"{path}: not a readable {what}: not a PyTorch file, or {PICKLED_CODE}") from None
    except (OSError, RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as failure:
        raise error(f"{path}: not a readable {what}, truncated or corrupt ({_first_sentence(failure)})") from None
