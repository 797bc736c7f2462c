"""Extraction on a Dask cluster and concurrent writers: the in-process result, killed workers, two runs on one store, the CLI."""
import multiprocessing as mp
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import fsspec
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from astar.extract import (
    ExtractionConfig, Extractor, StoreError, collect_inputs, dask_client, decode_video, extract_videos, open_store,
)
from astar.extract.cli import main
from astar.extract.outcomes import video_record
from astar.extract.dask_executor import extract_video_task, torch_threads_per_task
from astar.extract.store.ids import video_key
from astar.extract.store.writer import StoreWriter
from tests.extract.test_batch import EXTRACT, add_bad_videos
from tests.videos import write_video

ARRAYS = ("pool2", "pool3", "pool4", "pool5", "fc7", "fc7_windows")
CPU = ExtractionConfig(device="cpu")


@pytest.fixture(scope="module")
def client():
    """One local cluster for the module: 2 worker processes of 1 thread, as ``--workers 2`` starts."""
    with dask_client(workers=2) as client:
        yield client


@contextmanager
def torch_threads(count: int):
    """Run in-process extraction with ``count`` intra-op threads, as each cluster task does.

    Bit-for-bit equality needs the same thread count: oneDNN splits convolution
    reductions by threads, so 1 and 2 threads differ in the last float16 bits of some
    pool4/pool5 values on the same machine, in or out of a cluster.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def assert_same_arrays(store, reference, video_ids) -> None:
    """Every array of ``video_ids`` is float16 and equal bit for bit in both stores."""
    for video_id in video_ids:
        for name in ARRAYS:
            ours, theirs = store.read(video_id, name), reference.read(video_id, name)
            assert ours.dtype == theirs.dtype == np.float16
            assert ours.tobytes() == theirs.tobytes(), (video_id, name)


@pytest.mark.slow
def test_cluster_run_stores_what_the_in_process_run_stores(client, video_folder, tmp_path, extractor, capsys):
    add_bad_videos(video_folder)
    inputs = collect_inputs([str(video_folder)])
    with torch_threads(torch_threads_per_task(client)):
        local = extract_videos(inputs, str(tmp_path / "local.zarr"), extractor=extractor, progress=False)
    assert capsys.readouterr().err.count("failed: ") == local.count("failed") >= 3
    cluster = extract_videos(inputs, str(tmp_path / "dask.zarr"), CPU, client=client, progress=False, report_failures=False)
    assert "failed: " not in capsys.readouterr().out  # the caller reports them
    store, reference = open_store(str(tmp_path / "dask.zarr")), open_store(str(tmp_path / "local.zarr"))
    assert {"a", "c d", "nested/b"} <= set(store.video_ids) and store.video_ids == reference.video_ids
    assert_same_arrays(store, reference, store.video_ids)
    assert {"empty", "text", "truncated"} <= set(store.failures.video_id)
    assert list(store.failures.video_id) == list(reference.failures.video_id)
    assert cluster.table()[["video_id", "status"]].equals(local.table()[["video_id", "status"]])
    assert cluster.count("failed") == local.count("failed") > 0


def cluster_table(client, video_folder, out: str):
    summary = extract_videos(collect_inputs([str(video_folder)]), out, CPU, client=client, progress=False)
    return summary, summary.table()


def test_a_cluster_run_returns_one_row_per_video(client, video_folder, tmp_path):
    (video_folder / "bad.mp4").write_bytes(b"not a video")
    summary, table = cluster_table(client, video_folder, str(tmp_path / "feats.zarr"))
    assert list(table.columns) == ["video_id", "source", "status", "error", "frames", "seconds", "note"]
    assert dict(zip(table.video_id, table.status)) == {"a": "done", "bad": "failed", "c d": "done", "nested/b": "done"}
    assert table.set_index("video_id").loc["bad", "error"].startswith("FFmpeg cannot decode it")
    assert list(table.frames) == [5, 0, 8, 2]  # 2.5 s, –, 4 s, 1 s at 2 fps
    assert summary.store_bytes > 0 and summary.seconds > 0
    _, again = cluster_table(client, video_folder, str(tmp_path / "feats.zarr"))
    assert list(again.status) == ["skipped", "failed", "skipped", "skipped"]


def test_workers_compute_in_the_precision_the_driver_recorded(client, tmp_path):
    # As when a CPU-only machine drives GPU workers: "auto" would resolve differently on the two sides.
    # A worker opens the store with its own extractor's identity before it decodes, so one built in another
    # precision is refused there (StoreMismatchError); a video that cannot be decoded then fails for its
    # own reason alone, and no bf16 pass is run (minutes on CPUs without bf16 kernels).
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    driver = Extractor.build(ExtractionConfig(device="cpu", precision="bf16"))
    out = str(tmp_path / "feats.zarr")
    summary = extract_videos(collect_inputs([str(tmp_path / "broken.mp4")]), out, CPU, client=client, progress=False,
                             extractor=driver)
    [outcome] = summary.outcomes
    assert outcome.status == "failed" and "FFmpeg cannot decode it" in outcome.error, outcome
    assert open_store(out).attrs["precision"] == "bf16"


def test_a_memory_store_on_a_cluster_is_refused_before_any_work(client, video_folder):
    import uuid

    url = f"memory://{uuid.uuid4().hex}/feats.zarr"
    with pytest.raises(StoreError, match="a memory:// store lives in one process, and each Dask worker would write its own"):
        extract_videos(collect_inputs([str(video_folder)]), url, CPU, client=client, progress=False)
    assert not fsspec.filesystem("memory").exists(url.removeprefix("memory://"))


@pytest.mark.slow
def test_s3_store_through_the_cluster_reopens_and_resumes(client, video_folder, bucket):
    name, options = bucket
    (video_folder / "bad.mp4").write_bytes(b"not a video")
    url, settings = f"s3://{name}/feats.zarr", ExtractionConfig(device="cpu", storage_options=options)
    inputs = collect_inputs([str(video_folder)])
    first = extract_videos(inputs, url, settings, client=client, progress=False)
    assert (first.count("done"), first.count("failed")) == (3, 1)
    store = open_store(url, options)
    assert store.video_ids == ["a", "c d", "nested/b"] and list(store.failures.video_id) == ["bad"]
    assert store.read("c d", "pool5").shape == (1, 4, 4, 512)
    second = extract_videos(inputs, url, settings, client=client, progress=False)
    assert (second.count("skipped"), second.count("failed"), second.count("done")) == (3, 1, 0)


def test_a_rerun_task_whose_video_this_run_completed_reports_it_done(video_folder, tmp_path, extractor):
    # Dask reruns a finished task when the worker holding its result dies before the driver gathers it.
    out = str(tmp_path / "feats.zarr")
    [video] = collect_inputs([str(video_folder / "a.mp4")])
    [first] = extract_videos([video], out, extractor=extractor, progress=False).outcomes
    rerun = extract_video_task(video, out, CPU, torch_threads=None)
    assert (rerun.status, rerun.frames, rerun.seconds) == ("done", first.frames, first.seconds)
    assert rerun.frames == open_store(out).info("a")["frames"] > 0


def _executing(dask_worker) -> list[str]:
    return [str(task.key) for task in dask_worker.state.executing]


def kill_worker_running(client, key_prefix: str, deadline_s: float = 120) -> str:
    """SIGKILL the worker process that is executing the task whose key starts with ``key_prefix``; its address."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for address, keys in client.run(_executing).items():
            if any(key.startswith(key_prefix) for key in keys):
                [pid] = client.run(os.getpid, workers=[address]).values()
                os.kill(pid, signal.SIGKILL)
                return address
        time.sleep(0.05)
    raise AssertionError(f"no task {key_prefix}… ran within {deadline_s} s")


