"""Training, evaluation and captioning when a store, a run directory, a checkpoint or an output folder is not sound.

Each case damages what a real run or the real extractor wrote, then runs the command or
function a user would, and checks that nothing is lost, one line says what happened, and
the run can go on.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from astar.extract.store.ids import video_key
from astar.train.checkpoint import load_checkpoint
from astar.train.cli import caption_command, eval_command, train_command
from astar.train.errors import TrainingError
from astar.train.rundir import RunPaths, resume_config
from astar.train.trainer import train


def parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunPaths(run_dir).checkpoint("last"))["model"]


def assert_same(first: Path, second: Path) -> None:
    one, two = parameters(first), parameters(second)
    assert one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def first_chunk(store: Path, video_id: str, array: str) -> Path:
    return next(path for path in sorted((store / "videos" / video_key(video_id) / array / "c").rglob("*")) if path.is_file())


def split_ids(synthetic_store, split: str) -> list[str]:
    captions = pd.read_csv(synthetic_store.captions)
    return sorted(set(captions[captions.split == split].video_id))


@pytest.fixture
def store_copy(synthetic_store, tmp_path) -> Path:
    return shutil.copytree(synthetic_store.store, tmp_path / "feats.zarr")


@pytest.fixture(scope="module")
def uninterrupted(synthetic_store, tmp_path_factory) -> Path:
    """Two epochs with a validation after each: what every interrupted run below must end up equal to."""
    return train(synthetic_store.train_config(tmp_path_factory.mktemp("whole") / "run", eval_every=1)).run_dir


def test_damage_met_in_training_saves_and_stops_and_resume_after_repair_is_exact(
        synthetic_store, store_copy, quick_config, uninterrupted):
    run = quick_config("run", store=str(store_copy), eval_every=1, max_steps=1, feature_cache="none")  # damage met streaming
    train(run)  # a checkpoint, then the damage: resuming reads the training videos again
    chunk = first_chunk(store_copy, split_ids(synthetic_store, "train")[0], "pool5")
    original = chunk.read_bytes()
    chunk.unlink()
    with pytest.raises(TrainingError) as raised:
        train(resume_config(run.out, max_steps=None))
    message = str(raised.value)
    assert "pool5: damaged (a chunk is missing)" in message and "\n" not in message
    assert f"astar-train --resume {run.out} continues exactly" in message
    chunk.write_bytes(original)
    finished = train(resume_config(run.out, max_steps=None))
    assert finished.epochs == 2
    assert_same(finished.run_dir, uninterrupted)


def test_damage_met_in_validation_keeps_the_epoch_and_resume_validates_it(
        synthetic_store, store_copy, quick_config, uninterrupted):
    chunk = first_chunk(store_copy, split_ids(synthetic_store, "val")[0], "fc7")
    original = chunk.read_bytes()
    chunk.write_bytes(original[:-5])
    run = quick_config("run", store=str(store_copy), eval_every=1, feature_cache="none")  # damage met streaming
    with pytest.raises(TrainingError, match="fc7: damaged \\(a chunk is corrupt"):
        train(run)
    assert load_checkpoint(RunPaths(Path(run.out)).checkpoint("last"))["progress"]["epoch"] == 1  # validation due
    chunk.write_bytes(original)
    finished = train(resume_config(run.out))
    expected = pd.read_csv(RunPaths(uninterrupted).metrics)
    pd.testing.assert_frame_equal(pd.read_csv(RunPaths(finished.run_dir).metrics), expected)
    assert_same(finished.run_dir, uninterrupted)


QUICK = ["--dataset", "csv", "--preset", "small", "--batch-size", "8", "--max-steps", "1", "--metric", "loss",
         "--device", "cpu", "--loader-workers", "0", "--quiet", "--layers", "pool5"]


def cli(command, *args: object):
    return CliRunner().invoke(command, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def one_step_run(synthetic_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one-step") / "run"
    result = cli(train_command, synthetic_store.store, "--annotations", synthetic_store.captions, "--out", out, *QUICK,
                 "--epochs", "1")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("again", ["same command", "--resume"])
def test_a_run_killed_before_its_first_checkpoint_starts_again(synthetic_store, one_step_run, tmp_path, again):
    run = shutil.copytree(one_step_run, tmp_path / "run")
    for checkpoint in RunPaths(run).checkpoints.iterdir():
        checkpoint.unlink()  # what a kill before the first checkpoint leaves
    args = (["--resume", run] if again == "--resume" else
            [synthetic_store.store, "--annotations", synthetic_store.captions, "--out", run, *QUICK, "--epochs", "1"])
    result = cli(train_command, *args)
    assert result.exit_code == 0, result.output
    assert f"{run}: stopped before its first checkpoint; starting it again" in result.stderr
    assert RunPaths(run).checkpoint("last").is_file()


def finished_copy(one_step_run, tmp_path) -> Path:
    """A finished run whose ``last.pt`` was deleted to save space, with a user's notes beside it."""
    run = shutil.copytree(one_step_run, tmp_path / "run")
    paths = RunPaths(run)
    if not paths.checkpoint("best").is_file():  # a one-step run validates nothing; a finished run has its best
        shutil.copy2(paths.checkpoint("last"), paths.checkpoint("best"))
    paths.checkpoint("last").unlink()
    (run / "NOTES.md").write_text("notes")
    return run


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("again", ["same command", "--resume", "--init-from it into it"])
def test_a_run_without_last_pt_is_never_wiped_when_it_holds_more_than_a_start(synthetic_store, one_step_run, tmp_path, again):
    run = finished_copy(one_step_run, tmp_path)
    before = listing(run)
    base = [synthetic_store.store, "--annotations", synthetic_store.captions, "--out", run, *QUICK, "--epochs", "1"]
    args = {"same command": base, "--resume": ["--resume", run], "--init-from it into it": [*base, "--init-from", run]}[again]
    result = cli(train_command, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = result.output.strip().splitlines()
    if again == "--init-from it into it":
        assert f"{run}: is the run --init-from starts from; choose another --out" in line
    else:
        assert f"{run}: has no checkpoints/last.pt to resume from, and holds NOTES.md, checkpoints/best.pt, which" in line
    assert listing(run) == before and (run / "NOTES.md").read_text() == "notes"


def test_a_crashed_checkpoint_write_does_not_stop_a_restart(synthetic_store, one_step_run, tmp_path):
    run = shutil.copytree(one_step_run, tmp_path / "run")
    for checkpoint in RunPaths(run).checkpoints.iterdir():
        checkpoint.rename(checkpoint.with_name(f".{checkpoint.name}.123.abcd.partial"))
    result = cli(train_command, "--resume", run)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in RunPaths(run).checkpoints.iterdir()) == ["last.pt"]  # the crash's debris gone


