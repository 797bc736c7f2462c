"""astar-ablate on a store built by real extraction: one run per row, results files, the table, resuming."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from astar.extract import ExtractionConfig, collect_inputs, extract_videos
from astar.extract.folders import claim_folder
from astar.pipelines.ablate import ABLATION_FOLDER, AblationConfig, main
from astar.pipelines.paper_tables import table_row
from astar.pipelines.synthetic import CAPTIONS_FILE, generate_dataset
from astar.train.rundir import RunPaths, read_run_config
from astar.train.train_config import TrainConfig
from astar.train.trainer import train

N_VIDEOS = 8
TINY = ["--preset", "small", "--epochs", "1", "--batch-size", "8", "--beam-size", "2", "--device", "cpu",
        "--loader-workers", "0", "--quiet", "--lr", "5e-3", "--max-caption-len", "12"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """(store, captions.csv) of eight short generated clips, extracted with random-init C3D."""
    root = tmp_path_factory.mktemp("ablate")
    generate_dataset(root / "videos", n_videos=N_VIDEOS, duration_range_s=(1.5, 3.0))
    extract_videos(collect_inputs([str(root / "videos")]), str(root / "feats.zarr"), ExtractionConfig(device="cpu"),
                   progress=False)
    return root / "feats.zarr", root / "videos" / CAPTIONS_FILE


def ablate(store: tuple[Path, Path], out: Path, rows: str):
    return CliRunner().invoke(main, [str(store[0]), "--dataset", "csv", "--annotations", str(store[1]),
                                     "--rows", rows, "--out", str(out), *TINY])


@pytest.fixture(scope="module")
def first(store, tmp_path_factory):
    """Two rows, trained and evaluated once; (result, out folder)."""
    out = tmp_path_factory.mktemp("two-rows") / "ablation"
    return ablate(store, out, "pool5,fc7"), out


def test_each_row_is_a_run_evaluated_on_the_test_split(first):
    result, out = first
    assert result.exit_code == 0, result.output
    for row in ("fc7", "pool5"):
        scores = json.loads((out / row / "eval-test" / "scores.json").read_text())
        assert scores["evaluation"]["split"] == "test" and scores["evaluation"]["beam_size"] == 2
        assert RunPaths(out / row).checkpoint("best").is_file()


def test_results_files_hold_our_scores_in_the_papers_row_order(first):
    result, out = first
    table = pd.read_csv(out / "results.csv")
    assert list(table.row) == ["fc7", "pool5"]
    assert list(table.method) == ["C3D fc7 + LSTM", "C3D fc7 + pool5"]
    document = json.loads((out / "results.json").read_text())
    for record in document["rows"]:
        scores = json.loads((out / record["row"] / "eval-test" / "scores.json").read_text())["metrics"]
        assert record["CIDEr"] == scores["CIDEr"] and record["BLEU-4"] == scores["BLEU-4"]


def test_prints_the_table_in_the_papers_layout_with_unrun_rows_empty(first):
    result, _ = first
    lines = result.stdout.splitlines()
    assert lines[0] == "csv (C3D features): BLEU-4, METEOR and CIDEr ×100"
    assert lines[1].split() == ["Method", "BLEU-4", "METEOR", "CIDEr"]
    assert any(line.startswith("C3D fc7 + pool5") and "—" not in line for line in lines)
    assert any(line.startswith("Soft Attention") and line.split()[-3:] == ["—"] * 3 for line in lines)


def test_a_second_invocation_skips_finished_rows(store, first):
    _, out = first
    checkpoint = RunPaths(out / "fc7").checkpoint("last")
    before = checkpoint.stat().st_mtime_ns
    result = ablate(store, out, "pool5,fc7")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("already trained and evaluated on test; skipped") == 2
    assert checkpoint.stat().st_mtime_ns == before


def test_a_finished_row_made_with_other_settings_is_refused_not_reported(store, first):
    _, out = first
    other = [*TINY[:4], "--batch-size", "4", *TINY[6:]]
    result = CliRunner().invoke(main, [str(store[0]), "--dataset", "csv", "--annotations", str(store[1]),
                                       "--rows", "fc7", "--out", str(out), *other])
    assert result.exit_code == 1 and "skipped" not in result.stderr
    assert "trained with other batch_size" in result.output and "Traceback" not in result.output


def test_a_half_trained_row_resumes_from_its_last_checkpoint(store, tmp_path):
    out = tmp_path / "ablation"
    config = TrainConfig(store=str(store[0]), dataset="csv", annotations=str(store[1]), out=str(out / "pool4"),
                         preset="small", variant="single", layers=("pool4",), epochs=1, batch_size=8, max_steps=1, lr=5e-3, max_caption_len=12,
                         device="cpu", loader_workers=0, progress=False)
    claim_folder(str(out), ABLATION_FOLDER)  # as the interrupted astar-ablate made it
    train(config)
    result = ablate(store, out, "pool4")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr and "at epoch 1, step 1" in result.stderr


def test_recipe_flags_reach_every_row(first):
    _, out = first
    for row in ("pool5", "fc7"):
        config, _ = read_run_config(out / row)
        assert (config.lr, config.max_caption_len, config.batch_size) == (5e-3, 12, 8)


def test_the_small_preset_brings_its_recipe_and_flags_override_it() -> None:
    small = AblationConfig(store="s.zarr", dataset="csv", preset="small").train_config(table_row("fc7"))
    assert (small.lr, small.batch_size, small.patience) == (1e-2, 16, 10)
    paper = AblationConfig(store="s.zarr", dataset="csv", recipe={"lr": 1e-4, "word2vec": "vectors.bin", "samples": 6})
    config = paper.train_config(table_row("astar-hard"))
    assert (config.lr, config.batch_size, config.patience, config.word2vec, config.samples, config.attention) == (
        1e-4, 32, 5, "vectors.bin", 6, "hard")
    patient = AblationConfig(store="s.zarr", dataset="csv", preset="small", recipe={"patience": 3})
    assert patient.train_config(table_row("fc7")).patience == 3


@pytest.mark.parametrize("occupant", ["a folder of notes", "a file"])
def test_a_rows_folder_astar_did_not_make_is_never_deleted(store, tmp_path, occupant):
    out = tmp_path / "ablation"
    claim_folder(str(out), ABLATION_FOLDER)
    row = out / "fc7"
    if occupant == "a file":
        row.write_text("notes")
    else:
        row.mkdir()
        (row / "notes.txt").write_text("notes")
    result = ablate(store, out, "fc7")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{row}: is a file" in result.output if occupant == "a file" else "not made by astar" in result.output
    assert (row if occupant == "a file" else row / "notes.txt").read_text() == "notes"


def test_a_non_empty_out_folder_astar_did_not_make_is_refused(store, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "paper.tex").write_text("draft")
    result = ablate(store, out, "fc7")
    assert result.exit_code == 1 and f"{out}: is not empty and was not made by astar" in result.output
    assert sorted(path.name for path in out.iterdir()) == ["paper.tex"]


@pytest.mark.parametrize("damage, reason", [
    (lambda text: text[: len(text) // 2], "not a JSON scores file"),
    (lambda text: json.dumps({key: value for key, value in json.loads(text).items() if key != "metrics"}), "holds no metrics"),
])
def test_a_row_whose_scores_file_is_damaged_is_evaluated_again(store, first, damage, reason):
    # Last in this file: the row is evaluated again, leaving first's folder as it was.
    _, out = first
    scores = out / "pool5" / "eval-test" / "scores.json"
    complete = scores.read_text()
    scores.write_text(damage(complete))
    result = ablate(store, out, "pool5,fc7")
    assert result.exit_code == 0, result.output
    assert f"pool5: {scores}: {reason}" in result.stderr and "evaluating it again" in result.stderr
    assert result.stderr.count("skipped") == 1  # fc7's evaluation is intact
    assert json.loads(scores.read_text())["metrics"] == json.loads(complete)["metrics"]