@pytest.mark.slow
def test_a_worker_killed_mid_video_has_the_video_redone_and_stored_once(client, video_folder, tmp_path, extractor):
    frames = np.random.default_rng(1).integers(0, 255, (160, 48, 64, 3), np.uint8)
    long = write_video(video_folder / "long.mp4", frames, fps=10)  # 16 s: 32 frames through C3D, seconds of work
    out = str(tmp_path / "feats.zarr")
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(extract_videos, collect_inputs([str(video_folder)]), out, CPU, client=client, progress=False)
        killed = kill_worker_running(client, "extract-long-")
        assert "long" not in open_store(out)  # the killed attempt left at most a half-written, uncounted video
        summary = run.result(timeout=300)
    assert killed not in client.scheduler_info(n_workers=-1)["workers"]
    assert (summary.count("done"), summary.count("failed")) == (4, 0)
    store = open_store(out)
    assert store.video_ids == ["a", "c d", "long", "nested/b"]
    with torch_threads(torch_threads_per_task(client)):
        extract_videos(collect_inputs([str(long)]), str(tmp_path / "long.zarr"), extractor=extractor, progress=False)
    assert_same_arrays(store, open_store(str(tmp_path / "long.zarr")), ["long"])
    client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker: later tests get both


def extracted(video_folder, extractor):
    """A real video's decoded frames, its features, and every array the store should hold for it."""
    decoded = decode_video(video_folder / "c d.webm", extractor.preprocessing)
    features = extractor.features(decoded)
    return decoded, features, {**features.layers, "fc7": features.fc7, "fc7_windows": features.fc7_windows}


def write_videos_at_once(out: str, identity: dict, videos: list, start) -> None:
    """One of two writers started together: create the store, then write each (record, features) of ``videos``."""
    start.wait()
    writer = StoreWriter(out, identity)
    for record, features in videos:
        writer.write_video(record, features.layers, features.fc7, features.fc7_windows)


