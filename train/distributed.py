"""Training on several processes with torch.distributed: DistributedDataParallel under torchrun.

``torchrun --nproc_per_node N -m astar.train.cli …`` starts N processes and gives each
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``Processes.from_environment`` reads them
(one process without torchrun). The pieces that keep N processes equal to one with
the same global batch:

- Batches: ``BucketBatchSampler(rank=…, world_size=…)`` gives each process its share of
  every global batch, whole groups of a video's captions (``data/loader.py``).
- Loss: DDP averages the processes' gradients, while one process averages over the
  global batch; ``global_mean`` rescales each process's mean by its share of the global
  count (words for eq. 3, sampled captions for SCST), so the average is the global mean.
- Model: DDP wraps the objectives as modules (``astar.train.objectives.modules``:
  ``Objective``, ``SelfCritical``); their ``forward`` is the step's loss, so DDP's
  gradient hooks see it (a DDP model must be called through ``forward``).

Everything else (clipping, Adam) then sees the gradients one process would. The trainer
keeps the processes in step (``astar.train.trainer``): rank 0 alone prepares the run
directory and hands its decisions to the others (``from_main``), writes checkpoints,
logs and TensorBoard, and scores validation captions the other processes decoded
their share of (``gather_to_main``); every process stops at the same step
(``mean_and_any``), and ``last.pt`` holds every process's RNG state (``gather_to_main``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from astar.extract.console import say


Result = TypeVar("Result")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes: ``rank`` of ``world_size``, ``local_rank`` of the
    ``local_world_size`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_environment(cls) -> Processes:
        """What torchrun set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``); one process when it did not."""
        return cls(*(int(os.environ.get(name, default)) for name, default in
                     (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", 1))))

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

    def say(self, message: str) -> None:
        """``say`` on rank 0 only: one line per run, however many processes train it."""
        if self.is_main:
            say(message)

    def wrap(self, objective: nn.Module, device: torch.device) -> nn.Module:
        """``objective`` under DistributedDataParallel (on this process's GPU on CUDA); itself for one process."""
        if not self.distributed:
            return objective
        return nn.parallel.DistributedDataParallel(objective, device_ids=[device] if device.type == "cuda" else None)


def _joined() -> bool:
    return dist.is_available() and dist.is_initialized()


def sum_over_processes(values: Tensor) -> Tensor:
    """``values`` summed over every process (itself without a process group)."""
    if _joined():
        values = values.clone()
        dist.all_reduce(values)
    return values


def global_mean(local_mean: Tensor, count: int | Tensor) -> Tensor:
    """This process's mean over its ``count`` terms, weighted so that DDP's average over
    processes is the mean over every process's terms (module note); itself for one process."""
    if not _joined():
        return local_mean
    count = torch.as_tensor(count, dtype=local_mean.dtype, device=local_mean.device)
    return local_mean * count * dist.get_world_size() / sum_over_processes(count)


def word_mean(loss: Tensor, tokens: Tensor, pad_id: int) -> Tensor:
    """``global_mean`` of a per-word mean ``loss`` of (B, T) ``tokens``: the global batch's per-word mean (eq. 3)."""
    return global_mean(loss, (tokens != pad_id).sum())


def mean_and_any(values: tuple[float, ...], flag: bool) -> tuple[tuple[float, ...], bool]:
    """Each of ``values`` averaged over the processes, and whether ``flag`` is set on any: one
    all-reduce a step, so every process logs the same figures and stops at the same step."""
    if not _joined():
        return values, flag
    totals = sum_over_processes(torch.tensor([*values, float(flag)], dtype=torch.float64)).tolist()
    return tuple(total / dist.get_world_size() for total in totals[:-1]), totals[-1] > 0


def gather_to_main(value: Any) -> list[Any] | None:
    """Every process's ``value`` (picklable) on rank 0, in rank order; None on the others. ``[value]`` alone."""
    if not _joined():
        return [value]
    values = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, values, dst=0)
    return values


def from_main(work: Callable[[], Result], error_type: type[Exception]) -> Result:
    """``work()`` run on rank 0 alone, its result handed to every process.

    An ``error_type`` raised on rank 0 is re-raised there and raised on the others as a
    quiet ``error_type`` of the same message, so no process waits forever; one process
    just runs ``work()``.
    """
    if not _joined():
        return work()
    message: list[Any] = [None, None]
    if dist.get_rank() == 0:
        try:
            message[0] = work()
        except error_type as error:
            message[1] = str(error)
            dist.broadcast_object_list(message, src=0)
            raise
    dist.broadcast_object_list(message, src=0)
    if message[1] is not None:
        raise error_type(message[1])
    return message[0]
