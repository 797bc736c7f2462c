"""The objectives as modules whose ``forward`` is a step's loss: the form DistributedDataParallel wraps.

A DDP model must be called through ``forward`` for its gradient hooks to see the loss,
so the trainer wraps these (``astar.train.distributed.Processes.wrap``), not ``ASTAR``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..model.astar import ASTAR
from ..model.batch import VideoBatch
from .scst import CaptionReward, ScstStep, self_critical_step


class Objective(nn.Module):
    """``ASTAR.loss`` (eq. 3, or −L^K with VIMCO for hard attention) as a module's ``forward``, the form DDP wraps."""

    def __init__(self, model: ASTAR) -> None:
        super().__init__()
        self.model = model

    def forward(self, videos: VideoBatch, tokens: Tensor, caption_videos: Tensor | None = None) -> Tensor:
        return self.model.loss(videos, tokens, caption_videos)


@dataclass(frozen=True)
class ScstSettings:
    """How ``SelfCritical`` samples and rewards (``astar.train.objectives.scst``): K samples, baseline, τ, most tokens."""

    samples: int
    baseline: str
    max_len: int
    temperature: float


class SelfCritical(nn.Module):
    """``self_critical_step`` as a module's ``forward``: the SCST loss of a batch of videos, the form DDP wraps."""

    def __init__(self, model: ASTAR, reward: CaptionReward, settings: ScstSettings) -> None:
        super().__init__()
        self.model, self.reward, self.settings = model, reward, settings

    def forward(self, videos: VideoBatch, video_ids: Sequence[str]) -> ScstStep:
        settings = self.settings
        return self_critical_step(self.model, videos, video_ids, self.reward, settings.samples, settings.baseline,
                                  settings.max_len, settings.temperature)
