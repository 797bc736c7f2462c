"""The store index (storage_schema.md §6.1): fresh, it opens a store in a few reads; missing, stale or
contradicted by the markers, readers fall back to them and report exactly what the markers say."""
import shutil
import time

import fsspec
import numpy as np
import pytest
import zarr
from fsspec.implementations.local import LocalFileSystem

from astar.extract import collect_inputs, decode_video, extract_videos, open_store, verify_store
from astar.extract.outcomes import video_record
from astar.extract.store.ids import video_key
from astar.extract.store.index import FLUSH_VIDEOS, INDEX, RunIndex, read_index
from astar.extract.store.writer import STORE_NODES, StoreWriter
from tests.videos import write_video

CLIPS = {"a.mp4": 25, "nested/b.mkv": 10, "c d.webm": 40}
"""Frames at 10 fps: N = 5, 2 and 8 frames at 2 fps, all padded to N′ = 16."""


class CountingFileSystem(LocalFileSystem):
    """The local file system under the ``counting://`` protocol, remembering every path opened for reading."""

    protocol = ("counting",)
    opened: list[str] = []

    def _open(self, path, mode="rb", **kwargs):
        if "r" in mode:
            CountingFileSystem.opened.append(str(path))
        return super()._open(path, mode, **kwargs)

    def ls(self, path, detail=False, **kwargs):
        CountingFileSystem.opened.append(f"{str(path).rstrip('/')}/ (listed)")
        return super().ls(path, detail=detail, **kwargs)


fsspec.register_implementation("counting", CountingFileSystem, clobber=True)


def write_clips(folder, clips: dict[str, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    for name, frames in clips.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        codec = "libvpx-vp9" if name.endswith("webm") else "libx264"
        write_video(folder / name, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), fps=10, codec=codec)
    return folder


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, extractor):
    """A store written by two runs (a, nested/b; then c d), so its index has two segments, and the clips' folder."""
    folder = write_clips(tmp_path_factory.mktemp("clips"), CLIPS)
    out = tmp_path_factory.mktemp("stores") / "feats.zarr"
    first = [video for video in collect_inputs([str(folder)]) if video.video_id != "c d"]
    extract_videos(first, str(out), extractor=extractor, progress=False)
    extract_videos(collect_inputs([str(folder)]), str(out), extractor=extractor, progress=False)
    return out, folder


@pytest.fixture
def store_copy(two_runs, tmp_path):
    """A private copy of the two-run store (tests change it)."""
    out = tmp_path / "feats.zarr"
    shutil.copytree(two_runs[0], out)
    return out


def opened_while(action) -> list[str]:
    """Paths inside the store that ``action`` opened for reading, relative to the store."""
    CountingFileSystem.opened = []
    action()
    return [path.split("feats.zarr/", 1)[1] for path in CountingFileSystem.opened if "feats.zarr/" in path]


def markers_read(opened: list[str]) -> list[str]:
    return sorted(path.split("/")[1] for path in opened if path.startswith("manifest/") and path.count("/") == 2)


def lengths(store) -> dict[str, int]:
    return {video_id: store.padded_frames(video_id) for video_id in store.video_ids}


def from_markers(out) -> tuple[list[str], dict[str, int]]:
    """What the listing path reports: every marker read, every length from the video's attributes."""
    store = open_store(str(out), use_index=False)
    return store.video_ids, {video_id: int(store.info(video_id)["padded_frames"]) for video_id in store.video_ids}


def test_each_run_leaves_one_index_segment(store_copy):
    assert len(zarr.open_group(str(store_copy), mode="r")[INDEX]) == 2


def test_a_closed_index_gives_ids_and_lengths_without_listing_or_reading_a_marker_or_a_video(store_copy):
    seen = {}
    opened = opened_while(lambda: seen.update(lengths(open_store(f"counting://{store_copy}"))))
    assert seen == {"a": 16, "c d": 16, "nested/b": 16} and open_store(str(store_copy)).index_trusted
    assert not [path for path in opened if not path.startswith("index/") and path.count("/") > 1]
    assert sorted(path for path in opened if path.startswith("index/")) == sorted(
        ["index/ (listed)", "index/zarr.json", *(f"index/{name}/zarr.json" for name in segments(store_copy))])
    assert not [path for path in opened if path.startswith("manifest")]  # the markers are not even listed


