"""The one rule for folders astar writes or deletes: only its own, or an empty one."""
import pytest
from click.testing import CliRunner

from astar.extract import open_store
from astar.extract.cli import main as extract_main
from astar.extract.folders import MARKER, STORE, FolderError, check_folder, claim_folder, folder_kind
from astar.train.evaluate import EVAL_FOLDER
from astar.train.figures import FIGURES_FOLDER
from astar.train.rundir import RUN_FOLDER


def extract(*args):
    return CliRunner().invoke(extract_main, [*map(str, args), "--device", "cpu", "-q"])


def test_overwrite_never_deletes_a_folder_of_videos(video_folder):
    before = sorted(path.name for path in video_folder.rglob("*"))
    result = extract(video_folder, "--out", video_folder, "--overwrite")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"lies inside --out {video_folder}" in result.output
    assert sorted(path.name for path in video_folder.rglob("*")) == before


def test_a_non_empty_folder_is_not_turned_into_a_store(video_folder, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    result = extract(video_folder, "--out", notes, "--overwrite")
    assert result.exit_code == 1 and "not made by astar" in result.output
    assert "--overwrite deletes only what astar made" in result.output and "Traceback" not in result.output
    assert sorted(path.name for path in notes.iterdir()) == ["todo.txt"]


def test_overwrite_starts_an_astar_store_afresh_and_an_empty_folder_becomes_one(video_folder, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert extract(video_folder / "a.mp4", "--out", out).exit_code == 0
    assert open_store(str(out)).video_ids == ["a"]
    result = extract(video_folder / "nested", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert open_store(str(out)).video_ids == ["b"]


@pytest.mark.parametrize("kind", [STORE, RUN_FOLDER, EVAL_FOLDER, FIGURES_FOLDER])
def test_a_file_is_refused_in_one_line(tmp_path, kind):
    target = tmp_path / "taken"
    target.write_text("data")
    with pytest.raises(FolderError, match="taken: is a file"):
        claim_folder(str(target), kind, overwrite=True, own=("zarr.json",))
    assert target.read_text() == "data"


@pytest.mark.parametrize("kind", [STORE, RUN_FOLDER, EVAL_FOLDER, FIGURES_FOLDER])
@pytest.mark.parametrize("where", ["/sys/astar-{kind}", "/sys/astar-{kind}/deeper", "{tmp}/a-file/{kind}"])
def test_a_place_no_one_can_write_is_refused_before_any_work(tmp_path, kind, where):
    # sysfs takes no new files, whoever asks (root passes permission bits, so only a write tells).
    (tmp_path / "a-file").write_text("data")
    target = where.format(kind=kind, tmp=tmp_path)
    with pytest.raises(FolderError, match="cannot (write here|read)"):
        check_folder(target, kind)
    assert (tmp_path / "a-file").read_text() == "data"


def test_a_folder_is_reused_and_overwritten_only_as_the_kind_astar_made_it(tmp_path):
    out = tmp_path / RUN_FOLDER
    assert claim_folder(str(out), RUN_FOLDER) is True
    (out / "config.toml").write_text("x")
    assert folder_kind(str(out)) == RUN_FOLDER and (out / MARKER).is_file()
    assert claim_folder(str(out), RUN_FOLDER) is False and (out / "config.toml").exists()
    with pytest.raises(FolderError, match="is astar's training run directory, not an attention figure folder"):
        claim_folder(str(out), FIGURES_FOLDER, overwrite=True, own=("x",))
    assert (out / "config.toml").exists()
    (out / "NOTES.md").write_text("mine")
    assert claim_folder(str(out), RUN_FOLDER, overwrite=True, own=("config.toml",)) is True
    assert sorted(path.name for path in out.iterdir()) == [MARKER, "NOTES.md"]
    with pytest.raises(ValueError, match="needs the names of its own entries"):
        claim_folder(str(out), RUN_FOLDER, overwrite=True)


def test_a_kind_no_stage_registered_is_refused_and_a_marker_of_one_still_reads_as_astars(tmp_path):
    with pytest.raises(ValueError, match="unknown folder kind 'runs'"):
        claim_folder(str(tmp_path / "new"), "runs")
    made = tmp_path / "made"
    made.mkdir()
    (made / MARKER).write_text('{"kind": "notebook", "astar_version": "9", "created": "2030-01-01"}')
    assert folder_kind(str(made)) == "notebook"
    with pytest.raises(FolderError, match="made: is astar's notebook folder, not a training run directory"):
        claim_folder(str(made), RUN_FOLDER)


def store_with_foreign_files(video_folder, tmp_path):
    """A store of ``a`` holding a user's README.txt and incoming/ folder beside its own nodes."""
    store = tmp_path / "st"
    assert extract(video_folder / "a.mp4", "--out", store).exit_code == 0
    (store / "README.txt").write_text("x")
    (store / "incoming").mkdir()
    return store


def test_overwrite_removes_only_the_schemas_nodes_and_keeps_a_users_files(video_folder, tmp_path):
    store = store_with_foreign_files(video_folder, tmp_path)
    result = extract(video_folder / "nested", "--out", store, "--overwrite")
    assert result.exit_code == 0, result.output
    assert open_store(str(store)).video_ids == ["b"]
    assert (store / "README.txt").read_text() == "x" and (store / "incoming").is_dir()


@pytest.mark.parametrize("through", ["folder", "file", "symlink"])
def test_an_input_inside_the_store_is_refused_before_anything_is_deleted(video_folder, tmp_path, through):
    store = store_with_foreign_files(video_folder, tmp_path)
    clip = store / "incoming" / "v.mp4"
    clip.write_bytes((video_folder / "a.mp4").read_bytes())
    given = {"folder": store / "incoming", "file": clip, "symlink": tmp_path / "link.mp4"}[through]
    if through == "symlink":  # a link outside the store to a video inside it
        given.symlink_to(clip)
    result = extract(given, "--out", store, "--overwrite")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"lies inside --out {store}" in result.output.strip().splitlines()[-1]  # after the random-init warning
    assert clip.is_file() and open_store(str(store)).video_ids == ["a"]


def test_overwrite_through_a_symlink_empties_the_store_it_points_to_and_keeps_the_link(video_folder, tmp_path):
    store = store_with_foreign_files(video_folder, tmp_path)
    link = tmp_path / "current"
    link.symlink_to(store, target_is_directory=True)
    result = extract(video_folder / "nested", "--out", link, "--overwrite")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == store.resolve()
    assert open_store(str(store)).video_ids == ["b"] and (store / "README.txt").is_file()


def test_a_remote_store_follows_the_same_rule(bucket, video_folder):
    import s3fs

    name, options = bucket
    fs = s3fs.S3FileSystem(**options)
    fs.pipe(f"{name}/data/keep.csv", b"a,b\n")
    with pytest.raises(FolderError, match="not made by astar"):
        claim_folder(f"s3://{name}/data", STORE, overwrite=True, storage_options=options, own=("zarr.json",))
    assert fs.cat(f"{name}/data/keep.csv") == b"a,b\n"
