"""The input scanner: folders, list files and odd file-system entries, each counted or kept, never dropped."""
import os
from pathlib import Path

import pytest

from astar.extract.inputs import (
    DANGLING_SYMLINK, NOT_UTF8, NO_VIDEO_SUFFIX, REPEATED_FOLDER, SPECIAL_FILE, SYMLINK_LOOP, InputError, scan_inputs,
    source_change, source_fingerprint,
)


@pytest.fixture
def folder(tmp_path):
    """A folder with one real (empty) video file and a subfolder."""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"")
    (root / "sub" / "c.mp4").write_bytes(b"")
    return root


def reasons(scan) -> dict[str, str]:
    return {os.path.basename(entry.path): entry.reason for entry in scan.skipped}


def test_every_odd_folder_entry_is_skipped_with_its_reason(folder):
    (folder / "gone.mp4").symlink_to(folder / "nowhere.mp4")
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    (folder / "up").symlink_to(folder)
    os.mkfifo(folder / "pipe.mp4")
    (folder / "notes.txt").write_text("not a video")
    scan = scan_inputs([str(folder)])
    assert [video.video_id for video in scan.videos] == ["a", "sub/c"]
    assert reasons(scan) == {
        "gone.mp4": DANGLING_SYMLINK,
        "loop.mp4": SYMLINK_LOOP,
        "up": SYMLINK_LOOP,
        "pipe.mp4": SPECIAL_FILE,
        "notes.txt": NO_VIDEO_SUFFIX,
    }
    line = scan.summary()
    assert line.startswith("skipped 5 entries: ") and "\n" not in line
    assert "1 dangling symlink" in line and "1 without a video suffix (e.g." in line


def test_a_clean_folder_scan_says_nothing(folder):
    assert scan_inputs([str(folder)]).summary() is None


