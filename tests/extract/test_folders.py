"""The one rule for folders astar writes or deletes: only its own, or an empty one."""
import pytest
from click.testing import CliRunner

from astar.extract import open_store
from astar.extract.cli import main as extract_main
from astar.extract.folders import MARKER, FolderError, claim_folder, folder_kind, remove_own_folder


def extract(*args):
    return CliRunner().invoke(extract_main, [*map(str, args), "--device", "cpu", "-q"])


def test_overwrite_never_deletes_a_folder_of_videos(video_folder):
    before = sorted(path.name for path in video_folder.rglob("*"))
    result = extract(video_folder, "--out", video_folder, "--overwrite")
    assert result.exit_code == 1
    assert f"{video_folder}: is not empty and was not made by astar" in result.output
    assert "--overwrite deletes only what astar made" in result.output and "Traceback" not in result.output
    assert sorted(path.name for path in video_folder.rglob("*")) == before


def test_a_non_empty_folder_is_not_turned_into_a_store(video_folder, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    result = extract(video_folder, "--out", notes)
    assert result.exit_code == 1 and "not made by astar" in result.output
    assert sorted(path.name for path in notes.iterdir()) == ["todo.txt"]


def test_overwrite_starts_an_astar_store_afresh_and_an_empty_folder_becomes_one(video_folder, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert extract(video_folder / "a.mp4", "--out", out).exit_code == 0
    assert open_store(str(out)).video_ids == ["a"]
    result = extract(video_folder / "nested", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert open_store(str(out)).video_ids == ["b"]


@pytest.mark.parametrize("kind", ["store", "run", "eval", "figures"])
def test_a_file_is_refused_in_one_line(tmp_path, kind):
    target = tmp_path / "taken"
    target.write_text("data")
    with pytest.raises(FolderError, match="taken: is a file"):
        claim_folder(str(target), kind, overwrite=True)
    assert target.read_text() == "data"


def test_a_folder_is_reused_and_overwritten_only_as_the_kind_astar_made_it(tmp_path):
    out = tmp_path / "run"
    assert claim_folder(str(out), "run") is True
    (out / "config.toml").write_text("x")
    assert folder_kind(str(out)) == "run" and (out / MARKER).is_file()
    assert claim_folder(str(out), "run") is False and (out / "config.toml").exists()
    with pytest.raises(FolderError, match="is astar's training run directory, not an attention figure folder"):
        claim_folder(str(out), "figures", overwrite=True)
    assert (out / "config.toml").exists()
    assert claim_folder(str(out), "run", overwrite=True) is True
    assert sorted(path.name for path in out.iterdir()) == [MARKER]


def test_remove_own_folder_deletes_only_astars(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    claim_folder(str(mine), "run")
    theirs.mkdir()
    (theirs / "notes.txt").write_text("notes")
    remove_own_folder(str(mine), "run")
    assert not mine.exists()
    with pytest.raises(FolderError, match="not made by astar"):
        remove_own_folder(str(theirs), "run")
    assert (theirs / "notes.txt").read_text() == "notes"


def test_a_remote_store_follows_the_same_rule(bucket, video_folder):
    import s3fs

    name, options = bucket
    fs = s3fs.S3FileSystem(**options)
    fs.pipe(f"{name}/data/keep.csv", b"a,b\n")
    with pytest.raises(FolderError, match="not made by astar"):
        claim_folder(f"s3://{name}/data", "store", overwrite=True, storage_options=options)
    assert fs.cat(f"{name}/data/keep.csv") == b"a,b\n"
