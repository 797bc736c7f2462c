"""C3D: layer shapes against N′, tiled = whole pass, fc7 windows, weights loading, precision."""
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from astar.extract.c3d import (
    LAYERS, conv_in_time_chunks, conv_with_rgb_padded, load_weights, mmaction2_key, random_init,
)
from astar.extract.features import PRECISIONS, extract_features, pad_frames, prepare_model
from astar.extract.store.schema import padded_frame_count
from astar.extract.weights import WeightsError


@pytest.fixture(scope="module")
def c3d():
    model, spec = random_init(seed=0)
    return prepare_model(model, torch.device("cpu"))


def video(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(3, frames, 112, 112, generator=torch.Generator().manual_seed(seed)) * 60


@pytest.mark.parametrize("frames, padded", [(1, 16), (16, 16), (17, 32), (40, 48), (48, 48)])
def test_padding_repeats_last_frame_to_multiple_of_16(frames, padded):
    raw = np.arange(frames)[:, None].repeat(2, 1)
    out = pad_frames(raw)
    assert padded_frame_count(frames) == padded == len(out)
    assert (out[frames:] == raw[-1]).all()


def test_layers_have_n_prime_over_stride_time_steps(c3d):
    features = extract_features(c3d, video(32))
    for spec in LAYERS:
        name = spec.name
        assert features.layers[name].shape == (32 // spec.time_stride, *spec.step_shape)
        assert features.layers[name].dtype == np.float16
    assert features.fc7_windows.shape == (3, 4096)
    assert features.fc7.shape == (4096,)


def test_tiled_pass_equals_one_whole_video_pass(c3d):
    frames = video(64, seed=1)
    whole = extract_features(c3d, frames, max_frames_per_pass=256)
    tiled = extract_features(c3d, frames, max_frames_per_pass=112)  # 16-frame cores, 48-frame halos
    for name in whole.layers:
        np.testing.assert_array_equal(whole.layers[name], tiled.layers[name])
    # fc6/fc7 multiply a different number of windows per tile, which changes the
    # float summation order: equal up to one float16 rounding step.
    np.testing.assert_allclose(whole.fc7_windows, tiled.fc7_windows, rtol=2**-10, atol=2**-14)


def clip_fc7(model, conv5b_pair: torch.Tensor) -> torch.Tensor:
    """Textbook C3D head on one 16-frame clip's conv5b (1, 512, 2, 7, 7): pool5, flatten, fc6, fc7."""
    pool5 = nn.functional.max_pool3d(conv5b_pair, kernel_size=2, stride=2, padding=(0, 1, 1))
    flat = pool5.reshape(1, 8192)
    return torch.relu(model.fc7(torch.relu(model.fc6(flat))))[0]


def textbook_clip_forward(model, clip: torch.Tensor) -> torch.Tensor:
    """A 16-frame clip through C3D written out layer by layer: (1, 3, 16, 112, 112) → fc7 (4096,)."""
    x = nn.functional.max_pool3d(torch.relu(model.conv1(clip)), (1, 2, 2), (1, 2, 2))
    x = nn.functional.max_pool3d(torch.relu(model.conv2(x)), 2, 2)
    x = nn.functional.max_pool3d(torch.relu(model.conv3b(torch.relu(model.conv3a(x)))), 2, 2)
    x = nn.functional.max_pool3d(torch.relu(model.conv4b(torch.relu(model.conv4a(x)))), 2, 2)
    x = torch.relu(model.conv5b(torch.relu(model.conv5a(x))))
    return clip_fc7(model, x)


@torch.inference_mode()
def test_fc7_of_a_16_frame_video_is_the_clip_fc7(c3d):
    frames = video(16, seed=2)
    expected = textbook_clip_forward(c3d, frames[None])
    features = extract_features(c3d, frames)
    np.testing.assert_allclose(features.fc7.astype(np.float32), expected.numpy(), rtol=2e-3, atol=0.1)


@torch.inference_mode()
def test_fc7_is_mean_over_16_frame_windows_with_8_frame_overlap(c3d):
    frames = video(48, seed=3)
    conv5b = c3d.convolutions(frames[None])["conv5b"]  # (1, 512, 6, 7, 7): one step per 8 frames
    windows = [clip_fc7(c3d, conv5b[:, :, j : j + 2]) for j in range(5)]  # frames [8j, 8j+16)
    features = extract_features(c3d, frames)
    np.testing.assert_allclose(features.fc7_windows.astype(np.float32), torch.stack(windows).numpy(), rtol=2e-3, atol=0.1)
    np.testing.assert_allclose(features.fc7.astype(np.float32), torch.stack(windows).mean(0).numpy(), rtol=2e-3, atol=0.1)


def test_random_init_is_deterministic_per_seed():
    first, second, other = random_init(7)[0], random_init(7)[0], random_init(8)[0]
    assert torch.equal(first.conv3a.weight, second.conv3a.weight)
    assert not torch.equal(first.conv3a.weight, other.conv3a.weight)


def test_c3d_pickle_state_dict_loads_by_name(tmp_path):
    source, _ = random_init(seed=5)
    path = tmp_path / "c3d.pickle"
    torch.save(source.state_dict(), path)
    model, spec = load_weights(path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert spec.format == "c3d.pickle" and not spec.is_random
    assert spec.preprocessing.name == "c3d"  # the Caffe recipe belongs to these weights
    assert len(spec.sha256) == 64


def test_mmaction2_checkpoint_loads_through_key_mapping(tmp_path):
    source, _ = random_init(seed=6)
    renamed = {}
    for key, value in source.state_dict().items():
        layer, kind = key.split(".")
        if layer.startswith("conv"):
            layer = {"conv1": "conv1a", "conv2": "conv2a"}.get(layer, layer)
            renamed[f"backbone.{layer}.conv.{kind}"] = value
        elif layer in ("fc6", "fc7"):
            renamed[f"backbone.{key}"] = value
    renamed["cls_head.fc_cls.weight"] = torch.zeros(101, 4096)  # a UCF-101 head: ignored
    renamed["cls_head.fc_cls.bias"] = torch.zeros(101)
    path = tmp_path / "mmaction2.pth"
    torch.save({"meta": {"epoch": 45}, "state_dict": renamed}, path)
    model, spec = load_weights(path)
    assert spec.format == "mmaction2"
    assert torch.equal(model.conv5b.weight, source.conv5b.weight)
    assert torch.equal(model.fc7.bias, source.fc7.bias)
    assert mmaction2_key("backbone.conv3b.conv.weight") == "conv3b.weight"


def test_wrong_shapes_and_missing_keys_are_named(tmp_path):
    state = random_init(0)[0].state_dict()
    state["fc6.weight"] = torch.zeros(4096, 4096)
    del state["conv4a.bias"]
    path = tmp_path / "bad.pickle"
    torch.save(state, path)
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    message = str(raised.value)
    assert "conv4a.bias" in message and "fc6.weight (4096, 4096) != (4096, 8192)" in message


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    exploit = Exploit()
    exploit.marker = marker
    path = tmp_path / "evil.pickle"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": exploit}, handle)
    with pytest.raises(WeightsError, match="pickled code"):
        load_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04broken zip"])
def test_corrupt_weights_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "c3d.pickle"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="c3d.pickle"):
        load_weights(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_convolution_in_time_chunks_equals_one_call_bit_for_bit(dtype):
    generator = torch.Generator().manual_seed(3)
    conv = nn.Conv3d(16, 8, kernel_size=3, padding=1).to(dtype)
    x = torch.randn(2, 16, 13, 6, 6, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        chunked = conv_in_time_chunks(conv, x, steps=4)  # 4 + 4 + 4 + 1 steps
        assert chunked.dtype == dtype and chunked.is_contiguous(memory_format=torch.channels_last_3d)
        assert torch.equal(chunked, conv(x))


def test_conv1_with_a_zero_fourth_channel_gives_conv1_up_to_bf16_summation_order():
    generator = torch.Generator().manual_seed(5)
    conv = nn.Conv3d(3, 64, kernel_size=3, padding=1).to(torch.bfloat16)
    video = (torch.randn(1, 3, 16, 32, 32, generator=generator) * 60).to(torch.bfloat16)
    video = video.contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        padded, plain = conv_with_rgb_padded(conv, video), conv(video)
    assert padded.shape == plain.shape == (1, 64, 16, 32, 32)
    torch.testing.assert_close(padded.float(), plain.float(), rtol=2**-7, atol=2**-7)


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.08), ("fp16", 0.02)])
@torch.inference_mode()
def test_reduced_precision_agrees_with_fp32(c3d, precision, tolerance):
    # The whole convolutional stack, its reduced-precision helpers included, on 32×32 frames: CPUs without
    # AVX-512 (CI's AMD EPYC) have no bf16/fp16 convolution kernels and run them ~200× slower than fp32,
    # and a 112×112 pass took minutes there.
    frames = (torch.randn(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(4)) * 60).contiguous(
        memory_format=torch.channels_last_3d)
    reference = c3d.convolutions(frames)
    reduced_model = prepare_model(random_init(seed=0)[0], torch.device("cpu"), precision)
    assert next(reduced_model.parameters()).dtype == PRECISIONS[precision]
    reduced = reduced_model.convolutions(frames.to(PRECISIONS[precision]))
    for name in ("pool2", "pool3", "pool4", "conv5b"):
        ref, low = reference[name].float(), reduced[name].float()
        error = (low - ref).abs().mean() / ref.abs().mean()
        assert error < tolerance, (name, error)


@pytest.mark.gpu
def test_cuda_bf16_features_agree_with_cpu_fp32():
    cpu_model = prepare_model(random_init(seed=0)[0], torch.device("cpu"))
    frames = video(32, seed=9)
    reference = extract_features(cpu_model, frames)
    for precision, tolerance in (("fp32", 1e-3), ("bf16", 0.08)):
        on_gpu = extract_features(prepare_model(random_init(seed=0)[0], torch.device("cuda"), precision), frames)
        ref = reference.layers["pool5"].astype(np.float32)
        error = np.abs(on_gpu.layers["pool5"].astype(np.float32) - ref).mean() / np.abs(ref).mean()
        assert error < tolerance, (precision, error)
