"""Training reads the same batches whatever ``--feature-cache`` says: same parameters, one line saying which path."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from astar.extract.store.ids import video_key
from astar.train.errors import TrainingError
from astar.train.rundir import RunPaths, resume_config
from astar.train.trainer import train


def parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(RunPaths(run_dir).checkpoint("last"), weights_only=True)["model"]


def assert_same_parameters(first: Path, second: Path) -> None:
    one, two = parameters(first), parameters(second)
    assert one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def test_streaming_and_the_host_cache_train_identical_parameters_with_or_without_workers(quick_config, capfd):
    streamed = train(quick_config("none", feature_cache="none")).run_dir
    assert "feature cache: none, as asked" in capfd.readouterr().err
    in_process = train(quick_config("host", feature_cache="host")).run_dir
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("feature cache:")]
    assert len(lines) == 1 and lines[0].startswith("feature cache: host (as asked): ")
    assert_same_parameters(in_process, streamed)
    assert_same_parameters(train(quick_config("workers", feature_cache="host", loader_workers=2)).run_dir, streamed)


def test_a_run_resumed_with_another_feature_cache_continues_exactly(quick_config):
    whole = train(quick_config("whole", feature_cache="none")).run_dir
    stopped = train(quick_config("stopped", feature_cache="host", loader_workers=1, max_steps=3))
    assert stopped.stopped == "max steps"
    resumed = train(resume_config(stopped.run_dir, max_steps=None, feature_cache="none"))
    assert resumed.epochs == 2
    assert_same_parameters(resumed.run_dir, whole)


def test_auto_caches_a_split_that_fits_and_says_so_in_one_line(quick_config, capfd):
    train(quick_config("auto", max_steps=1))
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("feature cache:")]
    assert len(lines) == 1 and lines[0].startswith("feature cache: host (auto): ")
    assert "available RAM" in lines[0] or "/dev/shm" in lines[0]


def test_a_gpu_cache_without_cuda_is_refused_before_training(quick_config):
    config = quick_config("device", feature_cache="device")
    with pytest.raises(TrainingError, match="^--feature-cache device: training on cpu, not CUDA; use --feature-cache auto or none$"):
        train(config)
    assert not RunPaths(Path(config.out)).checkpoint("last").exists()


def test_damage_met_while_caching_stops_the_run_before_training_in_one_line(synthetic_store, quick_config, tmp_path):
    copy = shutil.copytree(synthetic_store.store, tmp_path / "feats.zarr")
    captions = pd.read_csv(synthetic_store.captions)
    damaged = sorted(set(captions[captions.split == "val"].video_id))[0]
    chunk = next(path for path in sorted((copy / "videos" / video_key(damaged) / "fc7" / "c").rglob("*")) if path.is_file())
    chunk.write_bytes(chunk.read_bytes()[:-5])
    config = quick_config("damaged", store=str(copy), feature_cache="host")
    with pytest.raises(TrainingError) as raised:
        train(config)
    message = str(raised.value)
    assert "fc7: damaged (a chunk is corrupt" in message and "\n" not in message
    assert message.endswith("met while caching features, before training: repair the store and start again")
    assert not RunPaths(Path(config.out)).checkpoint("last").exists()
