"""Memory bounded by what a video holds at once (issue 21, item 19): a long video's extraction peaks where
one pass over a tile of it does, since every layer streams to the store and nothing in the heap outlives a pass."""
import subprocess
import sys

import numpy as np
import pytest

from astar.extract.options import MAX_FRAMES_PER_PASS
from astar.pipelines.synthetic import write_video

PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_mb(video, out) -> float:
    """Max RSS (MB) of ``astar-extract video --out out``, in a fresh process of its own."""
    command = [sys.executable, "-m", "astar.extract.cli", str(video), "--out", str(out), "--device", "cpu", "-q"]
    result = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_a_video_of_several_tiles_peaks_as_one_tile_does(tmp_path):
    rng = np.random.default_rng(0)
    one, three = (write_video(tmp_path / f"{frames}.mp4", rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8), fps=2)
                  for frames in (MAX_FRAMES_PER_PASS, 480))  # one pass; three (of 208, 256 and 208 frames)
    single, tiled = peak_mb(one, tmp_path / "one.zarr"), peak_mb(three, tmp_path / "three.zarr")
    assert tiled < 1.1 * single, (single, tiled)  # a heap that kept freed blocks peaked 1.1-1.6x one pass
