"""astar-eval on a run trained on a store built by real extraction: files, decoding, refusals, no Java."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from astar.extract import ExtractionConfig, collect_inputs, extract_videos, open_store
from astar.train.cli import eval_command
from astar.train.evaluate import EvalError, EvalConfig, evaluate
from astar.train.data.loader import CaptionBatches
from astar.train.loaded_run import load_run
from astar.train.trainer import train

QUICK = EvalConfig(device="cpu", loader_workers=0, progress=False, beam_size=2, max_len=8)


@pytest.fixture(scope="module")
def trained_run(synthetic_store, tmp_path_factory) -> Path:
    """Two epochs of the small preset on pool5 at a raised learning rate."""
    out = tmp_path_factory.mktemp("evaluate") / "run"
    train(synthetic_store.train_config(out, layers=("pool5",), lr=3e-3))
    return out


def split_captions(synthetic_store, split: str) -> dict[str, list[str]]:
    table = pd.read_csv(synthetic_store.captions)
    return {video_id: list(group.caption) for video_id, group in table[table.split == split].groupby("video_id")}


def run_cli(*args: object):
    return CliRunner().invoke(eval_command, [str(arg) for arg in args])


def test_writes_scores_and_one_row_per_test_video_with_its_references(trained_run, synthetic_store, tmp_path):
    result = evaluate(trained_run, EvalConfig(**{**QUICK.__dict__, "out": str(tmp_path / "eval")}))
    document = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert set(document["metrics"]) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert document["evaluation"]["split"] == "test" and document["evaluation"]["beam_size"] == 2
    per_video = pd.read_csv(tmp_path / "eval" / "per_video.csv", keep_default_na=False)
    expected = split_captions(synthetic_store, "test")
    assert sorted(per_video.video_id) == sorted(expected)
    for row in per_video.itertuples():
        assert row.references.split(" | ") == expected[row.video_id]
    assert list(per_video.columns[:3]) == ["video_id", "caption", "references"] and "CIDEr" in per_video.columns
    assert result.random_init


def test_default_output_folder_is_in_the_run_and_named_for_the_split(trained_run, synthetic_store):
    evaluate(trained_run, EvalConfig(**{**QUICK.__dict__, "split": "val"}))
    per_video = pd.read_csv(trained_run / "eval-val" / "per_video.csv")
    assert sorted(per_video.video_id) == sorted(split_captions(synthetic_store, "val"))


def test_beam_size_one_gives_the_models_greedy_captions(trained_run, synthetic_store, tmp_path):
    evaluate(trained_run, EvalConfig(**{**QUICK.__dict__, "beam_size": 1, "out": str(tmp_path)}))
    captions = pd.read_csv(tmp_path / "per_video.csv", keep_default_na=False).set_index("video_id").caption
    run = load_run(trained_run)
    videos = CaptionBatches(run.reader(open_store(str(synthetic_store.store))), list(captions.index))
    batch = videos[list(range(len(videos)))]
    tokens, _ = run.model.greedy(batch.videos, QUICK.max_len)
    greedy = {video_id: run.vocabulary.decode(row) for video_id, row in zip(batch.video_ids, tokens.tolist())}
    assert greedy == captions.to_dict()


def test_a_store_extracted_with_other_weights_is_refused_in_one_line(trained_run, synthetic_store, tmp_path):
    other = tmp_path / "other.zarr"
    clip = synthetic_store.clips[0]
    extract_videos(collect_inputs([str(synthetic_store.captions.parent / clip.filename)]), str(other),
                   ExtractionConfig(device="cpu", seed=1), progress=False)
    with pytest.raises(EvalError, match="extracted differently"):
        evaluate(trained_run, EvalConfig(**{**QUICK.__dict__, "store": str(other)}))
    result = run_cli(trained_run, "--store", other, "--device", "cpu", "--loader-workers", "0", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "'seed': 0" in errors[0] and "'seed': 1" in errors[0]


def test_without_java_meteor_is_missing_with_one_hint_and_the_rest_report(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    result = run_cli(trained_run, "--out", tmp_path / "eval", "--beam-size", "2", "--device", "cpu",
                     "--loader-workers", "0", "-q")
    assert result.exit_code == 0, result.output
    hints = [line for line in result.output.splitlines() if "Java" in line]
    assert len(hints) == 1 and "install a Java runtime" in hints[0]
    metrics = json.loads((tmp_path / "eval" / "scores.json").read_text())["metrics"]
    assert metrics["METEOR"] is None and all(metrics[key] is not None for key in ("BLEU-4", "ROUGE-L", "CIDEr"))
    assert "BLEU-4  METEOR  ROUGE-L  CIDEr" in result.output and "—" in result.output


def test_cli_prints_the_table_and_says_the_features_were_random_init(trained_run, tmp_path):
    result = run_cli(trained_run, "--out", tmp_path, "--beam-size", "1", "--max-len", "6", "--device", "cpu",
                     "--loader-workers", "0", "-q")
    assert result.exit_code == 0, result.output
    assert "test split, 2 videos, beam size 1, best checkpoint (epoch 2)" in result.output
    assert "BLEU-1  BLEU-2  BLEU-3  BLEU-4" in result.output
    assert "RANDOM-INIT C3D weights (seed 0)" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nowhere"], "nowhere: not an astar-train run directory"),
        (["{run}", "--store", "{tmp}/missing.zarr"], "missing.zarr: no feature store here"),
        (["{run}", "--annotations", "{tmp}/none.csv"], "none.csv: no such file or folder"),
        (["{run}", "--out", "/sys/astar-eval"], "/sys/astar-eval: cannot write here"),
    ],
)
def test_bad_input_is_one_line_without_traceback(trained_run, tmp_path, args, message):
    result = run_cli(*[arg.format(tmp=tmp_path, run=trained_run) for arg in args], "--device", "cpu", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output
