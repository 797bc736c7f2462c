"""astar-extract as a user runs it: exit codes, one-line errors, no tracebacks."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from astar.extract import open_store
from astar.extract.cli import main
from tests.videos import write_raw_h264, write_video


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
        (["{folder}", "--out", "{tmp}/f.zarr", "--weights", "{folder}/a.mp4"], 1, "a.mp4: not a readable weights file: not a PyTorch file"),
        (["{folder}", "--out", "{tmp}/f.zarr", "--storage-option", "novalue"], 2, "expected KEY=VALUE"),
        (["{tmp}/empty_dir", "--out", "{tmp}/f.zarr"], 2, "no videos found"),
        (["{folder}", "--out", "{folder}/a.mp4"], 1, "a.mp4: is a file, not a feature store"),
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


# Inputs as a user gives them: skipped entries counted, special files refused at once,
# symlinks named as given, changed sources said, broken timestamps and rotation noted.


def test_a_folder_scan_ends_with_one_line_counting_what_it_skipped(video_folder, tmp_path):
    os.mkfifo(video_folder / "pipe.mp4")
    (video_folder / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (video_folder / "notes.txt").write_text("not a video")
    result = run(video_folder, "--out", tmp_path / "f.zarr")
    assert result.exit_code == 0, result.output
    assert "skipped 3 entries: " in result.output
    assert "1 special file (FIFO, socket or device)" in result.output and "1 dangling symlink" in result.output
    assert "3 done, 0 skipped, 0 failed" in result.output


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_of_the_batch_stored(video_folder, tmp_path):
    os.link(video_folder / "a.mp4", os.path.join(os.fsencode(video_folder), b"bad\xff.mp4"))  # a real video
    result = run(video_folder, "--out", tmp_path / "f.zarr")
    assert result.exit_code == 0, result.output
    assert f"skipped 1 entries: 1 path not UTF-8 (the store records ids and sources as text) (e.g. {video_folder}/bad\\xff.mp4)" in result.output
    assert "3 done, 0 skipped, 0 failed" in result.output and "Traceback" not in result.output
    assert open_store(str(tmp_path / "f.zarr")).video_ids == ["a", "c d", "nested/b"]


def test_a_file_name_with_a_newline_or_escape_keeps_its_failed_line_one_line(video_folder, tmp_path):
    (video_folder / "new\nline\x1b[2K.mp4").write_text("not a video")
    result = run(video_folder, "--out", tmp_path / "f.zarr")
    assert result.exit_code == 3, result.output
    [failed] = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert failed.startswith(f"failed: {video_folder}/new\\nline\\x1b[2K.mp4: FFmpeg cannot decode it")
    assert open_store(str(tmp_path / "f.zarr")).failures["video_id"].tolist() == ["new\nline\x1b[2K"]  # stored exactly


@pytest.mark.parametrize("command", ["extract", "extract --out", "verify", "train", "eval", "caption", "ablate"])
def test_a_file_name_with_a_newline_keeps_every_commands_error_line_one_line(tmp_path, command):
    from astar.extract.verify import main as verify_main
    from astar.pipelines.ablate import main as ablate_main
    from astar.train.cli import caption_command, eval_command, train_command

    target, empty = tmp_path / "new\nline", tmp_path / "empty\nnew\nline"
    target.write_text("a file where a folder belongs")
    empty.mkdir()
    commands = {
        "extract": (main, [str(empty), "--out", str(target)]),
        "extract --out": (main, [str(target), "--out", str(target)]),
        "verify": (verify_main, [str(target)]),
        "train": (train_command, [str(target), "--dataset", "msvd", "--device", "cpu"]),
        "eval": (eval_command, [str(target), "--device", "cpu"]),
        "caption": (caption_command, [str(target), str(target), "--device", "cpu"]),
        "ablate": (ablate_main, [str(target), "--dataset", "msvd", "--out", str(target), "--device", "cpu"]),
    }
    entry, args = commands[command]
    result = CliRunner().invoke(entry, args)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1, result.output
    assert "new\\nline" in errors[0], result.output
    assert "Traceback" not in result.output and not any(line.startswith("line") or line.startswith("here") for line in result.output.splitlines())


@pytest.mark.parametrize("text, shown", [
    ("café 视频 -x.mp4", "café 视频 -x.mp4"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x1b[31mred\x7f", "\\x1b[31mred\\x7f"),
    ("line\u2028sep", "line\\u2028sep"),
    (os.fsdecode(b"bad\xff\x80.mp4"), "bad\\xff\\x80.mp4"),
])
def test_printable_escapes_what_would_split_or_garble_a_line_and_keeps_the_rest(text, shown):
    from astar.extract.console import printable

    assert printable(text) == shown and len(printable(text).splitlines()) == 1


def test_special_files_and_symlinks_fail_at_once_under_the_name_given(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "secret.txt").write_text("not a video")
    (tmp_path / "link.mp4").symlink_to(tmp_path / "secret.txt")
    started = time.perf_counter()
    result = run(tmp_path / "pipe.mp4", tmp_path / "link.mp4", "--out", tmp_path / "f.zarr", "--decode-timeout", "300")
    assert time.perf_counter() - started < 120  # no decode timeout was waited for
    assert result.exit_code == 3, result.output
    assert f"failed: {tmp_path / 'pipe.mp4'}: not a regular file" in result.output
    assert f"failed: {tmp_path / 'link.mp4'}: FFmpeg cannot decode it" in result.output
    assert "secret.txt" not in result.output


def test_a_different_file_under_a_stored_id_is_said_kept_and_reextracted_when_asked(tmp_path):
    first, other = tmp_path / "clips" / "c00.mp4", tmp_path / "other" / "c00.mp4"
    for path, level in ((first, 40), (other, 200)):
        path.parent.mkdir()
        write_video(path, np.full((10, 32, 32, 3), level, np.uint8), fps=5)
    out = tmp_path / "f.zarr"
    assert run(first, "--out", out).exit_code == 0
    kept = run(other, "--out", out)
    assert kept.exit_code == 0, kept.output
    assert "0 done, 1 skipped" in kept.output
    assert f"changed: c00: extracted from {first}, now {other}" in kept.output and "--reextract-changed" in kept.output
    assert open_store(str(out)).info("c00")["source"] == str(first)
    again = run(other, "--out", out, "--reextract-changed")
    assert again.exit_code == 0 and "1 done, 0 skipped" in again.output, again.output
    assert open_store(str(out)).info("c00")["source"] == str(other)
    assert "changed:" not in run(other, "--out", out).output


def test_broken_timestamps_and_display_rotation_are_noted_and_recorded(tmp_path):
    write_raw_h264(tmp_path / "raw.h264", np.full((20, 32, 48, 3), 90, np.uint8), fps=10)
    write_video(tmp_path / "phone.mp4", np.full((4, 32, 48, 3), 90, np.uint8), fps=2, rotation=-90)
    result = run(tmp_path / "raw.h264", tmp_path / "phone.mp4", "--out", tmp_path / "f.zarr")
    assert result.exit_code == 0, result.output
    assert f"note: {tmp_path / 'raw.h264'}: timestamps ignored (a frame has no timestamp)" in result.output
    store = open_store(str(tmp_path / "f.zarr"))
    assert store.info("raw")["timing"].startswith("timestamps ignored")
    assert (store.info("phone")["rotation"], store.info("phone")["timing"]) == (-90, "timestamps")
    assert store.info("phone")["source_size"] == (tmp_path / "phone.mp4").stat().st_size


def test_a_store_of_other_settings_is_refused_with_the_cli_hint_the_library_leaves_out(video_folder, tmp_path):
    from astar.extract import ExtractionConfig, collect_inputs, extract_videos
    from astar.extract.store.reader import StoreMismatchError

    out = tmp_path / "feats.zarr"
    assert run(video_folder / "a.mp4", "--out", out).exit_code == 0
    result = run(video_folder / "a.mp4", "--out", out, "--seed", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "extracted with different settings" in result.output
    assert "use --overwrite to start it afresh, or another --out" in result.output
    with pytest.raises(StoreMismatchError) as raised:  # what the demo or a notebook sees: no flag it lacks
        extract_videos(collect_inputs([str(video_folder / "a.mp4")]), str(out), ExtractionConfig(device="cpu", seed=1),
                       progress=False)
    assert "--overwrite" not in str(raised.value) and "\n" not in str(raised.value)
