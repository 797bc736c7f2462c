"""``--feature-cache``: which of the device, host and streaming read paths a run takes, and why, in one line.

``device`` (a ``FeatureCache`` on the training GPU) is fastest: batches are gathered where
the model runs. ``host`` (one copy in shared RAM) still decompresses every video once.
``none`` streams from the store through each worker's LRU. ``auto`` takes the first of
those whose budget the features fit: a share of the GPU's free memory
(``DEVICE_MEMORY_SHARE``), then a share of the host's available memory
(``HOST_MEMORY_SHARE``), no more than the shared-memory file system (/dev/shm) holds.
A mode asked for by name that cannot be had is a ``TrainingError`` before training
starts. Every mode gives the same batches, so a run's results do not depend on it.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import TrainingError
from ..options import DEVICE_MEMORY_SHARE, HOST_MEMORY_SHARE
from .feature_cache import cache_bytes
from .loader import FeatureReader

MEMINFO = Path("/proc/meminfo")
CGROUP_MEMORY = ((Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),  # v2
                 (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")))
SHARED_MEMORY = Path("/dev/shm")
"""Where torch keeps shared CPU tensors on Linux; containers often mount it small (Docker: 64 MiB)."""


def gib(size: int) -> str:
    """``size`` bytes in words: "1.5 GiB", "64.0 MiB"."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


@dataclass(frozen=True)
class Budget:
    """The most bytes a cache may take in one place, and what set it ("50% of 12.0 GiB free on cuda:0")."""

    size: int
    source: str


def device_budget(device: torch.device) -> Budget | None:
    """``DEVICE_MEMORY_SHARE`` of ``device``'s free memory; None when it is no CUDA device."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return Budget(int(free * DEVICE_MEMORY_SHARE), f"{DEVICE_MEMORY_SHARE:.0%} of {gib(free)} free on {device}")


def available_host_memory(meminfo: Path = MEMINFO, cgroups: tuple[tuple[Path, Path], ...] = CGROUP_MEMORY) -> int:
    """Bytes the host can still give this process: MemAvailable, within its cgroup's limit (v2, else v1: the
    (limit, usage) files of ``cgroups``); 0 where unknown."""
    try:
        available = next(int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return 0
    for limit, usage in cgroups:
        try:
            ceiling = limit.read_text().strip()
            if ceiling != "max":
                available = min(available, int(ceiling) - int(usage.read_text()))
            break
        except (OSError, ValueError):
            continue
    return max(available, 0)


def host_budget(available: int, shared: Path = SHARED_MEMORY, processes: int = 1) -> Budget:
    """``HOST_MEMORY_SHARE`` of ``available`` bytes (``available_host_memory``), no more than ``shared`` has free,
    split evenly among the ``processes`` on this machine that each cache for themselves (torchrun's)."""
    among = f" among {processes} processes" if processes > 1 else ""
    budget = Budget(int(available * HOST_MEMORY_SHARE) // processes,
                    f"{HOST_MEMORY_SHARE:.0%} of {gib(available)} available RAM{among}")
    if shared.is_dir():
        free = shutil.disk_usage(shared).free
        if free // processes < budget.size:
            budget = Budget(free // processes, f"{gib(free)} free in {shared}{among} (Docker: raise --shm-size)")
    return budget


@dataclass(frozen=True)
class CachePlan:
    """Where a run's features are read from: ``mode`` ``device``, ``host`` or ``none``; ``device`` the
    cache's (None: streaming); ``line`` the one line the run prints about it."""

    mode: str
    device: torch.device | None
    line: str


def plan_cache(asked: str, needed: int, training: torch.device, on_device: Budget | None, on_host: Budget) -> CachePlan:
    """The read path for ``needed`` bytes of features (``feature_cache.cache_bytes``), ``asked`` as ``--feature-cache``.

    Args:
        asked: ``auto``, ``device``, ``host`` or ``none``.
        training: the model's device.
        on_device: what a cache on ``training`` may take (``device_budget``); None off CUDA.
        on_host: what a cache in host memory may take (``host_budget``).

    Raises:
        TrainingError: ``device`` without CUDA, or ``device`` or ``host`` over its budget.
    """
    features = f"{gib(needed)} of features"
    if asked == "none":
        return CachePlan("none", None, f"feature cache: none, as asked (streaming {features} from the store)")
    reasons = []
    for mode, budget, where in (("device", on_device, training), ("host", on_host, torch.device("cpu"))):
        if asked not in ("auto", mode):
            continue
        if budget is None:
            reasons.append(f"training on {training}, not CUDA")
        elif needed > budget.size:
            reasons.append(f"{features} exceed the {mode} budget of {gib(budget.size)} ({budget.source})")
        else:
            why = "as asked" if asked == mode else "auto"
            return CachePlan(mode, where, f"feature cache: {mode} ({why}): {features} fit the {mode} budget of "
                                          f"{gib(budget.size)} ({budget.source})" + "".join(f"; {r}" for r in reasons))
    if asked != "auto":
        raise TrainingError(f"--feature-cache {asked}: {reasons[0]}; use --feature-cache auto or none")
    return CachePlan("none", None, f"feature cache: none (auto, streaming from the store): {'; '.join(reasons)}")



def plan_read_path(asked: str, reader: FeatureReader, video_ids: Sequence[str], training: torch.device,
                   processes: int = 1) -> CachePlan:
    """``plan_cache`` for caching what ``reader`` gives of ``video_ids``, against this machine's budgets
    (the host's split among the ``processes`` training on it, each with its own GPU).

    Raises:
        TrainingError: as ``plan_cache``.
    """
    needed = 0 if asked == "none" else cache_bytes(reader, video_ids)
    on_host = host_budget(available_host_memory(), processes=processes)
    return plan_cache(asked, needed, training, device_budget(training), on_host)
