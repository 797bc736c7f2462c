"""A damaged store is recognised and repaired, never trusted (storage_schema.md §8).

Every case damages a store written by the real extractor the way a disk, a sync tool or
a person does, then checks what a reader, ``astar-verify`` and a re-run do.
"""
import json
import resource
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from astar.extract import collect_inputs, extract_videos, open_store
from astar.extract.store.ids import video_key
from astar.extract.store.reader import DamagedVideoError
from astar.extract.store.verify import verify_store
from astar.extract.verify import main as verify_main
from tests.extract.conftest import template_store


@pytest.fixture(scope="module")
def written(tmp_path_factory, extractor):
    """Two clips and the store the extractor wrote from them (copied by each test that damages it)."""
    return template_store(tmp_path_factory, extractor, {"a.mp4": 20, "b.mp4": 10}, seed=1)


def chunk_files(store, video_id, array):
    folder = store / "videos" / video_key(video_id) / array / "c"
    return sorted(path for path in folder.rglob("*") if path.is_file())


def reextract(written, store, extractor):
    return extract_videos(collect_inputs([str(written[0])]), str(store), extractor=extractor, progress=False)


def test_every_chunk_is_written_and_checksummed(store):
    array = open_store(str(store)).array("a", "pool5")
    assert np.isnan(array.fill_value)
    assert [codec.to_dict()["name"] for codec in array.metadata.codecs][-1] == "crc32c"
    for name in ("pool2", "pool3", "pool4", "pool5", "fc7", "fc7_windows"):
        assert len(chunk_files(store, "a", name)) == open_store(str(store)).array("a", name).nchunks


def test_the_marker_records_every_arrays_shape(store):
    marker = json.loads((store / "manifest" / video_key("a") / "zarr.json").read_text())["attributes"]
    features = open_store(str(store))
    assert marker["arrays"] == {name: list(features.array("a", name).shape) for name in marker["arrays"]}
    assert set(marker["arrays"]) == {"pool2", "pool3", "pool4", "pool5", "fc7", "fc7_windows"}


def test_a_garbage_marker_is_not_complete_and_a_rerun_repairs_it(store, written, extractor):
    (store / "manifest" / video_key("a") / "zarr.json").write_text("garbage")
    features = open_store(str(store), use_index=False)
    assert features.video_ids == ["b"] and features.damaged_markers == [video_key("a")]
    assert open_store(str(store)).video_ids == ["a", "b"]  # indexed: its marker is not read (§6.1); verify finds it
    summary = reextract(written, store, extractor)
    assert (summary.count("done"), summary.count("skipped")) == (1, 1)
    assert open_store(str(store)).video_ids == ["a", "b"]
    assert verify_store(str(store)) == []


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_damaged_chunk_is_named_by_video_and_array_when_read(store, damage):
    features = open_store(str(store))
    expected = "a chunk is missing" if damage == "delete" else "a chunk is corrupt"
    chunk = chunk_files(store, "a", "pool3")[0]
    data = bytearray(chunk.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 2]))
    else:
        chunk.unlink()
    with pytest.raises(DamagedVideoError, match=f"video 'a', pool3: damaged \\({expected}") as caught:
        features.read("a", "pool3", (slice(None), slice(None), slice(None), slice(0, 8)))
    assert "\n" not in str(caught.value) and str(store) in str(caught.value)
    assert features.read("b", "pool3").shape[0] > 0  # one damaged video spoils no other


def test_a_missing_video_group_is_named_not_a_key_error(store):
    shutil.rmtree(store / "videos" / video_key("b"))
    with pytest.raises(DamagedVideoError, match="video 'b', group: damaged"):
        open_store(str(store)).read("b", "fc7")


def test_verify_marks_damaged_videos_and_a_rerun_rewrites_them_exactly(store, written, extractor):
    before = open_store(str(store)).read("a", "pool2")
    chunk_files(store, "a", "pool2")[-1].unlink()
    shutil.rmtree(store / "videos" / video_key("b") / "fc7")
    damaged = verify_store(str(store))
    reasons = {d.video_id: d.reason for d in damaged}
    assert sorted(reasons) == ["a", "b"]
    assert "video 'a', pool2: damaged (a chunk is missing)" in reasons["a"]
    assert "video 'b', fc7: damaged (missing" in reasons["b"]
    features = open_store(str(store))
    assert features.video_ids == []
    assert sorted(features.failures.video_id) == ["a", "b"]
    assert features.failures.error.str.startswith("damaged, to extract again").all()
    summary = reextract(written, store, extractor)
    assert summary.count("done") == 2
    repaired = open_store(str(store))
    assert repaired.video_ids == ["a", "b"] and len(repaired.failures) == 0
    np.testing.assert_array_equal(repaired.read("a", "pool2"), before)
    assert verify_store(str(store)) == []


def test_astar_verify_reports_marks_and_exits_3(store):
    (store / "manifest" / video_key("b") / "zarr.json").write_bytes(b"\x00\x01")
    dry = CliRunner().invoke(verify_main, [str(store), "--dry-run", "-q"])
    assert dry.exit_code == 3, dry.output
    assert "1 complete videos checked; 1 damaged found" in dry.stdout
    assert "completion marker unreadable" in dry.stderr and "Traceback" not in dry.output
    result = CliRunner().invoke(verify_main, [str(store), "-q"])
    assert result.exit_code == 3 and "marked for re-extraction" in result.stdout
    again = CliRunner().invoke(verify_main, [str(store), "-q"])
    assert again.exit_code == 0 and "1 complete videos checked; 0 damaged" in again.stdout


def _no_file_writes() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write past 0 bytes fails: a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


RECORD_A_FAILURE = """
import sys
from astar.extract import StoreError, open_store
from astar.extract.store.writer import StoreWriter
store = sys.argv[1]
writer = StoreWriter(store, open_store(store).attrs)
try:
    writer.record_failure("bad", "bad.mp4", "FFmpeg cannot decode it")
except StoreError as error:
    sys.exit(f"Error: {error}")
"""


def test_a_failure_that_cannot_be_recorded_is_one_line_and_leaves_no_empty_record(store):
    # The recorder itself on a full disk: a whole command cannot get that far, since it
    # opens its run in the store index first, and that write stops it in one line.
    command = [sys.executable, "-c", RECORD_A_FAILURE, str(store)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=_no_file_writes)
    assert result.returncode == 1, result.stderr
    assert "cannot record the failure of 'bad'" in result.stderr and "Traceback" not in result.stderr
    assert not (store / "failures" / "bad").exists()
    assert open_store(str(store)).video_ids == ["a", "b"]


def test_a_run_that_cannot_write_stops_in_one_line_before_it_decodes(store, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    command = [sys.executable, "-m", "astar.extract.cli", str(bad), "--out", str(store), "--device", "cpu", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=_no_file_writes)
    assert result.returncode == 1, result.stderr
    assert "cannot write the store index" in result.stderr and "Traceback" not in result.stderr
    assert "decoder" not in result.stderr and open_store(str(store)).video_ids == ["a", "b"]


def test_decoders_that_cannot_start_stop_the_command_in_one_line(store, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    unusable = tmp_path / ("d" * 60) / ("e" * 60)  # writable, but too long a path for the forkserver's socket
    unusable.mkdir(parents=True)
    command = [sys.executable, "-m", "astar.extract.cli", str(bad), "--out", str(store), "--device", "cpu", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(unusable)})
    assert result.returncode == 1, result.stderr
    assert "cannot start a decoder process" in result.stderr and "Traceback" not in result.stderr
    assert open_store(str(store)).video_ids == ["a", "b"]
