"""Memory bounded by what a video holds at once (issue 21, item 19): a long video's extraction peaks where
one pass over a tile of it does, since every layer streams to the store and nothing in the heap outlives a pass."""
import subprocess
import sys

import numpy as np
import pytest

from astar.extract.options import MAX_FRAMES_PER_PASS
from astar.extract.preprocessing import CROP_SIZE
from astar.extract.writebehind import WRITE_BEHIND_BYTES
from astar.pipelines.synthetic import write_video

FRAME_BYTES = CROP_SIZE * CROP_SIZE * 3
"""A decoded frame: RGB uint8 at the crop size, held for the whole video."""
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
    # What the longer run may add: a full write-behind queue, its decoded frames and 64 MB of slack
    # (measured: 160 MB). Whole-video buffers added 0.61 MB per sampled frame, and a heap that kept
    # freed blocks 0.3-1.4 GB on a 5-minute video.
    allowed = WRITE_BEHIND_BYTES / 2**20 + 480 * FRAME_BYTES / 2**20 + 64
    assert tiled - single < allowed, (single, tiled, allowed)
