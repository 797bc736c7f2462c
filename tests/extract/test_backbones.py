"""The backbone registry and torchvision's video ResNets defined in astar: geometry, whole-video
passes, torchvision-compatible weights, and a store extracted with each."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from astar.extract import ExtractionConfig, Extractor, collect_inputs, extract_videos, get_backbone, open_store
from astar.extract.backbones import BACKBONES
from astar.extract.features import extract_features, prepare_model
from astar.extract.preprocessing import KINETICS
from astar.extract.weights import WeightsError
from tests.videos import write_video

RESNETS = ("r3d_18", "mc3_18", "r2plus1d_18")

TORCHVISION_PARAMETERS = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}
"""``num_params`` of torchvision's KINETICS400_V1 weights for each network."""

TORCHVISION_KEYS = {
    "r3d_18": {"stem.0.weight": (64, 3, 3, 7, 7), "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
               "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1), "layer4.1.conv2.1.running_var": (512,)},
    "mc3_18": {"layer1.0.conv2.0.weight": (64, 64, 3, 3, 3), "layer3.0.conv1.0.weight": (256, 128, 1, 3, 3),
               "layer3.0.downsample.0.weight": (256, 128, 1, 1, 1), "fc.weight": (400, 512)},
    "r2plus1d_18": {"stem.0.weight": (45, 3, 1, 7, 7), "stem.3.weight": (64, 45, 3, 1, 1),
                    "layer2.0.conv1.0.0.weight": (230, 64, 1, 3, 3), "layer2.0.conv1.0.3.weight": (128, 230, 3, 1, 1),
                    "layer2.1.conv2.0.1.num_batches_tracked": ()},
}
"""State-dict entries of torchvision's definitions (torchvision/models/video/resnet.py)."""


@pytest.fixture(scope="module", params=RESNETS)
def resnet(request):
    name = request.param
    model, spec = get_backbone(name).build(None, 0)
    return name, prepare_model(model, torch.device("cpu")), spec


def video(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(3, frames, 112, 112, generator=torch.Generator().manual_seed(seed))


def test_c3d_is_the_default_and_first_backbone():
    assert list(BACKBONES)[:1] == ["c3d"] and ExtractionConfig().backbone == "c3d"
    assert set(RESNETS) <= set(BACKBONES)


@pytest.mark.parametrize("name", RESNETS)
def test_networks_have_torchvisions_parameters_and_state_dict_names(name):
    model, spec = get_backbone(name).build(None, 0)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMETERS[name]
    state = model.state_dict()
    assert {key: tuple(state[key].shape) for key in TORCHVISION_KEYS[name]} == TORCHVISION_KEYS[name]
    assert spec.preprocessing == KINETICS and spec.architecture == name and spec.is_random


@pytest.mark.slow
def test_stored_shapes_follow_the_strides_and_tiles_equal_the_whole_pass(resnet):
    name, model, _ = resnet
    frames = video(32)
    whole = extract_features(model, frames)
    tiled = extract_features(model, frames, max_frames_per_pass=16)  # 16-frame cores with 64-frame halos
    for layer in get_backbone(name).layers:
        assert whole.layers[layer.name].shape == (32 // layer.time_stride, layer.height, layer.width, layer.channels)
        np.testing.assert_array_equal(whole.layers[layer.name], tiled.layers[layer.name])
    assert whole.fc7_windows.shape == (3, 512) and whole.fc7.shape == (512,)
    np.testing.assert_allclose(whole.fc7_windows.astype(np.float32), tiled.fc7_windows.astype(np.float32), rtol=2**-10)


@torch.inference_mode()
def test_top_feature_of_a_16_frame_video_is_torchvisions_pooled_clip_feature(resnet):
    _, model, _ = resnet
    clip = video(16, seed=1)
    x = model.stem(clip[None])
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = stage(x)
    pooled = torch.nn.functional.adaptive_avg_pool3d(x, 1).flatten()  # torchvision's avgpool before fc
    np.testing.assert_allclose(extract_features(model, clip).fc7.astype(np.float32), pooled.numpy(), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("name", RESNETS)
def test_a_torchvision_state_dict_file_loads_by_name(name, tmp_path):
    source, _ = get_backbone(name).build(None, 5)
    state = source.state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    model, spec = get_backbone(name).build(str(path), 0)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert (spec.format, spec.name, spec.preprocessing, len(spec.sha256)) == ("torchvision", path.name, KINETICS, 64)


def test_weights_of_another_network_are_refused_naming_the_keys(tmp_path):
    path = tmp_path / "r3d.pth"
    torch.save(get_backbone("r3d_18").build(None, 0)[0].state_dict(), path)
    with pytest.raises(WeightsError, match=r"r3d.pth: not torchvision r2plus1d_18 weights \(missing: .*stem.3.weight"):
        get_backbone("r2plus1d_18").build(str(path), 0)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="would download through torchvision")
def test_a_torchvision_weights_name_without_torchvision_is_a_one_line_error():
    with pytest.raises(WeightsError) as raised:
        get_backbone("r2plus1d_18").build("KINETICS400_V1", 0)
    message = str(raised.value)
    assert "\n" not in message and "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth" in message


@pytest.mark.slow
def test_a_resnet_store_records_its_backbone_and_opens_in_xarray(tmp_path):
    xarray = pytest.importorskip("xarray")
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "clip.mp4", np.random.default_rng(0).integers(0, 255, (20, 48, 64, 3), dtype=np.uint8), fps=10)
    settings = ExtractionConfig(backbone="r2plus1d_18", device="cpu")
    extractor = Extractor.build(settings)
    assert extractor.preprocessing == KINETICS and "r2plus1d_18" in extractor.banner()
    out = tmp_path / "feats.zarr"
    summary = extract_videos(collect_inputs([str(folder)]), str(out), settings, extractor=extractor, progress=False)
    assert summary.count("failed") == 0
    store = open_store(str(out))
    assert store.backbone == "r2plus1d_18" and store.layers == get_backbone("r2plus1d_18").layers
    assert store.attrs["model"]["architecture"] == "r2plus1d_18" and store.top_channels == 512
    dataset = xarray.open_zarr(out, group="videos/clip", consolidated=False)
    assert dict(dataset.sizes) == {
        "layer1_time": 16, "layer1_y": 56, "layer1_x": 56, "layer1_channel": 64,
        "layer2_time": 8, "layer2_y": 28, "layer2_x": 28, "layer2_channel": 128,
        "layer3_time": 4, "layer3_y": 14, "layer3_x": 14, "layer3_channel": 256,
        "layer4_time": 2, "layer4_y": 7, "layer4_x": 7, "layer4_channel": 512,
        "fc7_channel": 512, "window": 1,
    }
