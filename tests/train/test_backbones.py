"""Training on every backbone's store: the layer list comes from the store, and a short run learns."""
from __future__ import annotations

from pathlib import Path

import pytest

from astar.extract import ExtractionConfig, collect_inputs, extract_videos, get_backbone, open_store
from astar.pipelines.synthetic import CAPTIONS_FILE, generate_dataset
from astar.train import TrainConfig, load_run, train
from astar.train.caption import prepare_extraction
from astar.train.errors import TrainingError

RESNETS = ("r3d_18", "mc3_18", "r2plus1d_18")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight short captioned clips (1.5–4 s: 16 padded frames, a few 32)."""
    folder = tmp_path_factory.mktemp("backbone-clips") / "videos"
    generate_dataset(folder, n_videos=8, duration_range_s=(1.5, 4.0))
    return folder


@pytest.fixture(scope="module", params=RESNETS)
def backbone_store(request, clips: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    name = request.param
    store = tmp_path_factory.mktemp(name) / "feats.zarr"
    summary = extract_videos(collect_inputs([str(clips)]), str(store), ExtractionConfig(backbone=name, device="cpu"), progress=False)
    assert summary.count("done") == 8, summary.table()
    return name, store


def quick(store: Path, clips: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = dict(
        store=str(store), dataset="csv", annotations=str(clips / CAPTIONS_FILE), out=str(out), preset="small",
        batch_size=8, epochs=3, lr=3e-3, metric="loss", min_count=1, device="cpu", loader_workers=0, progress=False,
    )
    return TrainConfig(**{**settings, **overrides})


@pytest.mark.slow
def test_a_short_training_on_two_levels_of_each_backbone_learns(backbone_store, clips, tmp_path):
    name, store = backbone_store
    result = train(quick(store, clips, tmp_path / "run", layers=("layer3", "layer4")))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] - 0.1, losses
    loaded = load_run(tmp_path / "run")
    assert loaded.model_config.geometry == open_store(str(store)).layers == get_backbone(name).layers
    assert loaded.model_config.layers == ("layer3", "layer4")
    _, extractor = prepare_extraction(loaded)  # astar-caption's extraction: refuses any identity difference
    assert extractor.backbone.name == name and extractor.preprocessing.name == "kinetics"


def test_the_default_layer_list_is_every_stored_layer(backbone_store, clips, tmp_path):
    _, store = backbone_store
    config = quick(store, clips, tmp_path / "run", variant="fc7", epochs=1)
    model_config = config.model_config(10, open_store(str(store)).layers, 512)
    assert model_config.layers == ("layer1", "layer2", "layer3", "layer4")


def test_layers_of_another_backbone_are_refused_naming_the_stored_ones(backbone_store, clips, tmp_path):
    _, store = backbone_store
    with pytest.raises(TrainingError, match="layer1, layer2, layer3, layer4"):
        train(quick(store, clips, tmp_path / "run", layers=("pool4", "pool5"), epochs=1))
