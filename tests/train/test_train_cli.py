"""astar-train as a user runs it: the bare form, one-line errors without tracebacks, --help."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import zarr
from click.testing import CliRunner

from astar.train.checkpoint import load_checkpoint
from astar.train.cli import train_command
from astar.train.rundir import read_run_config
from astar.train.text import SPECIALS, Vocabulary

QUICK = ["--preset", "small", "--batch-size", "8", "--max-steps", "1", "--metric", "loss",
         "--device", "cpu", "--loader-workers", "0", "--quiet"]


def run(*args: object):
    return CliRunner().invoke(train_command, [str(arg) for arg in args])


def assert_one_line_error(result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_bare_form_finds_the_annotations_beside_the_store_and_reports_the_match(synthetic_store, tmp_path):
    result = run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5", *QUICK)
    assert result.exit_code == 0, result.output
    assert "12 captioned videos are in the store (60 of 60 captions kept)" in result.output
    assert "RANDOM-INIT C3D weights" in result.output
    config, _ = read_run_config(tmp_path / "run")
    assert config.annotations is None and config.layers == ("pool5",)


def test_resume_continues_a_stopped_run(synthetic_store, tmp_path):
    run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5", *QUICK)
    result = run("--resume", tmp_path / "run", "--max-steps", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "2 steps" in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{tmp}/missing.zarr", "--dataset", "csv"], 1, "missing.zarr: no feature store here"),
        (["{tmp}/v99.zarr", "--dataset", "csv"], 1, "v99.zarr: schema version 99"),
        (["{store}", "--dataset", "msvd", "--annotations", "{captions}"], 1, "youtube_mapping.txt"),
        (["{store}", "--dataset", "m-vad"], 1, "no m-vad annotations found; looked in"),
        (["{store}", "--dataset", "csv", "--annotations", "{tmp}/other.csv"], 1, "none of the 2 captioned videos is in the store"),
        (["{store}", "--dataset", "csv", "--layers", "pool6"], 2, "pool6: choose from pool2"),
        (["{store}", "--dataset", "csv", "--variant", "single"], 2, "variant 'single' needs exactly one layer"),
        (["{store}"], 2, "give STORE and --dataset"),
        (["--resume", "{tmp}/nowhere"], 1, "nowhere: not an astar-train run directory"),
    ],
)
def test_bad_input_is_one_line_without_traceback_or_run_directory(synthetic_store, tmp_path, args, code, message):
    zarr.open_group(tmp_path / "v99.zarr", mode="w").attrs["astar_schema_version"] = 99
    (tmp_path / "other.csv").write_text("video_id,caption,split\nelsewhere1,a cat,train\nelsewhere2,a dog,val\n")
    values = {"tmp": tmp_path, "store": synthetic_store.store, "captions": synthetic_store.captions}
    result = run(*[arg.format(**values) for arg in args], "--out", tmp_path / "run", *QUICK)
    assert_one_line_error(result, code, message)
    assert not (tmp_path / "run").exists()  # a run that cannot start leaves nothing to clean up


def test_a_min_count_that_keeps_no_word_is_refused_naming_the_largest_usable_one(synthetic_store, tmp_path):
    result = run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5",
                 "--min-count", "1000", *QUICK)
    assert_one_line_error(result, 1, "min_count 1000 keeps no word: the most frequent, ")
    largest = int(result.output.rsplit("the largest usable min_count is ", 1)[1].split()[0])
    assert not (tmp_path / "run").exists()
    kept = run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5",
               "--min-count", largest, *QUICK)
    assert kept.exit_code == 0, kept.output
    assert len(Vocabulary.load(tmp_path / "run" / "vocab.json")) > len(SPECIALS)  # the most frequent word(s)


def test_a_diverging_run_stops_in_one_line_naming_the_step(synthetic_store, tmp_path):
    result = run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5", *QUICK,
                 "--max-steps", "3", "--checkpoint-every", "1", "--lr", "3e37")
    assert_one_line_error(result, 1, "training diverged at step 2: the training loss is ")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["progress"]["step"] == 1


def test_resume_refuses_flags_that_would_change_the_run(synthetic_store, tmp_path):
    run(synthetic_store.store, "--dataset", "csv", "--out", tmp_path / "run", "--layers", "pool5", *QUICK)
    result = run("--resume", tmp_path / "run", "--lr", "0.1")
    assert_one_line_error(result, 2, "lr cannot change when resuming")


def test_help_explains_with_real_examples():
    result = subprocess.run([sys.executable, "-m", "astar.train.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "astar-train feats.zarr --dataset m-vad" in result.stdout
    assert "--resume RUN_DIR" in result.stdout


@pytest.mark.slow
def test_ctrl_c_stops_at_a_step_with_a_checkpoint_and_exit_130(synthetic_store, tmp_path):
    command = [
        sys.executable, "-m", "astar.train.cli", str(synthetic_store.store), "--dataset", "csv",
        "--out", str(tmp_path / "run"), "--preset", "small", "--layers", "pool5", "--batch-size", "8", "--metric", "loss",
        "--epochs", "50", "--checkpoint-every", "1", "--device", "cpu", "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    while not last.exists() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"continue with: astar-train --resume {tmp_path / 'run'}" in stderr
    assert "Traceback" not in stderr
    assert load_checkpoint(last)["progress"]["step"] >= 1
