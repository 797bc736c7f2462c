"""The demo end to end, reduced (ten clips, one Dask worker, one epoch): every stage's output, then a resumed rerun."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from astar.pipelines.demo import main
from astar.pipelines.synthetic import attribute_accuracy

REDUCED = ["--videos", "10", "--workers", "1", "--epochs", "1", "--beam-size", "1", "--quiet"]
"""Greedy captions: after one epoch a wider beam prefers the empty caption, which has no attention to draw."""


def run_demo(out: Path):
    return CliRunner().invoke(main, ["--out", str(out), *REDUCED])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(result, out folder) of one reduced demo run."""
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    return run_demo(out), out


@pytest.mark.slow
def test_runs_every_stage_and_prints_scores_captions_and_figures(demo):
    result, out = demo
    assert result.exit_code == 0, result.output
    for stage in range(1, 6):
        assert f"[{stage}/5]" in result.stderr
    stdout = result.stdout
    assert "extraction: 10 done, 0 skipped, 0 failed" in stdout
    assert "training: max epochs after 1 epochs" in stdout
    assert "BLEU-1  BLEU-2  BLEU-3  BLEU-4  METEOR  ROUGE-L  CIDEr" in stdout
    assert "test captions naming the right colour" in stdout and "(chance: 20 %, 33 %, 50 %, 25 %, 50 %)" in stdout
    test_ids = list(pd.read_csv(out / "run" / "eval-test" / "per_video.csv").video_id)
    for video_id in test_ids:
        assert f"  {video_id}  " in stdout  # its caption beside a reference
    assert "(held out; truth: '" in stdout
    assert (out / "heldout" / "heldout.mp4").is_file()


@pytest.mark.slow
def test_writes_an_attention_figure_for_two_test_videos_and_the_held_out_one(demo):
    _, out = demo
    test_ids = list(pd.read_csv(out / "run" / "eval-test" / "per_video.csv").video_id)
    figures = sorted(path.name for path in (out / "figures").glob("*.png"))  # beside astar's folder marker
    assert figures == sorted([f"{video_id}.png" for video_id in test_ids[:2]] + ["heldout.png"])
    for figure in (out / "figures").glob("*.png"):
        with Image.open(figure) as image:
            assert image.format == "PNG"


@pytest.mark.slow
def test_every_output_says_the_c3d_weights_are_random_init(demo):
    result, _ = demo
    stdout = result.stdout
    for heading in ("store: ", "test scores", "captions of video files"):
        line = next(line for line in stdout.splitlines() if line.startswith(heading))
        assert "RANDOM-INIT C3D weights (seed 0)" in line
    assert "WARNING: features from RANDOM-INIT C3D weights (seed 0)" in result.stderr


@pytest.mark.slow
def test_a_rerun_reuses_the_videos_the_store_and_the_trained_run(demo):
    _, out = demo
    checkpoint = out / "run" / "checkpoints" / "last.pt"
    before = checkpoint.stat().st_mtime_ns
    result = run_demo(out)
    assert result.exit_code == 0, result.output
    assert "synthetic videos: reusing" in result.stderr
    assert "extraction: 0 done, 10 skipped, 0 failed" in result.stdout
    assert "resuming" in result.stderr and "max epochs after 1 epochs" in result.stdout
    assert checkpoint.stat().st_mtime_ns == before  # the finished run was kept, not trained further


def test_attribute_accuracy_accepts_paraphrases_and_refuses_missing_or_mixed_values():
    truth = "a small red circle moves to the left"
    accuracy = attribute_accuracy([
        ("a little red circle travels left across the screen", truth),  # every attribute, in other words
        ("two red squares are moving", truth),                          # no size, no direction
        ("a small red blue circle moves up", truth),                    # two colours
    ])
    assert accuracy == {"colour": (2, 3), "shape": (2, 3), "size": (2, 3), "direction": (1, 3), "count": (2, 3)}
