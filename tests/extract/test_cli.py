"""astar-extract as a user runs it: exit codes, one-line errors, no tracebacks."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from astar.extract import open_store
from astar.extract.cli import main


def run(*args):
    return CliRunner().invoke(main, [*map(str, args), "--device", "cpu", "-q"])


def test_extracts_a_folder_and_exits_zero(video_folder, tmp_path):
    result = run(video_folder, "--out", tmp_path / "f.zarr")
    assert result.exit_code == 0, result.output
    assert "3 done, 0 skipped, 0 failed" in result.output
    assert "RANDOM-INIT" in result.output
    assert len(open_store(str(tmp_path / "f.zarr"))) == 3


def test_some_failed_exits_3_naming_the_file(video_folder, tmp_path):
    bad = video_folder / "bad.mp4"
    bad.write_text("nope")
    result = run(video_folder, "--out", tmp_path / "f.zarr")
    assert result.exit_code == 3
    assert f"failed: {bad}: FFmpeg cannot decode it" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--out", "x.zarr"], 2, "Missing argument"),
        (["{folder}", "--out", "{tmp}/f.zarr", "--weights", "{folder}/a.mp4"], 1, "a.mp4: not a plain tensor state dict"),
        (["{folder}", "--out", "{tmp}/f.zarr", "--storage-option", "novalue"], 2, "expected KEY=VALUE"),
        (["{tmp}/empty_dir", "--out", "{tmp}/f.zarr"], 2, "no videos found"),
        (["{folder}", "--out", "{folder}/a.mp4"], 1, "cannot write here"),
    ],
)
def test_usage_and_setup_errors_are_one_line(video_folder, tmp_path, args, code, message):
    (tmp_path / "empty_dir").mkdir()
    args = [a.format(folder=video_folder, tmp=tmp_path) for a in args]
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_console_script_help_shows_an_example():
    result = subprocess.run([sys.executable, "-m", "astar.extract.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "astar-extract videos/ --out feats.zarr" in result.stdout
