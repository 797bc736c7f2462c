"""The streaming write path: tiles go to the store as they finish, through a writer thread, and only a whole video gets a marker."""
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from astar.extract import ExtractionConfig, Extractor, StoreError, collect_inputs, extract_videos, open_store
from astar.extract.chunks import ChunkRuns
from astar.extract.store.ids import video_key
from astar.extract.store.writer import StoreWriter
from astar.extract.writebehind import WriteBehind
from tests.videos import write_video


def test_chunk_runs_cut_steps_arriving_in_any_sizes_into_whole_chunks_in_order():
    steps = np.arange(100)
    runs, written = ChunkRuns(length=100, chunk=16), []
    for first, last in ((0, 5), (5, 40), (40, 41), (41, 64), (64, 100)):
        run = runs.add(steps[first:last])
        if run is not None:
            written.append(run)
    starts = [first for first, _ in written]
    assert all(first % 16 == 0 for first in starts) and starts == sorted(starts)
    assert all((first + len(run)) % 16 == 0 for first, run in written[:-1])
    assert np.array_equal(np.concatenate([run for _, run in written]), steps)


def test_a_failing_write_is_raised_in_the_submitting_thread_and_drops_the_writes_after_it():
    ran, queued = [], threading.Event()

    def first():
        queued.wait()
        ran.append(1)

    def refused():
        raise OSError("disk full")

    with WriteBehind() as queue:
        for job in (first, refused, lambda: ran.append(3)):
            queue.submit(job, nbytes=8)
        queued.set()
        with pytest.raises(OSError, match="disk full"):
            queue.drain()
        with pytest.raises(OSError, match="disk full"):
            queue.submit(lambda: ran.append(4))
    assert ran == [1]


def test_the_network_thread_waits_while_the_queue_holds_its_bound_in_bytes():
    release, held = threading.Event(), []
    with WriteBehind(limit_bytes=10) as queue:
        queue.submit(release.wait, nbytes=8)
        waiting = threading.Thread(target=lambda: held.append(queue.submit(lambda: "second", nbytes=8)))
        waiting.start()
        waiting.join(timeout=0.2)
        assert waiting.is_alive()  # 8 + 8 bytes exceed the bound until the first write is done
        release.set()
        waiting.join()
        assert queue.drain() == [True, "second"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A 32 s clip at 2 fps: 64 frames, so a 112-frame pass takes four 16-frame tiles."""
    folder = tmp_path_factory.mktemp("long")
    write_video(folder / "long.mp4", np.random.default_rng(5).integers(0, 255, (64, 32, 32, 3), dtype=np.uint8), fps=2)
    return folder


@pytest.fixture(scope="module")
def interruptible_clip(tmp_path_factory):
    """A 320 s clip at 2 fps: 640 frames, forty 16-frame tiles in 112-frame passes. With four
    tiles (``long_clip``) a writer thread that lagged let the last tiles finish before the
    signal landed, and the run exited 0; forty leave the signal far from the end."""
    folder = tmp_path_factory.mktemp("interruptible")
    frames = np.random.default_rng(5).integers(0, 255, (640, 32, 32, 3), dtype=np.uint8)
    write_video(folder / "long.mp4", frames, fps=2)
    return folder


@pytest.mark.slow
def test_a_video_streamed_in_several_tiles_is_stored_as_one_pass_computes_it(long_clip, tmp_path, extractor):
    tiled = Extractor.build(ExtractionConfig(device="cpu", max_frames_per_pass=112))
    extract_videos(collect_inputs([str(long_clip)]), str(tmp_path / "whole.zarr"), extractor=extractor, progress=False)
    extract_videos(collect_inputs([str(long_clip)]), str(tmp_path / "tiled.zarr"), extractor=tiled, progress=False)
    whole, streamed = open_store(str(tmp_path / "whole.zarr")), open_store(str(tmp_path / "tiled.zarr"))
    assert streamed.padded_frames("long") == 64
    for name in whole.layer_names:  # pool3's 64-frame chunk is completed by the fourth tile
        assert whole.read("long", name).tobytes() == streamed.read("long", name).tobytes(), name
    for name in ("fc7", "fc7_windows"):
        np.testing.assert_allclose(whole.read("long", name), streamed.read("long", name), rtol=2**-10, atol=2**-14)


def test_a_write_refused_in_the_writer_thread_names_the_store_and_video_and_leaves_no_marker(video_folder, tmp_path, extractor):
    out = tmp_path / "feats.zarr"
    StoreWriter(str(out), extractor.identity())
    chunk = out / "videos" / video_key("a") / "pool2" / "c" / "0" / "0" / "0" / "0"
    chunk.mkdir(parents=True)  # a folder where the first chunk's file must go: the file system refuses it
    inputs = [video for video in collect_inputs([str(video_folder)]) if video.video_id == "a"]
    with pytest.raises(StoreError, match=rf"^{out}: writing 'a' failed \(.*Is a directory"):
        extract_videos(inputs, str(out), extractor=extractor, progress=False)
    assert not (out / "manifest" / video_key("a")).exists()
    chunk.rmdir()
    rerun = extract_videos(inputs, str(out), extractor=extractor, progress=False)
    assert rerun.line().startswith("1 done, 0 skipped, 0 failed") and open_store(str(out)).video_ids == ["a"]


@pytest.mark.slow
def test_interrupting_a_run_leaves_no_marker_for_the_video_it_was_writing(interruptible_clip, tmp_path):
    out = tmp_path / "feats.zarr"
    command = [sys.executable, "-m", "astar.extract.cli", str(interruptible_clip), "--out", str(out), "--device", "cpu",
               "--max-frames-per-pass", "112", "-q"]
    # As a foreground command gets it: a suite started in the background (``make test &``) ignores
    # SIGINT, the child inherits that, and Python then installs no KeyboardInterrupt handler.
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first_chunks = out / "videos" / video_key("long") / "pool2" / "c"
    while not first_chunks.exists() and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)  # after its first tile, long before its last
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert open_store(str(out)).video_ids == [] and not (out / "manifest" / video_key("long")).exists()
