"""astar-caption on generated video files: captions, bad input, JSON, attention figures, weights refusals."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from astar.extract.c3d import random_init
from astar.extract.clitools import EXIT_SOME_FAILED
from astar.train.caption import _FigureNames
from astar.train.cli import caption_command
from astar.train.figures import MAX_COLUMNS
from astar.train.trainer import train

PANEL_WIDTH_PX = 170
"""``figures.attention_figure`` gives each word column 1.7 inches, saved at 100 dpi."""


@pytest.fixture(scope="module")
def trained_run(synthetic_store, tmp_path_factory) -> Path:
    """Two epochs of the small ASTAR preset on pool4 and pool5, enough for captions with words in them."""
    out = tmp_path_factory.mktemp("caption") / "run"
    train(synthetic_store.train_config(out, lr=1e-2))
    return out


@pytest.fixture(scope="module")
def videos(synthetic_store) -> list[Path]:
    folder = synthetic_store.captions.parent
    return [folder / clip.filename for clip in synthetic_store.clips[:2]]


def run_cli(*args: object):
    return CliRunner().invoke(caption_command, [str(arg) for arg in args] + ["--device", "cpu", "-q"])


def one_error_line(output: str) -> str:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, output
    return errors[0]


def test_prints_one_caption_per_video_in_the_run_vocabulary(trained_run, videos):
    result = run_cli(trained_run, *videos)
    assert result.exit_code == 0, result.output
    vocabulary = set(json.loads((trained_run / "vocab.json").read_text())["tokens"])
    lines = [line for line in result.stdout.splitlines() if line.startswith(tuple(map(str, videos)))]
    assert [line.split(": ")[0] for line in lines] == [str(video) for video in videos]
    for line in lines:
        assert set(line.split(": ", 1)[1].split()) <= vocabulary
    assert "RANDOM-INIT C3D weights (seed 0)" in result.output


def test_missing_and_corrupt_files_fail_alone_with_one_line_each(trained_run, videos, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(videos[0].read_bytes()[:2000])
    missing = tmp_path / "missing.mp4"
    result = run_cli(trained_run, missing, videos[0], corrupt)
    assert result.exit_code == EXIT_SOME_FAILED
    assert "Traceback" not in result.output
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert failures[0] == f"failed: {missing}: file not found"
    assert failures[1].startswith(f"failed: {corrupt}: ") and len(failures) == 2
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [str(videos[0])]


def test_json_lists_every_video_with_caption_log_probability_or_error(trained_run, videos, tmp_path):
    result = run_cli(trained_run, videos[0], tmp_path / "missing.mp4", "--json")
    assert result.exit_code == EXIT_SOME_FAILED
    records = json.loads(result.stdout)
    assert [record["video"] for record in records] == [str(videos[0]), str(tmp_path / "missing.mp4")]
    assert records[0]["error"] is None and records[0]["log_prob"] < 0 and isinstance(records[0]["caption"], str)
    assert records[1] == {"video": str(tmp_path / "missing.mp4"), "caption": None, "log_prob": None,
                          "error": "file not found"}


def test_attention_writes_one_png_per_video_with_one_panel_per_word(trained_run, videos, tmp_path):
    result = run_cli(trained_run, *videos, "--attention", tmp_path / "figures", "--json", "--max-len", "6")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert sorted(path.name for path in (tmp_path / "figures").glob("*.png")) == sorted(video.stem + ".png" for video in videos)
    for record in records:
        words = record["caption"].split()
        assert 0 < len(words) <= MAX_COLUMNS
        with Image.open(record["figure"]) as figure:
            assert figure.format == "PNG" and figure.width == PANEL_WIDTH_PX * len(words)


def test_weights_for_a_random_init_run_are_refused(trained_run, videos, tmp_path):
    weights = tmp_path / "c3d.pickle"
    weights.write_bytes(b"not used")
    result = run_cli(trained_run, videos[0], "--weights", weights)
    assert result.exit_code == 1
    error = one_error_line(result.output)
    assert str(weights) in error and "RANDOM-INIT C3D weights (seed 0)" in error and "leave out --weights" in error


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> tuple[Path, str]:
    """A C3D state dict saved as c3d.pickle would be (random seed 7), and its sha256."""
    path = tmp_path_factory.mktemp("weights") / "other-c3d.pickle"
    torch.save(random_init(seed=7)[0].state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def run_on_file_weights(trained_run: Path, tmp_path: Path, name: str, sha256: str) -> Path:
    """A copy of the run that says its store was extracted with weights ``name`` of ``sha256``."""
    copy = tmp_path / "file-weights-run"
    shutil.copytree(trained_run, copy)
    attrs = json.loads((copy / "store_attrs.json").read_text())
    attrs["model"] = {"architecture": "c3d-sports1m", "weights": name, "format": "c3d.pickle", "sha256": sha256,
                      "seed": None, "random_init": False}
    (copy / "store_attrs.json").write_text(json.dumps(attrs))
    return copy


def test_a_file_weights_run_needs_its_weights(trained_run, videos, tmp_path):
    run = run_on_file_weights(trained_run, tmp_path, "c3d.pickle", "ab" * 32)
    error = one_error_line(run_cli(run, videos[0]).output)
    assert "C3D weights c3d.pickle (sha256 abababababab…)" in error and "pass --weights" in error


def test_weights_of_another_sha256_are_refused_naming_both(trained_run, videos, weights_file, tmp_path):
    path, sha256 = weights_file
    run = run_on_file_weights(trained_run, tmp_path, "c3d.pickle", "ab" * 32)
    result = run_cli(run, videos[0], "--weights", path)
    assert result.exit_code == 1
    error = one_error_line(result.output)
    assert f"{path}: sha256 {sha256[:12]}…" in error and "c3d.pickle (sha256 abababababab…)" in error


def test_the_weights_the_run_recorded_are_accepted(trained_run, videos, weights_file, tmp_path):
    path, sha256 = weights_file
    run = run_on_file_weights(trained_run, tmp_path, path.name, sha256)
    result = run_cli(run, videos[0], "--weights", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{videos[0]}: ") and "RANDOM-INIT" not in result.output


def test_attention_figure_names_never_overwrite_one_another(tmp_path):
    names = _FigureNames(tmp_path)
    paths = [names.next(video) for video in ("x/a.mp4", "a-2.mp4", "y/a.mkv", "b.webm")]
    assert [path.name for path in paths] == ["a.png", "a-2.png", "a-3.png", "b.png"]


def test_a_fifo_fails_at_once_and_decode_timeout_is_an_option(trained_run, videos, tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    result = run_cli(trained_run, videos[0], tmp_path / "pipe.mp4", "--decode-timeout", "30")
    assert result.exit_code == 3, result.output
    assert f"failed: {tmp_path / 'pipe.mp4'}: not a regular file" in result.output
