"""Cores a process may use: affinity capped by a cgroup quota, read from real cgroup files' formats."""
import os

from astar.extract.cores import cgroup_quota_cores, machine_cores


def test_a_cgroup_v2_quota_rounds_up_to_whole_cores_and_max_means_unlimited(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    missing = (tmp_path / "none", tmp_path / "none")
    cpu_max.write_text("150000 100000\n")
    assert cgroup_quota_cores(cpu_max, missing) == 2
    cpu_max.write_text("max 100000\n")
    assert cgroup_quota_cores(cpu_max, missing) is None


def test_a_cgroup_v1_quota_is_read_and_minus_one_means_unlimited(tmp_path):
    quota, period = tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us"
    period.write_text("100000\n")
    quota.write_text("400000\n")
    assert cgroup_quota_cores(tmp_path / "absent", (quota, period)) == 4
    quota.write_text("-1\n")
    assert cgroup_quota_cores(tmp_path / "absent", (quota, period)) is None


def test_this_process_never_gets_more_cores_than_its_affinity_allows():
    assert 1 <= machine_cores() <= len(os.sched_getaffinity(0))
