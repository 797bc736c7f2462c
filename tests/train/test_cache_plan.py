"""Which read path ``--feature-cache`` gives, and the one line that says why."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from astar.train.data.cache_plan import Budget, available_host_memory, gib, host_budget, plan_cache
from astar.train.errors import TrainingError
from astar.train.options import HOST_MEMORY_SHARE

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)
GPU_ROOM, HOST_ROOM = Budget(8 << 30, "50% of 16.0 GiB free on cuda:0"), Budget(4 << 30, "50% of 8.0 GiB available RAM")


def test_auto_takes_the_gpu_when_the_features_fit_its_budget():
    plan = plan_cache("auto", 6 << 30, CUDA, GPU_ROOM, HOST_ROOM)
    assert (plan.mode, plan.device) == ("device", CUDA)
    assert plan.line == ("feature cache: device (auto): 6.0 GiB of features fit the device budget of 8.0 GiB "
                         "(50% of 16.0 GiB free on cuda:0)")


def test_auto_takes_host_memory_when_the_gpu_is_too_small_or_absent_and_says_why():
    plan = plan_cache("auto", 3 << 30, CUDA, Budget(1 << 30, "50% of 2.0 GiB free on cuda:0"), HOST_ROOM)
    assert (plan.mode, plan.device) == ("host", CPU)
    assert "3.0 GiB of features fit the host budget of 4.0 GiB" in plan.line
    assert plan.line.endswith("; 3.0 GiB of features exceed the device budget of 1.0 GiB (50% of 2.0 GiB free on cuda:0)")
    assert plan_cache("auto", 3 << 30, CPU, None, HOST_ROOM).line.endswith("; training on cpu, not CUDA")


def test_auto_streams_what_fits_nowhere():
    plan = plan_cache("auto", 20 << 30, CUDA, GPU_ROOM, HOST_ROOM)
    assert (plan.mode, plan.device) == ("none", None)
    assert plan.line == ("feature cache: none (auto, streaming from the store): 20.0 GiB of features exceed the device "
                         "budget of 8.0 GiB (50% of 16.0 GiB free on cuda:0); 20.0 GiB of features exceed the host budget "
                         "of 4.0 GiB (50% of 8.0 GiB available RAM)")


def test_a_mode_asked_for_by_name_is_taken_or_refused_in_one_line():
    assert plan_cache("host", 3 << 30, CUDA, GPU_ROOM, HOST_ROOM).mode == "host"
    assert plan_cache("none", 0, CUDA, GPU_ROOM, HOST_ROOM).device is None
    with pytest.raises(TrainingError, match="^--feature-cache device: training on cpu, not CUDA; use --feature-cache auto or none$"):
        plan_cache("device", 1 << 20, CPU, None, HOST_ROOM)
    with pytest.raises(TrainingError, match=r"^--feature-cache host: 5\.0 GiB of features exceed the host budget of 4\.0 GiB"):
        plan_cache("host", 5 << 30, CPU, None, HOST_ROOM)


def test_available_host_memory_is_meminfo_within_the_cgroup_limit(tmp_path: Path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16777216 kB\nMemAvailable:    8388608 kB\n")
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    unlimited = ((limit, usage),)
    limit.write_text("max\n")
    usage.write_text(str(1 << 30))
    assert available_host_memory(meminfo, unlimited) == 8 << 30
    limit.write_text(str(4 << 30))
    assert available_host_memory(meminfo, unlimited) == 3 << 30
    assert available_host_memory(tmp_path / "absent", unlimited) == 0


def test_the_host_budget_is_a_share_of_the_available_memory_within_shared_memory_split_among_processes(tmp_path: Path):
    assert host_budget(1 << 20, tmp_path) == Budget(int((1 << 20) * HOST_MEMORY_SHARE), "50% of 1.0 MiB available RAM")
    assert host_budget(1 << 20, tmp_path, processes=4) == Budget(int((1 << 20) * HOST_MEMORY_SHARE) // 4,
                                                                 "50% of 1.0 MiB available RAM among 4 processes")
    capped = host_budget(1 << 62, tmp_path)
    assert capped.size < (1 << 62) * HOST_MEMORY_SHARE and capped.source.endswith(f"free in {tmp_path} (Docker: raise --shm-size)")


def test_sizes_read_in_binary_units():
    assert (gib(3 << 29), gib(64 << 20)) == ("1.5 GiB", "64.0 MiB")
