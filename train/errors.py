"""``TrainingError``: a training run that cannot start or go on as asked (an ``AstarError``)."""
from __future__ import annotations

from astar.extract import AstarError


class TrainingError(AstarError):
    """A run that cannot start or go on as asked; the message says why in one line."""
