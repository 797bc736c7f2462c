"""The decoder pool: parallel, in order of completion, every video isolated, bounded waiting."""
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from astar.extract import VideoInput, decode_video
from astar.extract.handoff import FRAMES_PREFIX
from astar.extract.pool import DecoderPool, decoders_needed, default_decoders
from astar.extract.preprocessing import PAPER
from tests.videos import write_video


def stalled_input(server, name: str) -> VideoInput:
    """A video on ``server`` (``conftest.StalledServer``): its decode blocks until the decoder is stopped."""
    return VideoInput(name, server.url(name))


def good_input(path, frames: int = 10, level: int = 0) -> VideoInput:
    write_video(path, np.full((frames, 32, 32, 3), level, np.uint8), fps=10)
    return VideoInput(path.stem, str(path))


def test_videos_come_back_in_order_of_completion_while_a_slow_one_decodes(tmp_path, stalled_server):
    videos = [stalled_input(stalled_server, "hangs"), good_input(tmp_path / "good.mp4")]
    with DecoderPool(PAPER, decoders=2, timeout_s=5) as pool:
        order = [(video.video_id, result) for video, result in pool.map(videos)]
    assert [video_id for video_id, _ in order] == ["good", "hangs"]
    assert order[0][1].frames.shape == (2, 112, 112, 3)
    assert "timed out after 5 s" in str(order[1][1])


def test_every_video_is_yielded_once_with_the_frames_an_in_process_decode_gives(tmp_path):
    videos = [good_input(tmp_path / f"v{index}.mp4", frames=5 + 5 * index, level=30 * index) for index in range(5)]
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    videos.insert(2, VideoInput("bad", str(tmp_path / "bad.mp4")))
    with DecoderPool(PAPER, decoders=3) as pool:
        results = {}
        for video, result in pool.map(videos):
            assert video.video_id not in results
            results[video.video_id] = result
    assert set(results) == {video.video_id for video in videos}
    assert "FFmpeg cannot decode it" in str(results.pop("bad"))
    for video in videos:
        if video.video_id in results:
            np.testing.assert_array_equal(results[video.video_id].frames, decode_video(video.source, PAPER).frames)


def memory_mapped(array: np.ndarray) -> bool:
    """Whether ``array``'s memory belongs to an ``mmap`` (through its chain of bases and buffers)."""
    owner = array
    while owner is not None and not isinstance(owner, mmap.mmap):
        owner = owner.obj if isinstance(owner, memoryview) else getattr(owner, "base", None)
    return owner is not None


def test_frames_come_back_through_a_file_that_is_gone_once_they_are_mapped(tmp_path, monkeypatch, stalled_server):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    video = good_input(tmp_path / "v.mp4", frames=20, level=90)
    with DecoderPool(PAPER, decoders=2, timeout_s=3) as pool:
        results = dict((item.video_id, result) for item, result in pool.map([video, stalled_input(stalled_server, "hangs")]))
        left = [path for path in temporary.rglob(f"{FRAMES_PREFIX}*")]
        assert left == []  # the parent deleted the file it mapped, and the abandoned video's
    frames = results["v"].frames
    assert memory_mapped(frames)  # from the file, not unpickled from the pipe
    np.testing.assert_array_equal(frames, decode_video(video.source, PAPER).frames)
    frames[0] = 0  # writable, copy-on-write: the consumer may pad or edit in place
    assert "timed out" in str(results["hangs"])


def test_a_pool_deletes_the_frame_files_a_killed_parent_left_and_no_live_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    orphan, live = tmp_path / f"{FRAMES_PREFIX}{gone}-a.u8", tmp_path / f"{FRAMES_PREFIX}{os.getpid()}-b.u8"
    orphan.write_bytes(b"frames")
    live.write_bytes(b"frames")
    with DecoderPool(PAPER, decoders=1):
        assert not orphan.exists() and live.exists()


