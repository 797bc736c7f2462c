"""keep_freed_memory: a freed activation-sized buffer is reused without page faults."""
import platform
import subprocess
import sys

import pytest

FAULTS = """
import resource, sys, torch
from astar.extract.memory import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(5):  # 256 MB, allocated, touched and freed: the heap settles around it (torch's aligned
    torch.ones(64 * 2**20).sum()  # allocations outgrow a freed block by a few bytes until neighbours merge)
rounds = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.ones(64 * 2**20).sum()
    rounds.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(took, min(rounds))
"""


def page_faults(mode: str) -> tuple[str, int]:
    """(whether the setting took, the fewest minor page faults of three rounds of three 256-MB allocations, once settled)."""
    took, faults = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout.split()
    return took, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_large_buffers_are_reused_instead_of_faulted_back_in():
    _, default = page_faults("default")
    assert default > 3 * 256 * 2**20 // 4096 // 2  # glibc unmaps each freed 256-MB block: ~65 k faults per reuse
    took, kept = page_faults("keep")
    assert took == "True" and kept < default // 20