HOLD = "import sys, time; from astar.train.runlock import RunLock; RunLock().take(sys.argv[1]); print('held', flush=True); time.sleep(60)"


@pytest.mark.parametrize("how", ["--resume", "same --out"])
def test_a_run_in_use_by_another_process_is_refused_in_one_line_and_free_once_it_ends(synthetic_store, one_step_run, tmp_path, how):
    import subprocess
    import sys

    run = shutil.copytree(one_step_run, tmp_path / "run")
    RunPaths(run).checkpoint("last").unlink()
    RunPaths(run).checkpoint("best").unlink(missing_ok=True)  # a run stopped before its first checkpoint: restartable, if free
    args = (["--resume", run] if how == "--resume" else
            [synthetic_store.store, "--annotations", synthetic_store.captions, "--out", run, *QUICK, "--epochs", "1"])
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = listing(run)
        refused = cli(train_command, *args)
        assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
        (line,) = refused.output.strip().splitlines()
        assert f"{run}: another astar-train is using this run (pid {holder.pid})" in line
        assert listing(run) == before
    finally:
        holder.kill()
        holder.wait()
    result = cli(train_command, *args)  # the kernel dropped the killed holder's lock
    assert result.exit_code == 0, result.output
    assert RunPaths(run).checkpoint("last").is_file()


