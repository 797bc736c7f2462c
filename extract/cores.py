"""How many CPU cores this process may really use.

``os.cpu_count()`` is the host's count. A scheduler narrows it two ways: CPU affinity
(SLURM, ``taskset``), which ``sched_getaffinity`` sees, and a cgroup CPU quota (Docker
``--cpus``, Kubernetes limits, CI runners), which nothing in the standard library sees.
torch sizes its intra-op thread pool from the host, so on a 64-core host with a 2-CPU
quota every process would run 32 threads on 2 cores' worth of time; each of our decoder
children and loader workers multiplies that.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def cgroup_quota_cores(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> int | None:
    """The CPU quota of this process's cgroup in whole cores (rounded up), or None when unlimited or unknown."""
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        if v1[0].is_file() and v1[1].is_file():
            quota, period = int(v1[0].read_text()), int(v1[1].read_text())
            return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        return None
    return None


def machine_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota_cores()
    return min(cores, quota) if quota else cores