@pytest.mark.filterwarnings("ignore:Object at .* is not recognized")  # listing while a writer's temporary file exists
def test_two_writers_of_the_same_videos_never_expose_a_marked_video_without_its_arrays(video_folder, tmp_path, extractor):
    decoded, features, expected = extracted(video_folder, extractor)
    ids = [f"v{index:02d}" for index in range(12)]
    videos = [(video_record(video_id, "c d.webm", decoded, time.perf_counter()), features) for video_id in ids]
    out = str(tmp_path / "feats.zarr")
    spawn = mp.get_context("spawn")
    start = spawn.Barrier(2)
    writers = [spawn.Process(target=write_videos_at_once, args=(out, extractor.identity(), videos, start)) for _ in range(2)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(writer.is_alive() for writer in writers):
        try:
            store = open_store(out)
        except StoreError:  # not created yet
            continue
        for video_id in store.video_ids:  # marked complete: everything must be there, whoever wrote it
            assert store.info(video_id)["frames"] == len(decoded.frames)
            for name, array in expected.items():
                assert store.read(video_id, name).tobytes() == array.tobytes(), (video_id, name)
            reads += 1
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert open_store(out).video_ids == ids and reads > 0


def test_a_half_written_video_left_by_a_crash_is_rewritten_whole(video_folder, tmp_path, extractor):
    decoded, features, expected = extracted(video_folder, extractor)
    writer = StoreWriter(str(tmp_path / "feats.zarr"), extractor.identity())
    leftover = writer.root["videos"].create_group(video_key("c d"), attributes={"video_id": "c d", "status": "writing"})
    leftover.create_array("pool2", shape=(3, 28, 28, 128), dtype="float16", fill_value=1)  # an earlier, longer source
    leftover.create_array("pool3", data=np.full_like(features.layers["pool3"], 7))  # same shape, wrong values
    writer.write_video(video_record("c d", "c d.webm", decoded, time.perf_counter()), features.layers, features.fc7, features.fc7_windows)
    store = open_store(str(tmp_path / "feats.zarr"))
    for name, array in expected.items():
        assert store.read("c d", name).tobytes() == array.tobytes(), name
    assert store.info("c d")["status"] == "complete"


@pytest.mark.slow
def test_two_cli_runs_on_one_store_at_once_leave_every_video_complete_once(video_folder, tmp_path, extractor):
    extra = write_video(tmp_path / "extra.mp4", np.full((20, 48, 64, 3), 90, np.uint8), fps=10)
    out = tmp_path / "feats.zarr"
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core each, and the reference below computes alike
    runs = [
        subprocess.Popen(
            [*EXTRACT, *inputs, "--out", str(out), "--device", "cpu", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=one_thread
        )
        for inputs in ([str(video_folder)], [str(video_folder), str(extra)])  # overlapping: a, c d, nested/b in both
    ]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    reference = tmp_path / "reference.zarr"
    with torch_threads(1):
        extract_videos(collect_inputs([str(video_folder), str(extra)]), str(reference), extractor=extractor, progress=False)
    store = open_store(str(out))
    assert store.video_ids == ["a", "c d", "extra", "nested/b"] and store.failures.empty
    assert_same_arrays(store, open_store(str(reference)), store.video_ids)
    assert all(store.info(video_id)["status"] == "complete" for video_id in store.video_ids)


@pytest.mark.slow
def test_cli_with_workers_prints_the_dashboard_and_stores_every_video(video_folder, tmp_path):
    out = tmp_path / "feats.zarr"
    result = subprocess.run([*EXTRACT, str(video_folder), "--out", str(out), "--workers", "2", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", result.stderr)
    assert "extract (dask)" in result.stderr and "frames_per_s" in result.stderr
    assert "3 done, 0 skipped, 0 failed" in result.stdout
    assert open_store(str(out)).video_ids == ["a", "c d", "nested/b"]


def test_cli_scheduler_file_that_does_not_exist_is_a_one_line_error(video_folder, tmp_path):
    missing = tmp_path / "scheduler.json"
    result = CliRunner().invoke(main, [str(video_folder), "--out", str(tmp_path / "f.zarr"), "--scheduler", str(missing), "--device", "cpu"])
    assert result.exit_code == 1
    assert f"Error: {missing}: neither a scheduler address (tcp://host:8786) nor an existing scheduler file" in result.output


def test_cli_workers_and_scheduler_together_is_a_usage_error(video_folder, tmp_path):
    args = [str(video_folder), "--out", str(tmp_path / "f.zarr"), "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "give one" in result.output and "Traceback" not in result.output


def test_cli_unreachable_scheduler_is_a_one_line_error(video_folder, tmp_path, closed_port):
    address = f"tcp://127.0.0.1:{closed_port}"
    environment = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    started = time.monotonic()
    result = subprocess.run(
        [*EXTRACT, str(video_folder), "--out", str(tmp_path / "f.zarr"), "--scheduler", address, "--device", "cpu", "-q"],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    assert result.returncode == 1
    assert f"Error: cannot reach the Dask scheduler {address}: Timed out trying to connect" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 60