def test_symlinked_folders_are_followed_once(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.mp4").write_bytes(b"")
    (folder / "linked").symlink_to(elsewhere)
    (folder / "again").symlink_to(elsewhere)
    scan = scan_inputs([str(folder)])
    assert [video.video_id for video in scan.videos] == ["a", "again/b", "sub/c"]
    assert reasons(scan) == {"linked": REPEATED_FOLDER}


def test_files_named_directly_are_kept_so_their_failure_is_recorded(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    scan = scan_inputs([str(tmp_path / "pipe.mp4"), str(tmp_path / "gone.mp4"), str(tmp_path / "missing.mp4")])
    assert [video.video_id for video in scan.videos] == ["pipe", "gone", "missing"]
    assert scan.skipped == ()


def not_utf8(folder, name: bytes) -> str:
    """Create an empty file whose name is the raw bytes ``name`` (Linux names are bytes); its path as Python shows it."""
    path = os.path.join(os.fsencode(folder), name)
    open(path, "wb").close()
    return os.fsdecode(path)


def test_a_name_that_is_not_utf8_is_skipped_with_its_reason_wherever_found(folder, tmp_path):
    found = not_utf8(folder / "sub", b"bad\xff.mp4")
    named = not_utf8(tmp_path, b"caf\xe9.mp4")
    scan = scan_inputs([str(folder), named])
    assert [video.video_id for video in scan.videos] == ["a", "sub/c"]
    assert [(entry.path, entry.reason) for entry in scan.skipped] == [(found, NOT_UTF8), (named, NOT_UTF8)]


def test_a_video_inside_a_folder_that_is_not_utf8_is_skipped_though_its_id_is_text(tmp_path):
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xff"))
    os.mkdir(folder)
    source = not_utf8(folder, b"a.mp4")
    scan = scan_inputs([folder])
    assert scan.videos == () and reasons(scan) == {"a.mp4": NOT_UTF8}
    assert scan.skipped[0].path == source


def test_sources_keep_the_symlink_name_the_user_gave(tmp_path):
    target = tmp_path / "target.mp4"
    target.write_bytes(b"")
    (tmp_path / "link.mp4").symlink_to(target)
    [video] = scan_inputs([str(tmp_path / "link.mp4")]).videos
    assert video.source == str(tmp_path / "link.mp4")


def test_list_file_with_bom_dot_dot_and_a_folder(folder, tmp_path):
    listing = folder.parent / "clips.txt"
    listing.write_bytes("\ufeffclips/a.mp4\r\nclips/sub/../sub/c.mp4\nclips/sub/c.mp4\n# comment\n\nclips/sub\n".encode())
    scan = scan_inputs([str(listing)])
    assert [video.video_id for video in scan.videos] == ["clips/a", "clips/sub/c"]
    assert scan.videos[1].source == str(folder / "sub" / "c.mp4")


def test_a_listed_folder_is_scanned_like_a_folder_argument(folder):
    (folder / "notes.md").write_text("x")
    listing = folder.parent / "clips.lst"
    listing.write_text("clips\n")
    scan = scan_inputs([str(listing)])
    assert [video.video_id for video in scan.videos] == ["clips/a", "clips/sub/c"]
    assert reasons(scan) == {"notes.md": NO_VIDEO_SUFFIX}


def test_a_list_file_that_is_not_utf8_is_named(tmp_path):
    listing = tmp_path / "clips.txt"
    listing.write_bytes("caf\xe9.mp4\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"clips\.txt: byte 3: list files must be UTF-8"):
        scan_inputs([str(listing)])


def test_the_same_file_reached_twice_is_one_video(folder):
    listing = folder / "again.txt"
    listing.write_text("a.mp4\n./a.mp4\n")
    scan = scan_inputs([str(folder / "a.mp4"), str(listing)])
    assert [(video.video_id, video.source) for video in scan.videos] == [("a", str(folder / "a.mp4"))]


def test_two_files_for_one_id_are_refused_naming_both(folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="'a'.*clips/a.mp4 and .*other/a.mp4"):
        scan_inputs([str(folder / "a.mp4"), str(other / "a.mp4")])


def test_every_clashing_id_is_named_in_one_line_not_only_the_first(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    for folder in (first, second):
        folder.mkdir()
        for index in range(7):
            (folder / f"v{index}.mp4").write_bytes(folder.name.encode())
    with pytest.raises(InputError) as raised:
        scan_inputs([str(first), str(second)])
    message = str(raised.value)
    assert message.startswith("7 video ids claimed by more than one input (rename or move them): 'v0': ") and "\n" not in message
    assert all(f"'v{index}': {first}/v{index}.mp4 and {second}/v{index}.mp4" in message for index in range(5))
    assert message.endswith("; and 2 more")


# A stored video remembers its source; a different file under the same id is noticed.


def recorded_from(path) -> dict:
    return {"source": str(path), **source_fingerprint(str(path))}


def test_the_same_file_is_no_change_even_when_moved(tmp_path):
    first = tmp_path / "clips" / "c00.mp4"
    first.parent.mkdir()
    first.write_bytes(b"video")
    recorded = recorded_from(first)
    assert source_change(recorded, str(first)) is None
    moved = tmp_path / "moved.mp4"
    os.rename(first, moved)
    assert source_change(recorded, str(moved)) is None


def test_a_different_file_under_the_same_id_is_a_change_naming_both(tmp_path):
    first, other = tmp_path / "clips" / "c00.mp4", tmp_path / "other" / "c00.mp4"
    for path, data in ((first, b"video"), (other, b"another video")):
        path.parent.mkdir()
        path.write_bytes(data)
    change = source_change(recorded_from(first), str(other))
    assert change.startswith(f"extracted from {first}, now {other}: size 5 → 13 bytes")


def test_a_file_rewritten_in_place_is_a_change(tmp_path):
    path = tmp_path / "c00.mp4"
    path.write_bytes(b"video")
    recorded = recorded_from(path)
    os.utime(path, ns=(recorded["source_mtime_ns"] + 10**9,) * 2)
    assert source_change(recorded, str(path)).startswith("modified ")


def test_a_store_without_fingerprints_compares_paths(tmp_path):
    path = tmp_path / "c00.mp4"
    path.write_bytes(b"video")
    assert source_change({"source": str(path)}, str(path)) is None
    assert "cannot compare contents" in source_change({"source": "/elsewhere/c00.mp4"}, str(path))


@pytest.mark.parametrize("source, scheme, remote, local", [
    ("s3://bucket/v.mp4", True, True, None),
    ("file:///data/v.mp4", True, False, "/data/v.mp4"),
    ("/data/v.mp4", False, False, "/data/v.mp4"),
    ("clips/v.mp4", False, False, "clips/v.mp4"),
])
def test_one_rule_says_what_is_a_url_what_is_remote_and_which_local_path_it_names(source, scheme, remote, local):
    from astar.extract.store.ids import has_scheme, is_url, local_path

    assert (has_scheme(source), is_url(source), local_path(source)) == (scheme, remote, local)


def test_a_file_url_store_finds_its_annotations_beside_it_and_a_remote_one_does_not(monkeypatch):
    from astar.train.data.datasets import default_annotation_paths

    monkeypatch.delenv("ASTAR_DATA", raising=False)
    assert default_annotation_paths("msvd", "file:///data/feats.zarr") == [Path("/data/annotations/msvd")]
    assert default_annotation_paths("msvd", "s3://bucket/feats.zarr") == []
