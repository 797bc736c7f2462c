"""A feature store built by real extraction of generated clips, shared by the training tests.

``synthetic_store`` is session-wide: twelve captioned clips of 1.5–10 s (so pool5
lengths differ: 16 or 32 padded frames), their ``captions.csv`` (generic CSV form,
70/15/15 % train/val/test), extracted on the CPU with random-init C3D. A copy of the
captions sits at the default annotation location, ``annotations/csv/`` beside the store.
Later evaluation tests can reuse it. ``store`` opens it; ``logged_store`` opens it through
zarr's ``LoggingStore``, which records every key read.
"""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zarr
from zarr.storage import LocalStore, LoggingStore

from astar.extract import ExtractionConfig, FeatureStore, collect_inputs, extract_videos, open_store
from astar.pipelines.synthetic import CAPTIONS_FILE, SyntheticClip, generate_dataset
from astar.train.train_config import TrainConfig

N_VIDEOS = 12
DURATION_RANGE_S = (1.5, 10.0)


@dataclass(frozen=True)
class SyntheticStore:
    """Where the shared store and its captions are.

    Attributes:
        store: the Zarr feature store (``feats.zarr``).
        captions: ``captions.csv`` (video_id,caption,split), also copied to
            ``<store's folder>/annotations/csv/`` (the default location).
        clips: what each clip shows.
    """

    store: Path
    captions: Path
    clips: list[SyntheticClip]

    def train_config(self, out: Path, **overrides: object) -> TrainConfig:
        """A seconds-long CPU run on this store into ``out``: the small preset on pool4 and pool5
        (pool2's 7³ alignment dominates CPU time), batches of 8, two epochs, validation loss,
        every training word kept, no loader workers, no progress bars; ``overrides`` win."""
        settings: dict = dict(
            store=str(self.store), dataset="csv", annotations=str(self.captions), out=str(out), preset="small",
            layers=("pool4", "pool5"), batch_size=8, epochs=2, metric="loss", min_count=1, device="cpu",
            loader_workers=0, progress=False,
        )
        return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStore:
    root = tmp_path_factory.mktemp("synthetic")
    clips = generate_dataset(root / "videos", n_videos=N_VIDEOS, duration_range_s=DURATION_RANGE_S)
    store = root / "feats.zarr"
    summary = extract_videos(collect_inputs([str(root / "videos")]), str(store), ExtractionConfig(device="cpu"), progress=False)
    assert summary.count("done") == N_VIDEOS, summary.table()
    default_location = root / "annotations" / "csv"
    default_location.mkdir(parents=True)
    shutil.copy(root / "videos" / CAPTIONS_FILE, default_location / CAPTIONS_FILE)
    return SyntheticStore(store, root / "videos" / CAPTIONS_FILE, clips)


@pytest.fixture
def quick_config(synthetic_store: SyntheticStore, tmp_path: Path) -> Callable[..., TrainConfig]:
    """``quick_config(name, **overrides)``: ``SyntheticStore.train_config`` into tmp_path/name."""

    def make(name: str = "run", **overrides: object) -> TrainConfig:
        return synthetic_store.train_config(overrides.pop("out", tmp_path / name), **overrides)

    return make


class KeyLog(logging.Handler):
    """Collects the store keys a ``LoggingStore`` reads."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"Calling \w+\.get\((.*)\)", record.getMessage())
        if found:
            self.keys.append(found.group(1))


@pytest.fixture
def logged_store(synthetic_store):
    """The shared store opened through zarr's ``LoggingStore``, and the log of keys it reads."""
    log = KeyLog()
    logging_store = LoggingStore(LocalStore(synthetic_store.store, read_only=True), log_level="INFO", log_handler=log)
    logging_store.logger.addHandler(log)
    root = zarr.open_group(store=logging_store, mode="r")
    yield FeatureStore(root, str(synthetic_store.store)), log
    logging_store.logger.removeHandler(log)


@pytest.fixture
def store(synthetic_store) -> FeatureStore:
    return open_store(str(synthetic_store.store))
