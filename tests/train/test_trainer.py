"""The trainer on a store built by real extraction: learning, the run directory, exact resume, safe checkpoints."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from astar.extract import open_store
from astar.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from astar.train.data.loader import CaptionBatches, feature_statistics
from astar.train.model.astar import ASTAR
from astar.train.model.config import ModelConfig
from astar.train.data.captions import caption_data
from astar.train.errors import TrainingError
from astar.train.loaded_run import load_run
from astar.train.rundir import RunPaths, read_run_config, resume_config, saved_run_differences
from astar.train.text import EOS_ID, PAD_ID, Vocabulary
from astar.train.steps import finite_weights
from astar.train.trainer import train


def parameters(run_dir: Path, checkpoint: str = "last") -> dict[str, torch.Tensor]:
    return torch.load(RunPaths(run_dir).checkpoint(checkpoint), weights_only=True)["model"]


def assert_same_parameters(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def finished_run(synthetic_store, tmp_path_factory):
    """Three epochs of the small preset at a raised learning rate, validated on the loss every epoch."""
    out = tmp_path_factory.mktemp("finished") / "run"
    return train(synthetic_store.train_config(out, epochs=3, lr=3e-3, loader_workers=2))


def test_training_loss_goes_down(finished_run):
    losses = [row["train_loss"] for row in finished_run.history]
    assert len(losses) == 3
    assert losses[-1] < losses[0] - 0.1


def test_inputs_are_normalised_by_per_channel_statistics_of_the_training_videos(finished_run, synthetic_store):
    loaded = load_run(finished_run.run_dir)
    store = open_store(str(synthetic_store.store))
    train_ids = caption_data(loaded.config, store, loaded.vocabulary).train_ids
    expected = feature_statistics(loaded.reader(store), train_ids)
    assert set(expected) == {"pool4", "pool5", "fc7"}
    normaliser = loaded.model.normaliser
    for name, stats in expected.items():
        assert (stats.mean >= 0).all() and stats.mean.max() > 0  # post-ReLU maps: centring is not a no-op
        np.testing.assert_allclose(getattr(normaliser, f"{name}_shift").numpy(), stats.mean, rtol=1e-5)
        np.testing.assert_allclose(getattr(normaliser, f"{name}_scale").numpy(), stats.std, rtol=1e-5)
    recorded = tomllib.loads(RunPaths(finished_run.run_dir).config.read_text())["features"]["normalisation"]
    assert recorded["pool4"]["shift"] == pytest.approx(float(expected["pool4"].mean.mean()), rel=1e-5)
    assert getattr(normaliser, "pool2_shift").abs().sum() == 0  # a layer the model does not read keeps shift 0


@pytest.fixture(scope="module")
def learned_run(synthetic_store, tmp_path_factory):
    """Fifteen epochs of the small preset at a high learning rate: long enough to learn from the video."""
    out = tmp_path_factory.mktemp("learned") / "run"
    return train(synthetic_store.train_config(out, epochs=15, lr=1e-2))


def test_the_trained_model_reads_the_video_not_only_the_words(learned_run, synthetic_store):
    # A model that ignores its input (e.g. saturated by unscaled C3D activations) scores every
    # caption the same whichever video it is paired with.
    loaded = load_run(learned_run.run_dir, checkpoint="last")
    store = open_store(str(synthetic_store.store))
    data = caption_data(loaded.config, store, loaded.vocabulary)
    pairs = CaptionBatches(loaded.reader(store), data.train_ids, data.train_captions)
    batch = pairs[list(range(len(pairs)))]
    ids = batch.video_ids
    shift = next(k for k in range(1, len(ids)) if all(ids[i] != ids[(i + k) % len(ids)] for i in range(len(ids))))
    other_video = [(i + shift) % len(ids) for i in range(len(ids))]
    with torch.no_grad():
        matched = loaded.model.loss(batch.videos, batch.tokens, batch.caption_videos).item()
        mismatched = loaded.model.loss(batch.videos, batch.tokens[other_video], batch.caption_videos).item()
    assert matched < mismatched - 0.05


def test_the_run_directory_holds_config_vocabulary_store_identity_and_metrics(finished_run, synthetic_store):
    paths = RunPaths(finished_run.run_dir)
    config, model_config = read_run_config(paths.root)
    assert config.out == str(paths.root) and config.lr == 3e-3 and config.layers == ("pool4", "pool5")
    assert model_config.layer_channels == (8, 16, 16, 32) and model_config.eos_id == 2
    assert len(Vocabulary.load(paths.vocabulary)) == model_config.vocab_size
    assert json.loads(paths.store_attrs.read_text()) == open_store(str(synthetic_store.store)).attrs
    rows = paths.metrics.read_text().splitlines()
    health = "dead_pool4,alpha_entropy,beta_pool4,top_pool4,beta_pool5,top_pool5"  # astar.train.model.health
    assert rows[0] == f"epoch,step,train_loss,val_loss,{health}" and len(rows) == 4


def test_tensorboard_records_training_and_validation_losses(finished_run):
    events = EventAccumulator(str(RunPaths(finished_run.run_dir).tensorboard))
    events.Reload()
    assert {"train/loss", "val/val_loss"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss")) == finished_run.steps


def test_checkpoints_load_with_weights_only(finished_run):
    for name in ("last", "best"):
        document = torch.load(RunPaths(finished_run.run_dir).checkpoint(name), weights_only=True)
        assert document["format"] == "astar-checkpoint"


def test_load_run_gives_the_best_model_in_eval_mode_ready_to_caption(finished_run, synthetic_store):
    loaded = load_run(finished_run.run_dir)
    assert not loaded.model.training
    assert loaded.epoch == finished_run.best_epoch
    assert_same_parameters(loaded.model.state_dict(), parameters(finished_run.run_dir, "best"))
    store = open_store(str(synthetic_store.store))
    assert loaded.identity_differences(store.attrs) == []
    batch = CaptionBatches(loaded.reader(store), store.video_ids[:2])[[0, 1]]
    tokens, _ = loaded.model.greedy(batch.videos, max_len=5)
    assert all(isinstance(loaded.vocabulary.decode(row), str) for row in tokens.tolist())


def test_resuming_after_max_steps_gives_the_parameters_of_an_uninterrupted_run(quick_config):
    # Hard attention samples m_t from torch's RNG: any state not restored changes the result.
    uninterrupted = train(quick_config("whole", attention="hard", captions_per_video=4, max_steps=8, loader_workers=2))
    stopped = train(quick_config("stopped", attention="hard", captions_per_video=4, max_steps=3))
    assert stopped.stopped == "max steps" and stopped.steps == 3
    resumed = train(resume_config(stopped.run_dir, max_steps=8))
    assert resumed.steps == 8
    assert_same_parameters(parameters(uninterrupted.run_dir), parameters(resumed.run_dir))
    assert resumed.history == uninterrupted.history


@pytest.mark.slow
def test_resuming_after_sigkill_gives_the_parameters_of_an_uninterrupted_run(quick_config, tmp_path):
    killed = quick_config("killed")
    command = [
        sys.executable, "-m", "astar.train.cli", killed.store, "--dataset", "csv", "--annotations", killed.annotations,
        "--out", killed.out, "--preset", "small", "--layers", "pool4,pool5", "--batch-size", "8", "--epochs", "2",
        "--metric", "loss", "--min-count", "1", "--device", "cpu", "--loader-workers", "0", "--quiet",
        "--checkpoint-every", "2",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = RunPaths(Path(killed.out)).checkpoint("last")
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(last)["progress"]["step"]
    assert 2 <= killed_at < 10, process.stderr.read()  # killed mid-run: 2 epochs are 10 steps

    uninterrupted = train(quick_config("whole"))
    resumed = train(resume_config(killed.out))
    assert resumed.steps == uninterrupted.steps == 10
    assert_same_parameters(parameters(uninterrupted.run_dir), parameters(resumed.run_dir))


def test_a_truncated_checkpoint_is_refused_with_a_clear_message(finished_run, tmp_path):
    copy = shutil.copytree(finished_run.run_dir, tmp_path / "copy")
    last = RunPaths(copy).checkpoint("last")
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"^{last}: not a readable checkpoint, truncated or corrupt"):
        train(resume_config(copy))


def test_a_foreign_checkpoint_is_refused_with_a_clear_message(finished_run, tmp_path):
    copy = shutil.copytree(finished_run.run_dir, tmp_path / "copy")
    best = RunPaths(copy).checkpoint("best")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, best)
    with pytest.raises(CheckpointError, match=rf"^{best}: not an astar checkpoint"):
        load_run(copy)


@pytest.mark.parametrize("which", ["best", "last"])
def test_weights_that_do_not_fit_the_model_are_refused_in_one_line(finished_run, tmp_path, which):
    copy = shutil.copytree(finished_run.run_dir, tmp_path / "copy")
    path = RunPaths(copy).checkpoint(which)
    document = load_checkpoint(path)
    renamed = next(name for name in document["model"] if name.endswith(".weight"))
    document["model"][renamed.replace(".weight", ".kernel")] = document["model"].pop(renamed)  # a layer another version named
    save_checkpoint(document, path)
    with pytest.raises(CheckpointError, match=rf"^{path}: its weights do not fit the model .*{renamed}") as refused:
        load_run(copy, which) if which == "best" else train(resume_config(copy, epochs=3))
    assert "\n" not in str(refused.value)


KILLED_SAVE = """
import sys, torch
from astar.train.checkpoint import save_checkpoint
save_checkpoint({"model": {"weight": torch.zeros(4)}}, sys.argv[1])
print("saved", flush=True)
save_checkpoint({"model": {"weight": torch.ones(64 * 2**20)}}, sys.argv[1])
"""


def test_a_kill_while_saving_never_replaces_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "saved"
    while not list(tmp_path.glob(".last.pt.*.partial")) and process.poll() is None:
        pass
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL  # killed while writing the 256 MiB replacement
    assert torch.equal(load_checkpoint(path)["model"]["weight"], torch.zeros(4))


def test_a_checkpoint_write_leaves_no_temporary_file(tmp_path):
    save_checkpoint({"model": {}}, tmp_path / "best.pt")
    assert [child.name for child in tmp_path.iterdir()] == ["best.pt"]


def test_resume_refuses_settings_that_differ_from_the_run(finished_run):
    changed = replace(resume_config(finished_run.run_dir), lr=1.0)
    with pytest.raises(TrainingError, match="lr differ from the run's config.toml"):
        train(changed)


def test_resume_refuses_to_change_the_model_through_overrides(finished_run):
    with pytest.raises(ValueError, match="variant cannot change when resuming"):
        resume_config(finished_run.run_dir, variant="fc7")


def test_a_new_run_refuses_a_run_directory_that_holds_a_checkpoint(finished_run, quick_config):
    with pytest.raises(TrainingError, match="holds a run; pass --resume"):
        train(quick_config(out=str(finished_run.run_dir)))


def test_early_stopping_ends_the_run_after_patience_validations_without_improvement(quick_config):
    # At a negligible learning rate the greedy captions, and so their CIDEr, never change.
    result = train(quick_config(metric="CIDEr", lr=1e-12, epochs=10, patience=2, batch_size=20))
    assert result.stopped == "early stopping"
    assert (result.epochs, result.best_epoch) == (3, 1)
    assert {"BLEU-4", "ROUGE-L", "CIDEr"} <= set(result.history[0])


def test_word2vec_vectors_initialise_the_embedding(quick_config, tmp_path):
    vectors = {"circle": [0.5] * 32, "red": [-0.25] * 32}
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{word} {' '.join(map(str, values))}\n" for word, values in vectors.items()))
    result = train(quick_config(word2vec=str(path), lr=1e-12, max_steps=1))
    loaded = load_run(result.run_dir, checkpoint="last")
    for word, values in vectors.items():
        embedding = loaded.model.embedding.weight[loaded.vocabulary.id(word)]
        torch.testing.assert_close(embedding, torch.tensor(values), rtol=0, atol=1e-6)


def test_a_run_is_the_same_run_whether_its_paths_are_given_relative_or_absolute(quick_config, tmp_path, monkeypatch):
    (tmp_path / "vectors.txt").write_text("circle " + " ".join(["0.5"] * 32) + "\n")
    monkeypatch.chdir(tmp_path)
    config = quick_config(word2vec="vectors.txt", max_steps=1)
    train(config)
    assert saved_run_differences(config) == []  # the run saved word2vec as an absolute path
    assert saved_run_differences(replace(config, word2vec=None)) == ["word2vec"]


def test_meteor_without_java_is_refused_before_training(quick_config, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(TrainingError, match="--metric METEOR needs Java"):
        train(quick_config(metric="METEOR"))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_trains_with_finite_losses(quick_config, precision):
    result = train(quick_config(device="cuda", precision=precision, attention="hard", epochs=1))
    assert result.steps == 5
    assert all(torch.isfinite(torch.tensor(row["val_loss"])) for row in result.history)


def test_a_validation_that_fails_never_loses_the_epochs_training(quick_config, monkeypatch, tmp_path):
    # A Java that starts for the check before training but dies when METEOR runs: validation fails after epoch 1.
    broken_java = tmp_path / "bin" / "java"
    broken_java.parent.mkdir()
    broken_java.write_text("#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.' >&2\nexit 1\n")
    broken_java.chmod(0o755)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{broken_java.parent}{os.pathsep}{path}")
    config = quick_config(metric="METEOR", epochs=1)
    with pytest.raises(TrainingError, match="METEOR could not be computed"):
        train(config)
    saved = torch.load(RunPaths(Path(config.out)).checkpoint("last"), weights_only=True)
    assert saved["progress"]["epoch"] == 1 and saved["progress"]["history"] == []
    monkeypatch.setenv("PATH", path)
    result = train(resume_config(config.out))
    assert [row["epoch"] for row in result.history] == [1]  # the failed validation runs on resume


def test_a_training_loss_that_is_not_finite_stops_the_run_and_keeps_the_last_checkpoint(quick_config):
    # Adam's first step moves every weight by about lr: at 3e37 the next forward pass overflows.
    config = quick_config(lr=3e37, epochs=1, checkpoint_every=1, layers=("pool5",))
    paths = RunPaths(Path(config.out))
    expected = (rf"^training diverged at step 2: the training loss is (nan|inf); {re.escape(str(paths.checkpoint('last')))} "
                r"keeps step 1; try a lower --lr$")
    with pytest.raises(TrainingError, match=expected):
        train(config)
    saved = load_checkpoint(paths.checkpoint("last"))
    assert saved["progress"]["step"] == 1
    assert all(torch.isfinite(value).all() for value in saved["model"].values() if value.is_floating_point())
    assert not paths.checkpoint("best").exists()


def test_a_validation_loss_that_is_not_finite_stops_the_run_before_it_saves_a_best_checkpoint(quick_config):
    # At lr 1e30 the first epoch's training losses stay finite, but the model it ends with overflows on val.
    config = quick_config(lr=1e30, epochs=1, layers=("pool5",))
    with pytest.raises(TrainingError, match=r"^training diverged at step 5: the validation loss is (nan|inf); .*keeps step 5"):
        train(config)
    assert not RunPaths(Path(config.out)).checkpoint("best").exists()


def test_weights_holding_an_inf_or_a_nan_are_not_finite():
    model = ASTAR(ModelConfig.small(12, pad_id=PAD_ID, eos_id=EOS_ID))
    assert finite_weights(model)
    with torch.no_grad():
        model.word_scores.bias[0] = float("nan")
    assert not finite_weights(model)
    model = ASTAR(ModelConfig.small(12, pad_id=PAD_ID, eos_id=EOS_ID))
    model.normaliser.fc7_scale[0] = float("inf")  # a buffer is saved with the weights too
    assert not finite_weights(model)
