"""One optimisation step and one validation pass (Section 4.2): the arithmetic of training, apart from its loop.

``optimizer_step`` for cross-entropy and the hard-attention bound (eqs. 3, 10–14),
``self_critical_optimizer_step`` for SCST; both clip the gradient norm and scale fp16
losses. ``validation_loss`` is the per-word NLL that stopping on ``loss`` compares.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from .distributed import global_mean, sum_over_processes, word_mean
from .model.astar import ASTAR
from .model.batch import CaptionBatch
from .text import PAD_ID


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def optimizer_step(
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    clip_norm: float, autocast: torch.dtype | None = None,
) -> float:
    """One optimizer step on a batch: ``objective`` (``Objective``: eq. 3, or −L^K for hard
    attention; or that under DDP), gradients unscaled and clipped to norm ``clip_norm``;
    returns the loss (this process's share of the global batch's, ``word_mean``)."""
    assert batch.tokens is not None
    device = next(objective.parameters()).device
    batch = batch.to(device)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        loss = word_mean(objective(batch.videos, batch.tokens, batch.caption_videos), batch.tokens, PAD_ID)
    return apply_gradients(objective, optimizer, scaler, loss, clip_norm)


def self_critical_optimizer_step(
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    clip_norm: float, autocast: torch.dtype | None = None,
) -> tuple[float, float]:
    """One SCST step on a batch of videos (``SelfCritical``, or that under DDP); returns the loss and the mean sampled reward."""
    device = next(objective.parameters()).device
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        step = objective(batch.videos.to(device), batch.video_ids)
        loss = global_mean(step.loss, len(batch.video_ids))
    return apply_gradients(objective, optimizer, scaler, loss, clip_norm), step.sample_reward


def apply_gradients(
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor, clip_norm: float,
) -> float:
    """Backpropagate ``loss`` (scaled for fp16), clip the gradient norm to ``clip_norm``, step; the loss."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    clip_grad_norm_(objective.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def finite_weights(model: nn.Module) -> bool:
    """True if every floating-point parameter and buffer of ``model`` is finite (no inf, no NaN)."""
    return all(bool(torch.isfinite(value).all()) for value in model.state_dict().values() if value.is_floating_point())


@torch.no_grad()
def validation_loss(model: ASTAR, batches: Iterator[CaptionBatch], device: torch.device, autocast: torch.dtype | None) -> float:
    """Mean negative log-likelihood per word (``<eos>`` included) over every validation pair
    (each process takes its share of the ``batches``; the sums meet, ``sum_over_processes``)."""
    total, words = 0.0, 0
    for batch in batches:
        assert batch.tokens is not None
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model.loss(batch.videos, batch.tokens, batch.caption_videos)
        count = int((batch.tokens != PAD_ID).sum())
        total, words = total + float(loss) * count, words + count
    total, words = sum_over_processes(torch.tensor([total, words], dtype=torch.float64)).tolist()
    return total / words
