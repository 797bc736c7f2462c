"""Self-critical training as a run: started from another run, recorded, cached, resumed exactly."""
from __future__ import annotations

import csv
import tomllib
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from astar.train.objectives.cider import DocumentFrequencies
from astar.train.cli import train_command
from astar.train.errors import TrainingError
from astar.train.loaded_run import load_run
from astar.train.rundir import RunPaths, read_run_config, resume_config, saved_run_differences
from astar.train.text import Vocabulary
from astar.train.trainer import train


@pytest.fixture(scope="module")
def trained(synthetic_store, tmp_path_factory):
    """A cross-entropy run of the small preset to start from."""
    return train(synthetic_store.train_config(tmp_path_factory.mktemp("xent") / "run", epochs=1))


def scst_config(synthetic_store, trained, out, **overrides):
    return synthetic_store.train_config(out, objective="scst", init_from=str(trained.run_dir), scst_samples=3,
                                        **overrides)


def parameters(run_dir, checkpoint: str = "last") -> dict[str, torch.Tensor]:
    return torch.load(RunPaths(run_dir).checkpoint(checkpoint), weights_only=True)["model"]


def test_a_self_critical_run_records_where_it_started_and_caches_its_frequencies(synthetic_store, trained, tmp_path):
    result = train(scst_config(synthetic_store, trained, tmp_path / "scst", epochs=1))
    paths = RunPaths(result.run_dir)
    document = tomllib.loads(paths.config.read_text())
    assert document["train"]["init_from"] == str(trained.run_dir.absolute())
    assert document["train"]["objective"] == "scst"
    origin = load_run(trained.run_dir)
    assert document["init"] == {"run": str(origin.run_dir), "checkpoint": "best", "epoch": origin.epoch,
                                "step": origin.step}
    assert Vocabulary.load(paths.vocabulary) == origin.vocabulary
    frequencies = DocumentFrequencies.load(paths.cider_frequencies)
    with open(synthetic_store.captions, newline="") as handle:
        train_videos = {row["video_id"] for row in csv.DictReader(handle) if row["split"] == "train"}
    assert frequencies.videos == len(train_videos)
    assert [row["epoch"] for row in result.history] == [0, 1] and result.steps >= 1
    # Epoch 0 validates the starting model: the origin's best score, and the best checkpoint to beat.
    assert result.history[0]["val_loss"] == pytest.approx(trained.best, rel=1e-6)
    assert result.history[0]["train_loss"] is None


def test_fine_tuning_that_never_beats_its_start_ends_with_the_start(synthetic_store, trained, tmp_path):
    # An lr this large wrecks the model in one step; the best checkpoint must stay the starting weights.
    result = train(scst_config(synthetic_store, trained, tmp_path / "wrecked", epochs=1, lr=10.0))
    assert result.best_epoch == 0
    best, origin = parameters(result.run_dir, "best"), load_run(trained.run_dir).model.state_dict()
    assert all(torch.equal(best[name], origin[name]) for name in origin)


def test_a_resumed_self_critical_run_gives_the_parameters_of_an_uninterrupted_one(synthetic_store, trained, tmp_path):
    # Sampled captions come from torch's RNG: any state not restored changes the result.
    whole = train(scst_config(synthetic_store, trained, tmp_path / "whole", max_steps=4, scst_baseline="mean"))
    stopped = train(scst_config(synthetic_store, trained, tmp_path / "stopped", max_steps=2, scst_baseline="mean"))
    resumed = train(resume_config(stopped.run_dir, max_steps=4))
    first, second = parameters(whole.run_dir), parameters(resumed.run_dir)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert resumed.history == whole.history


def test_starting_from_a_run_of_another_model_is_refused_in_one_line(synthetic_store, trained, tmp_path):
    with pytest.raises(TrainingError, match="its model differs in variant"):
        train(scst_config(synthetic_store, trained, tmp_path / "other", variant="fc7", layers=None))
    with pytest.raises(ValueError, match="give init_from"):
        synthetic_store.train_config(tmp_path / "none", objective="scst")


def test_the_command_takes_the_model_flags_of_the_run_it_starts_from(synthetic_store, trained, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(train_command, [
        str(synthetic_store.store), "--dataset", "csv", "--annotations", str(synthetic_store.captions),
        "--out", str(out), "--init-from", str(trained.run_dir), "--objective", "scst", "--max-steps", "1",
        "--metric", "loss", "--device", "cpu", "--loader-workers", "0", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    config, model = read_run_config(out)
    assert (config.preset, config.layers, config.min_count) == ("small", ("pool4", "pool5"), 1)
    assert model == load_run(trained.run_dir).model_config


def test_each_preset_brings_its_self_critical_recipe(synthetic_store, trained, tmp_path):
    small = scst_config(synthetic_store, trained, tmp_path / "small")
    assert (small.lr, small.temperature) == (1e-3, 0.3)
    paper = scst_config(synthetic_store, trained, tmp_path / "paper", preset="paper")
    assert (paper.lr, paper.temperature) == (2e-5, 1.0)
    assert scst_config(synthetic_store, trained, tmp_path / "given", temperature=0.7).temperature == 0.7


def test_a_cross_entropy_run_is_not_told_apart_by_settings_only_scst_reads(synthetic_store, trained):
    # Runs saved before the small recipe's temperature changed hold temperature 1.0; they must still resume.
    config = replace(read_run_config(trained.run_dir)[0], temperature=0.9, scst_samples=5)
    assert saved_run_differences(config) == []
    assert saved_run_differences(replace(config, lr=0.5)) == ["lr"]


def test_each_steps_reward_is_logged_at_that_step_beside_its_loss(synthetic_store, trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(scst_config(synthetic_store, trained, tmp_path / "logged", batch_size=4))
    events = EventAccumulator(str(RunPaths(result.run_dir).tensorboard))
    events.Reload()
    steps = {tag: [event.step for event in events.Scalars(tag)] for tag in ("train/loss", "train/reward")}
    assert result.steps > 1
    assert steps["train/reward"] == steps["train/loss"] == list(range(1, result.steps + 1))