@pytest.mark.parametrize("edit, named", [
    (("lr = ", "lr = 0.5\n"), "lr 0.5 (was 0.01)"),
    (("hidden_dim = ", "hidden_dim = 128\n"), "[model]"),
])
def test_a_hand_edited_config_toml_is_refused_on_resume_in_one_line(one_step_run, tmp_path, edit, named):
    run = shutil.copytree(one_step_run, tmp_path / "run")
    config = RunPaths(run).config
    prefix, replacement = edit
    lines = config.read_text().splitlines(keepends=True)
    config.write_text("".join(replacement if line.startswith(prefix) else line for line in lines))
    before = listing(run)
    result = cli(train_command, "--resume", run, "--epochs", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = result.output.strip().splitlines()[-1:]
    assert f"{config}: {named} differ from what" in line and "the file was edited" in line
    assert listing(run) == before


def test_an_unedited_run_resumes(one_step_run, tmp_path):
    run = shutil.copytree(one_step_run, tmp_path / "run")
    result = cli(train_command, "--resume", run, "--epochs", "2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("occupant", ["a file", "a folder of notes"])
def test_astar_train_out_never_takes_what_astar_did_not_make(synthetic_store, tmp_path, occupant):
    out = tmp_path / "out"
    if occupant == "a file":
        out.write_text("data")
        expected = f"{out}: is a file, not a training run directory"
    else:
        out.mkdir()
        (out / "notes.txt").write_text("notes")
        expected = f"{out}: is not empty and was not made by astar"
    result = cli(train_command, synthetic_store.store, "--annotations", synthetic_store.captions, "--out", out, *QUICK)
    assert result.exit_code == 1 and expected in result.output and "Traceback" not in result.output
    assert (out.read_text() if occupant == "a file" else (out / "notes.txt").read_text()) in ("data", "notes")


def test_astar_eval_and_caption_refuse_output_folders_astar_did_not_make(one_step_run, synthetic_store, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    evaluated = cli(eval_command, one_step_run, "--checkpoint", "last", "--out", folder, "--device", "cpu", "-q")
    assert evaluated.exit_code == 1, evaluated.output
    assert f"{folder}: is not empty and was not made by astar, not an evaluation output folder" in evaluated.output
    video = next(Path(synthetic_store.captions).parent.glob("*.mp4"))
    captioned = cli(caption_command, one_step_run, video, "--checkpoint", "last", "--attention", folder, "--device", "cpu", "-q")
    assert captioned.exit_code == 1 and "not an attention figure folder" in captioned.output
    assert sorted(path.name for path in folder.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("command", ["astar-eval", "astar-caption", "astar-train --resume"])
def test_a_truncated_checkpoint_is_one_line_for_every_command(one_step_run, synthetic_store, tmp_path, command):
    run = shutil.copytree(one_step_run, tmp_path / "run")
    last = RunPaths(run).checkpoint("last")
    last.write_bytes(last.read_bytes()[:5000])  # truncate -s 5000 last.pt
    video = next(Path(synthetic_store.captions).parent.glob("*.mp4"))
    result = {
        "astar-eval": lambda: cli(eval_command, run, "--checkpoint", "last", "--device", "cpu", "-q"),
        "astar-caption": lambda: cli(caption_command, run, video, "--checkpoint", "last", "--device", "cpu", "-q"),
        "astar-train --resume": lambda: cli(train_command, "--resume", run, "--epochs", "2"),
    }[command]()
    assert result.exit_code == 1, result.output
    assert f"Error: {last}: not a readable checkpoint, truncated or corrupt" in result.output
    assert "Traceback" not in result.output and "weights_only" not in result.output
