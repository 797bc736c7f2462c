"""Training on several processes with torch.distributed: DistributedDataParallel under torchrun.

``torchrun --nproc_per_node N -m astar.train.cli …`` starts N processes and gives each
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``Processes.from_environment`` reads them
(one process without torchrun). The pieces that keep N processes equal to one with
the same global batch:

- Batches: ``BucketBatchSampler(rank=…, world_size=…)`` gives each process its share of
  every global batch, whole groups of a video's captions (``loader.py``).
- Loss: DDP averages the processes' gradients, while one process averages over the
  global batch's words; ``word_mean`` rescales each process's per-word mean by its
  share of the global word count, so the average is the global per-word mean (eq. 3).
- Model: ``Objective`` is the module DDP wraps; its ``forward`` is ``ASTAR.loss``, so
  DDP's gradient hooks see the step (a DDP model must be called through ``forward``).

Everything else (clipping, Adam, checkpoints) then sees the gradients one process would.
Only rank 0 writes checkpoints and logs; evaluation shares its batches the same way
and sums across processes (``sum_over_processes``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .video_batch import VideoBatch
from .model import ASTAR


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        """What torchrun set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process when it did not."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and scores."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """This process's GPU (``cuda:LOCAL_RANK``) when training on CUDA; ``device`` otherwise."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.distributed else device

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU); nothing for one process."""
        if self.distributed and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank, world_size=self.world_size)

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


class Objective(nn.Module):
    """``ASTAR.loss`` as a module's ``forward``, the form DistributedDataParallel wraps."""

    def __init__(self, model: ASTAR) -> None:
        super().__init__()
        self.model = model

    def forward(self, videos: VideoBatch, tokens: Tensor, caption_videos: Tensor | None = None) -> Tensor:
        return self.model.loss(videos, tokens, caption_videos)


def sum_over_processes(values: Tensor) -> Tensor:
    """``values`` summed over every process (itself without a process group)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
    return values


def word_mean(loss: Tensor, tokens: Tensor, pad_id: int) -> Tensor:
    """This process's per-word mean ``loss`` of (B, T) ``tokens``, weighted so that DDP's
    average over processes is the per-word mean of the global batch (module note)."""
    if not (dist.is_available() and dist.is_initialized()):
        return loss
    words = (tokens != pad_id).sum().to(loss.dtype)
    return loss * words * dist.get_world_size() / sum_over_processes(words)
