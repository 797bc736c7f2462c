"""Cluster benchmark: how Dask extraction scales, what it costs against an in-process run, scheduler overhead.

On N generated clips (10 s, 160×120, 25 fps; ``--small``: 4 clips of 4 s, a smoke run) it prints

1. videos/s of 2 workers × 1 thread vs 1 worker × 1 thread, C3D on one torch thread per
   task in both (target ≥ 1.7× on 2 cores);
2. videos/s of that 2-worker cluster vs an in-process run using both cores (torch on every
   core, decoding in its child process) (target ≥ 1.0×);
3. scheduler overhead per video: the idle gap between consecutive tasks on a worker and a
   no-op task's round trip, each as a share of the mean task time (target < 5 %).

Throughput is the marginal rate ``(N − 1) / (T(N) − T(1))`` of a timed run of N videos and
one of 1 video, so fixed per-run costs (the in-process decoder child's start, opening the
store) cancel; clusters are warm (each worker has loaded C3D and started its decoder).
Cold start-up is printed separately. Task times come from Dask's task stream (compute
start and stop inside the workers). Run: ``.venv/bin/python benchmarks/cluster.py [--small]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from distributed import Client, get_task_stream

from astar.extract import (
    ExtractionConfig, Extractor, RunSummary, VideoInput, collect_inputs, dask_client, extract_videos,
)
from astar.pipelines.synthetic import SyntheticClip, render_clip, write_video

SETTINGS = ExtractionConfig(device="cpu", precision="fp32")


def write_clips(folder: Path, count: int, seconds: float) -> list[VideoInput]:
    """``count`` clips of a textured background with a moving circle, 160×120 at 25 fps."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        clip = SyntheticClip(
            video_id=f"clip{index:03d}", filename=f"clip{index:03d}.mp4", captions=[], split="test", shape="circle",
            colour="red", size="small", direction="right", count=1, background="textured", fps=25,
            n_frames=round(25 * seconds), width=160, height=120,
        )
        write_video(folder / clip.filename, render_clip(clip, rng), fps=clip.fps)
    return collect_inputs([str(folder)])


def marginal_rate(run: Callable[[list[VideoInput], str], RunSummary], videos: list[VideoInput], scratch: Path) -> tuple[float, float]:
    """(videos/s of the N − 1 videos beyond the first, wall seconds of the N-video run); each run gets a fresh store."""
    timings = []
    for name, batch in (("one", videos[:1]), ("all", videos)):
        start = time.perf_counter()
        summary = run(batch, str(scratch / f"{name}-{time.perf_counter_ns()}.zarr"))
        timings.append(time.perf_counter() - start)
        assert summary.count("done") == len(batch), summary.table()
    return (len(videos) - 1) / (timings[1] - timings[0]), timings[1]


def warm_up(client: Client, videos: list[VideoInput], scratch: Path, torch_threads: int, extractor: Extractor) -> None:
    """Every worker loads C3D and starts its decoder on throwaway work (two tasks per worker)."""
    workers = len(client.scheduler_info()["workers"])
    extract_videos(videos[: 2 * workers], str(scratch / "warm-up.zarr"), SETTINGS, client=client, progress=False,
                    extractor=extractor, torch_threads=torch_threads)


def _noop() -> None:
    return None


def round_trip_seconds(client: Client, repeats: int = 30) -> float:
    """Median wall time of submitting a no-op task and receiving its result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.submit(_noop, pure=False).result()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def task_gaps(stream: list[dict]) -> tuple[list[float], list[float]]:
    """(compute seconds of every task, idle seconds between consecutive tasks on the same worker) from a task stream."""
    by_worker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for task in stream:
        for part in task["startstops"]:
            if part["action"] == "compute":
                by_worker[task["worker"]].append((part["start"], part["stop"]))
    computes, gaps = [], []
    for intervals in by_worker.values():
        intervals.sort()
        computes += [stop - start for start, stop in intervals]
        gaps += [later[0] - earlier[1] for earlier, later in zip(intervals, intervals[1:])]
    return computes, gaps


def cluster_rate(
    workers: int, videos: list[VideoInput], scratch: Path, torch_threads: int, extractor: Extractor
) -> tuple[float, dict]:
    """Warm marginal videos/s of a local cluster, with its start-up time, task times and scheduler overhead.

    ``extractor`` gives the driver the store's identity, so no timed run builds a C3D in this process.
    """
    started = time.perf_counter()
    with dask_client(workers=workers) as client:
        warm_up(client, videos, scratch, torch_threads, extractor)
        startup = time.perf_counter() - started

        def run(batch: list[VideoInput], out: str) -> RunSummary:
            return extract_videos(batch, out, SETTINGS, client=client, progress=False, extractor=extractor,
                                   torch_threads=torch_threads)

        with get_task_stream(client) as stream:
            rate, wall = marginal_rate(run, videos, scratch)
        computes, gaps = task_gaps(stream.data[1:])  # the 1-video run's task is first
        details = {"startup": startup, "wall": wall, "computes": computes, "gaps": gaps, "round_trip": round_trip_seconds(client)}
    return rate, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4 clips of 4 s instead of 16 of 10 s (a smoke run)")
    args = parser.parse_args()
    count, seconds = (4, 4.0) if args.small else (16, 10.0)
    cores = torch.get_num_threads()
    print(f"{count} clips of {seconds:g} s (160×120, 25 fps → {round(2 * seconds)} frames at 2 fps); torch {torch.__version__}, {cores} threads")

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        videos = write_clips(scratch / "videos", count, seconds)

        start = time.perf_counter()
        extractor = Extractor.build(SETTINGS)
        build = time.perf_counter() - start
        in_process, in_process_wall = marginal_rate(
            lambda batch, out: extract_videos(batch, out, SETTINGS, progress=False, extractor=extractor), videos, scratch
        )
        one, one_details = cluster_rate(1, videos, scratch, torch_threads=1, extractor=extractor)
        two, two_details = cluster_rate(2, videos, scratch, torch_threads=1, extractor=extractor)

    print(f"in-process ({cores} torch threads): {in_process:.3f} videos/s (N-video run {in_process_wall:.1f} s, model build {build:.1f} s)")
    for workers, rate, details in ((1, one, one_details), (2, two, two_details)):
        print(
            f"{workers} worker{'s' * (workers > 1)} × 1 thread: {rate:.3f} videos/s (N-video run {details['wall']:.1f} s, "
            f"mean task {statistics.mean(details['computes']):.2f} s; cluster start + warm-up {details['startup']:.1f} s)"
        )
    print(f"scaling, 2 workers vs 1 worker: {two / one:.2f}× (target ≥ 1.7×)")
    print(f"2-worker cluster vs in-process on both cores: {two / in_process:.2f}× (target ≥ 1.0×)")
    task = statistics.mean(two_details["computes"])
    gap = statistics.mean(two_details["gaps"]) if two_details["gaps"] else float("nan")
    print(
        f"scheduler overhead per video: {1e3 * gap:.1f} ms idle between tasks on a worker = {gap / task:.2%} of the "
        f"mean task ({task:.2f} s); no-op task round trip {1e3 * two_details['round_trip']:.1f} ms = "
        f"{two_details['round_trip'] / task:.2%} (target < 5 %)"
    )
    busy = sum(two_details["computes"])
    idle = 2 * two_details["wall"] - busy
    print(
        f"all idle worker time in the 2-worker N-video run (scheduling, run start and end, the last task alone): "
        f"{idle / count:.2f} s per video = {idle / busy:.1%} of task time"
    )


if __name__ == "__main__":
    main()