def segments(store) -> list[str]:
    return sorted(zarr.open_group(str(store / INDEX), mode="r").group_keys())


def test_a_run_keeps_the_index_open_from_before_its_first_marker_change_until_it_ends(store_copy, extractor):
    writer = StoreWriter(str(store_copy), extractor.identity())
    writer.open_index()
    assert f"{writer.index.run}-0" in segments(store_copy)
    opened = opened_while(lambda: open_store(f"counting://{store_copy}").video_ids)
    assert "manifest/ (listed)" in opened and not open_store(str(store_copy)).index_trusted
    writer.flush_index(final=True)  # a run that completed nothing leaves no segment
    assert len(segments(store_copy)) == 2 and open_store(str(store_copy)).index_trusted


def test_a_killed_run_keeps_the_index_open_until_astar_verify_rebuilds_it(store_copy, extractor):
    StoreWriter(str(store_copy), extractor.identity()).unmark("a")  # then killed: its unmarking never reached the index
    store = open_store(str(store_copy))
    assert not store.index_trusted and store.video_ids == ["c d", "nested/b"]
    verify_store(str(store_copy))
    store = open_store(str(store_copy))
    assert store.index_trusted and (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_segments_of_writers_that_did_not_open_their_runs_are_not_trusted_alone(store_copy):
    index = zarr.open_group(str(store_copy / INDEX), mode="r+")
    older = segments(store_copy)[0]
    index[older].attrs.put({key: value for key, value in index[older].attrs.items() if key != "opened"})
    store = open_store(str(store_copy))
    assert not store.index_trusted and (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_the_index_reports_exactly_what_the_markers_say(store_copy):
    store = open_store(str(store_copy))
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_a_store_without_an_index_is_read_from_its_markers(store_copy):
    shutil.rmtree(store_copy / INDEX)  # a store written before the index
    opened = opened_while(lambda: open_store(f"counting://{store_copy}").video_ids)
    assert markers_read(opened) == ["a", "c~20d", "nested~2fb"]
    store = open_store(str(store_copy))
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_videos_the_index_lacks_are_read_from_their_markers_alone(store_copy):
    index = zarr.open_group(str(store_copy / INDEX), mode="r+")
    second = max(index.group_keys(), key=lambda name: "c~20d" in index[name].attrs["videos"])
    del index[second]  # the second run was killed before it wrote a part: it left its opening part alone
    index.create_group(f"{second}-0", attributes={"opened": True, "videos": {}, "unmarked": {}})
    opened = opened_while(lambda: open_store(f"counting://{store_copy}").video_ids)
    assert markers_read(opened) == ["c~20d"]
    store = open_store(str(store_copy))
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_an_unmarked_video_is_not_complete_though_the_index_holds_it(store_copy, extractor):
    writer = StoreWriter(str(store_copy), extractor.identity())
    writer.unmark("a")  # the index does not know yet: nothing flushed
    store = open_store(str(store_copy))
    assert store.video_ids == ["c d", "nested/b"] and store.stale_index_keys == ["a"]
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_a_marker_deleted_by_hand_is_complete_only_to_a_closed_index_until_the_next_run_unmarks_it(store_copy, extractor):
    shutil.rmtree(store_copy / "manifest" / "a")
    assert open_store(str(store_copy)).video_ids == ["a", "c d", "nested/b"]  # the closed index, taken alone
    assert open_store(str(store_copy), use_index=False).video_ids == ["c d", "nested/b"]
    writer = StoreWriter(str(store_copy), extractor.identity())
    writer.open_index()
    assert open_store(str(store_copy)).video_ids == ["c d", "nested/b"]  # a run is open: the markers are listed
    writer.completed()
    writer.flush_index(final=True)
    assert "a" not in read_index(writer.root)[0] and open_store(str(store_copy)).video_ids == ["c d", "nested/b"]


def test_a_video_written_again_after_unmarking_reads_its_new_length_before_its_run_indexes_it(store_copy, extractor, tmp_path):
    longer = write_clips(tmp_path / "longer", {"a.mp4": 100}, seed=1) / "a.mp4"  # 10 s: N = 20, N′ = 32
    writer = StoreWriter(str(store_copy), extractor.identity())
    writer.unmark("a")
    writer.flush_index()
    decoded = decode_video(longer, extractor.preprocessing)
    features = extractor.features(decoded)
    writer.write_video(video_record("a", str(longer), decoded, time.perf_counter()), features.layers, features.fc7, features.fc7_windows)
    assert lengths(open_store(str(store_copy)))["a"] == 32  # from its marker: the old entry is outranked
    writer.index_video("a", len(decoded.frames))
    writer.flush_index(final=True)
    store = open_store(str(store_copy))
    assert "a" in read_index(store.root)[0] and (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_a_changed_source_extracted_again_is_indexed_with_its_new_length(store_copy, extractor, tmp_path):
    folder = write_clips(tmp_path / "changed", {"a.mp4": 100}, seed=1)
    extract_videos(collect_inputs([str(folder / "a.mp4")]), str(store_copy), extractor=extractor, progress=False,
                   reextract_changed=True)
    store = open_store(str(store_copy))
    assert store._index[video_key("a")].frames == 20
    assert (store.video_ids, lengths(store)) == from_markers(store_copy) and lengths(store)["a"] == 32


def test_concurrent_runs_segments_and_parts_merge(store_copy, extractor):
    shutil.rmtree(store_copy / INDEX)
    one, two = (StoreWriter(str(store_copy), extractor.identity()) for _ in range(2))
    one.index_video("a", 5)
    two.index_video("c d", 8)
    two.flush_index()  # a part: run two is still going
    one.index_video("nested/b", 2)
    one.flush_index(final=True)
    names = sorted(zarr.open_group(str(store_copy / INDEX), mode="r").group_keys())
    assert names == sorted([one.index.run, f"{two.index.run}-0"])
    store = open_store(str(store_copy))
    assert sorted(store._index) == sorted(map(video_key, ["a", "c d", "nested/b"]))
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_a_run_writes_a_part_of_its_segment_every_flush_videos_videos(tmp_path):
    index = zarr.open_group(str(tmp_path / "index"), mode="w")
    run = RunIndex(index)
    for number in range(FLUSH_VIDEOS + 1):
        run.add(f"v{number}", f"v{number}", 4)
    assert list(index.group_keys()) == [f"{run.run}-0"] and len(index[f"{run.run}-0"].attrs["videos"]) == FLUSH_VIDEOS
    run.close()
    assert list(index.group_keys()) == [run.run] and len(index[run.run].attrs["videos"]) == FLUSH_VIDEOS + 1


def test_verify_rebuilds_the_index_as_one_segment_without_the_damaged_video(store_copy):
    for chunk in (store_copy / "videos" / "nested~2fb" / "pool3" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"garbage")
    damaged = verify_store(str(store_copy))
    assert [damage.video_id for damage in damaged] == ["nested/b"]
    assert len(zarr.open_group(str(store_copy / INDEX), mode="r")) == 1
    store = open_store(str(store_copy))
    assert sorted(store._index) == sorted(map(video_key, ["a", "c d"])) and store.video_ids == ["a", "c d"]
    assert (store.video_ids, lengths(store)) == from_markers(store_copy)


def test_overwrite_removes_the_index(store_copy, two_runs, extractor):
    assert INDEX in STORE_NODES
    extract_videos(collect_inputs([str(two_runs[1] / "a.mp4")]), str(store_copy), extractor=extractor, progress=False,
                   overwrite=True)
    store = open_store(str(store_copy))
    assert sorted(store._index) == ["a"] and store.video_ids == ["a"]
    assert len(zarr.open_group(str(store_copy / INDEX), mode="r")) == 1


def test_a_run_that_finds_another_run_left_open_says_how_to_close_the_index(store_copy, two_runs, extractor, capsys):
    StoreWriter(str(store_copy), extractor.identity()).open_index()  # a run killed as it began
    clip = collect_inputs([str(two_runs[1] / "a.mp4")])
    extract_videos(clip, str(store_copy), extractor=extractor, progress=False)
    assert "has not finished (killed, or still running)" in capsys.readouterr().err
    verify_store(str(store_copy))
    extract_videos(clip, str(store_copy), extractor=extractor, progress=False)
    assert "has not finished" not in capsys.readouterr().err and open_store(str(store_copy)).index_trusted
