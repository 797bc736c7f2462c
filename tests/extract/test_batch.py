"""Batches: bad videos are recorded and the rest goes on, with one decoder or a pool; resume after a kill."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from astar.extract import ExtractionConfig, collect_inputs, extract_videos, open_store
from tests.videos import write_video


def add_bad_videos(folder):
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.avi").write_text("not a video")
    good = (folder / "a.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 3])
    middle = bytearray(good)
    middle[len(middle) // 2 : len(middle) // 2 + 2000] = os.urandom(2000)
    (folder / "garbled.mp4").write_bytes(bytes(middle))


def test_bad_videos_are_recorded_and_the_batch_goes_on(video_folder, tmp_path, extractor):
    add_bad_videos(video_folder)
    out = str(tmp_path / "feats.zarr")
    inputs = collect_inputs([str(video_folder), str(tmp_path / "missing.mp4")])
    summary = extract_videos(inputs, out, extractor=extractor, progress=False)
    store = open_store(out)
    assert {"a", "c d", "nested/b"} <= set(store.video_ids)
    failed = set(store.failures.video_id)
    assert {"empty", "text", "truncated", "missing"} <= failed
    assert failed.isdisjoint(store.video_ids)
    assert summary.count("failed") == len(failed)
    assert all("\n" not in error for error in store.failures.error)


def test_a_pool_of_decoders_stores_every_good_video_and_records_every_bad_one(video_folder, tmp_path, extractor):
    add_bad_videos(video_folder)
    out = str(tmp_path / "pooled.zarr")
    inputs = collect_inputs([str(video_folder)])
    summary = extract_videos(inputs, out, ExtractionConfig(device="cpu", decoders=3), extractor=extractor, progress=False)
    store = open_store(out)
    assert [outcome.video_id for outcome in summary.outcomes] == [video.video_id for video in inputs]
    assert {"a", "c d", "nested/b"} <= set(store.video_ids)
    assert {"empty", "text", "truncated"} <= set(store.failures.video_id)
    assert summary.count("done") + summary.count("failed") == len(inputs)


def test_failure_lines_go_to_stderr_unless_the_caller_reports_failures_itself(tmp_path, extractor, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    [video] = collect_inputs([str(bad)])
    extract_videos([video], str(tmp_path / "printed.zarr"), extractor=extractor, progress=False)
    assert capsys.readouterr().err.startswith(f"failed: {bad}: ")
    quiet = extract_videos([video], str(tmp_path / "quiet.zarr"), extractor=extractor, progress=False, report_failures=False)
    assert capsys.readouterr() == ("", "")
    assert quiet.count("failed") == 1 and quiet.outcomes[0].error


def test_rerun_skips_done_and_retries_failed(video_folder, tmp_path, extractor):
    out = str(tmp_path / "feats.zarr")
    broken = video_folder / "late.mp4"
    broken.write_bytes(b"not yet")
    first = extract_videos(collect_inputs([str(video_folder)]), out, extractor=extractor, progress=False)
    assert first.count("failed") == 1
    write_video(broken, np.zeros((10, 32, 32, 3), np.uint8), fps=10)  # the user fixes the file
    second = extract_videos(collect_inputs([str(video_folder)]), out, extractor=extractor, progress=False)
    assert (second.count("skipped"), second.count("done"), second.count("failed")) == (3, 1, 0)
    store = open_store(out)
    assert "late" in store.video_ids and store.failures.empty


EXTRACT = [sys.executable, "-m", "astar.extract.cli"]


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_duplicating(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(6):
        write_video(folder / f"v{index}.mp4", np.full((30, 32, 32, 3), 40 * index, np.uint8), fps=10)
    out = tmp_path / "feats.zarr"
    command = [*EXTRACT, str(folder), "--out", str(out), "--device", "cpu", "-q"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = out / "manifest"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(manifest.glob("*/zarr.json"))) < 2:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)  # mid-way: the next video is being decoded or written
    run.wait()
    done_before = set(open_store(str(out)).video_ids)
    assert 2 <= len(done_before) < 6
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{6 - len(done_before)} done, {len(done_before)} skipped, 0 failed" in finished.stdout
    assert open_store(str(out)).video_ids == [f"v{i}" for i in range(6)]
