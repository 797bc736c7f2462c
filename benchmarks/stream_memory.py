"""Peak memory of extracting one long video, and how fast the writer thread compresses.

Extraction streams each tile's maps to the store through a writer thread, so its peak
memory is one tile's pass, the write-behind queue (``WRITE_BEHIND_BYTES``) and the
decoded uint8 frames (37.6 kB per sampled frame), whatever the video's length. This
benchmark generates low-resolution videos (32×32 noise at 2 fps, ``astar.pipelines.synthetic``)
of each ``--minutes`` length, and a baseline exactly one tile long (``MAX_FRAMES_PER_PASS``
sampled frames: one pass, the computation alone), extracts each ``--repeats`` times with
``astar-extract`` (random-init C3D, fp32 on the CPU, default tiling) in a subprocess of its
own, and prints each run's maximum resident set size and each length's median (one run's
peak depends on how the heap's freed blocks happen to fit the next pass, by up to 1 GB),
the ratio of the longest's median to the shortest's (target: 60 min < 1.3× 5 min) and to
one tile's, and the slope in MB per sampled frame.

Then it writes the shortest video's stored layers (real maps) again, into memory, with the
store's codecs and chunks, once with zarr's thread pool at 1 thread and once at 2, and
prints the compression throughput of each (target: 2 threads ≥ 1.8× one, on 2 free cores).

    .venv/bin/python benchmarks/stream_memory.py --minutes 5 60 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from astar.extract.options import MAX_FRAMES_PER_PASS

SIDE = 32
"""Source frames are SIDE × SIDE: decoding costs nothing next to C3D."""


def make_video(path: Path, minutes: float) -> Path:
    """A noise video of ``minutes`` at 2 fps, every frame a sampled one."""
    from astar.pipelines.synthetic import write_video

    frames = np.random.default_rng(0).integers(0, 255, (round(minutes * 60 * 2), SIDE, SIDE, 3), dtype=np.uint8)
    return write_video(path, frames, fps=2)


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command`` in a subprocess of its own; its maximum resident set size (MB) and wall time (s)."""
    started = time.perf_counter()
    if Path("/usr/bin/time").exists():
        result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(result.stderr[-2000:])
        kilobytes = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    else:  # ru_maxrss of a fresh child of a fresh interpreter is this command's alone
        probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        result = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
        kilobytes = int(result.stdout.split()[-1])
    return kilobytes / 1024, time.perf_counter() - started


ONE_TILE_MINUTES = MAX_FRAMES_PER_PASS / 2 / 60
"""A video of exactly one tile: MAX_FRAMES_PER_PASS sampled frames at 2 fps."""


def median_peak(folder: Path, minutes: float, repeats: int) -> tuple[float, int, float, str]:
    """Extract a generated video of ``minutes`` ``repeats`` times, each into a fresh store, printing each run's
    max RSS; the length, its sampled frames, the median max RSS (MB) and the last run's store."""
    video = make_video(folder / f"{minutes:g}min.mp4", minutes)
    frames = round(minutes * 60 * 2)
    runs = []
    for repeat in range(repeats):
        store = str(folder / f"{minutes:g}min-{repeat}.zarr")
        command = [sys.executable, "-m", "astar.extract.cli", str(video), "--out", store, "--device", "cpu", "-q"]
        runs.append(peak_rss_mb(command))
    peaks = [peak for peak, _ in runs]
    label = "one tile" if minutes == ONE_TILE_MINUTES else f"{minutes:g} min"
    print(f"{label} ({frames} sampled frames): max RSS median {statistics.median(peaks):.0f} MB over {repeats} runs "
          f"({', '.join(f'{peak:.0f}' for peak in peaks)}), {statistics.median(s for _, s in runs):.0f} s each", flush=True)
    return minutes, frames, statistics.median(peaks), store


def compression_seconds(store: str, repeats: int = 3) -> tuple[float, float, int]:
    """Best wall time to write every stored layer of the store's one video into memory with its codecs and chunks,
    the CPU time of that write (every thread of the process), and the bytes written."""
    import zarr

    from astar.extract import open_store
    from astar.extract.store.writer import CHECKSUM, COMPRESSOR

    features = open_store(store)
    video = features.video_ids[0]
    layers = {name: (features.read(video, name), features.array(video, name).chunks) for name in features.layer_names}
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        root = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
        arrays = {name: root.create_array(name, shape=maps.shape, dtype=maps.dtype, chunks=chunks,
                                          compressors=(COMPRESSOR, CHECKSUM), fill_value=float("nan"))
                  for name, (maps, chunks) in layers.items()}
        started, cpu_started = time.perf_counter(), time.process_time()
        for name, (maps, _) in layers.items():
            arrays[name][...] = maps
        best = min(best, (time.perf_counter() - started, time.process_time() - cpu_started))
    return (*best, sum(maps.nbytes for maps, _ in layers.values()))


def throughput(store: str, threads: int) -> tuple[float, float]:
    """Compression throughput (MB of float16 maps per second) with zarr's thread pool at ``threads``, in a fresh
    process, and the cores it kept busy (CPU time over wall time: below ``threads`` when other work shares the cores)."""
    environment = {**os.environ, "ZARR_THREADING__MAX_WORKERS": str(threads)}
    result = subprocess.run([sys.executable, __file__, "--compress", store], capture_output=True, text=True, env=environment, check=True)
    seconds, cpu_seconds, nbytes = result.stdout.split()
    return int(nbytes) / float(seconds) / 1e6, float(cpu_seconds) / float(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 60], help="video lengths, shortest first")
    parser.add_argument("--repeats", type=int, default=3, help="runs per length; each length reports their median")
    parser.add_argument("--compress", help=argparse.SUPPRESS)  # the child of ``throughput``
    args = parser.parse_args()
    if args.compress:
        print(*compression_seconds(args.compress))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        peaks = [median_peak(Path(tmp), minutes, args.repeats) for minutes in [ONE_TILE_MINUTES, *args.minutes]]
        (_, _, tile_peak, _), (short, short_frames, short_peak, short_store), (long, long_frames, long_peak, _) = peaks[0], peaks[1], peaks[-1]
        print(f"{long:g} min / one tile max RSS: {long_peak / tile_peak:.2f}x (the pass's own memory and what the run adds)")
        if len(peaks) > 2:
            slope = (long_peak - short_peak) / (long_frames - short_frames)
            print(f"{long:g} min / {short:g} min max RSS: {long_peak / short_peak:.2f}x (target < 1.3x); "
                  f"slope {slope:.3f} MB per sampled frame")
        (one, one_busy), (two, two_busy) = throughput(short_store, 1), throughput(short_store, 2)
        print(f"compression of {short:g} min's maps: {one:.0f} MB/s on 1 thread ({one_busy:.2f} cores busy), "
              f"{two:.0f} MB/s on 2 ({two_busy:.2f} cores busy): {two / one:.2f}x (target >= 1.8x with 2 free cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