def test_where_no_frame_file_can_be_written_the_video_comes_through_the_pipe(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # every open() there fails
    video = good_input(tmp_path / "v.mp4", frames=20, level=90)
    with DecoderPool(PAPER, decoders=1) as pool:
        (_, result), = pool.map([video])
    np.testing.assert_array_equal(result.frames, decode_video(video.source, PAPER).frames)
    assert not memory_mapped(result.frames)
    assert not any(path.name.startswith(FRAMES_PREFIX) for path in tmp_path.rglob("*"))


def test_a_crashing_decoder_costs_its_video_and_the_pool_goes_on(tmp_path, stalled_server):
    videos = [stalled_input(stalled_server, "crashes"), good_input(tmp_path / "good.mp4"), good_input(tmp_path / "after.mp4")]
    with DecoderPool(PAPER, decoders=2, timeout_s=60) as pool:
        results = pool.map(videos)
        first, _ = next(results)
        assert first.video_id == "good"
        for pid in pool.worker_pids:  # the idle child too: the next request must start a fresh one
            os.kill(pid, signal.SIGSEGV)
        while pool.worker_pids:
            time.sleep(0.01)
        rest = {video.video_id: result for video, result in results}
    assert f"killed by signal {int(signal.SIGSEGV)}" in str(rest["crashes"])
    assert rest["after"].frames.shape == (2, 112, 112, 3)


def test_a_finished_decoder_takes_no_new_video_until_its_result_is_taken(tmp_path, stalled_server):
    videos = [good_input(tmp_path / "a.mp4"), good_input(tmp_path / "b.mp4")]
    videos += [stalled_input(stalled_server, name) for name in ("c", "d")]
    with DecoderPool(PAPER, decoders=2, timeout_s=30) as pool:
        results = pool.map(videos)
        next(results)  # a or b; the other is decoded meanwhile and waits in its child
        time.sleep(2.0)
        assert not stalled_server.requested("c") and not stalled_server.requested("d")
        next(results)  # takes the waiting one; the freed decoder starts on c
        deadline = time.monotonic() + 30
        while not stalled_server.requested("c") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stalled_server.requested("c") and not stalled_server.requested("d")
        results.close()


def test_killing_the_forkserver_loses_no_video_and_prints_no_traceback(tmp_path, capfd):
    import multiprocessing.forkserver

    videos = [good_input(tmp_path / f"v{index}.mp4", frames=4 + index) for index in range(6)]
    with DecoderPool(PAPER, decoders=2) as pool:
        results = pool.map(videos)
        done = dict([next(results)])
        os.kill(multiprocessing.forkserver._forkserver._forkserver_pid, signal.SIGKILL)
        done.update(results)
    time.sleep(0.5)  # the children it forked see their pipes close and exit
    assert all(result.frames.shape[0] > 0 for result in done.values()) and len(done) == len(videos)
    assert "Traceback" not in capfd.readouterr().err


def test_a_gpu_machine_gives_every_core_but_one_to_decoding_and_a_cpu_one_decoder():
    assert default_decoders("cuda", cores=16) == 15
    assert default_decoders("cuda", cores=1) == 1
    assert default_decoders("cpu", cores=16) == 1


def test_decoders_needed_covers_the_c3d_rate():
    assert decoders_needed(20_000, 200) == 100
    assert decoders_needed(201, 200) == 2
    with pytest.raises(ValueError, match="at least 1"):
        DecoderPool(PAPER, decoders=0)


def test_threads_share_a_pool_one_video_each_as_a_dask_workers_tasks_do(tmp_path, stalled_server):
    videos = [good_input(tmp_path / f"v{index}.mp4", frames=10 * (index + 1)) for index in range(3)]
    videos.append(stalled_input(stalled_server, "hangs"))
    with DecoderPool(PAPER, decoders=2, timeout_s=4) as pool, ThreadPoolExecutor(4) as threads:
        results = dict(zip([video.video_id for video in videos], threads.map(pool.decode, videos)))
        assert len(pool.worker_pids) <= 2
    assert [len(results[f"v{index}"].frames) for index in range(3)] == [2, 4, 6]
    assert "timed out after 4 s" in str(results["hangs"])
