"""The whole-video pass: frames → the backbone's stored maps, per-window top features (fc7) and their mean.

The entire video goes through the convolutional layers once (Section 2.1). To
keep memory bounded for long videos the pass may be cut into tiles along time
that overlap by a halo wider than the top layer's temporal receptive field
(``schema.halo_frames``); each tile's maps are then what one pass over the whole
video computes (C3D's pool maps bit for bit), and the top features equal up to
float rounding (fc6/fc7 see a different number of windows per matrix product),
which the tests check.

A network here is any backbone's (``astar.extract.backbones``): it has
``stored_layers`` (their geometry), ``halo_frames`` and ``stored_maps(video)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from torch import nn

from .devices import PRECISIONS
from .options import MAX_FRAMES_PER_PASS
from .schema import CLIP_FRAMES, WINDOW_STRIDE, padded_frame_count

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class VideoFeatures:
    """A backbone's features of one video, in the store's (time, height, width, channel) order.

    Attributes:
        layers: per stored layer (N′/time_stride, H, W, C) float16; C3D: ``pool2``
            (N′/2, 28, 28, 128) … ``pool5`` (N′/16, 4, 4, 512).
        fc7_windows: (N′/8 − 1, D) float16, the top feature of every 16-frame window at
            stride 8 (C3D: fc7, D = 4096).
        fc7: (D,) float16, the mean of ``fc7_windows`` (taken in float32).
    """

    layers: dict[str, np.ndarray]
    fc7_windows: np.ndarray
    fc7: np.ndarray


def pad_frames(frames: np.ndarray) -> np.ndarray:
    """Repeat the last frame until there are N′ = max(16, 16·⌈N/16⌉): (N, …) → (N′, …)."""
    missing = padded_frame_count(len(frames)) - len(frames)
    if missing == 0:
        return frames
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])


def prepare_model(model: nn.Module, device: torch.device, precision: str = "fp32") -> nn.Module:
    """Move a backbone to ``device`` in ``precision`` and the fastest safe layout (channels-last 3D, cuDNN autotuning).

    The weights are cast once, here. Autocast would cast them again on every pass
    (fc6 alone is 8192×4096) and give the same features bit for bit: holding them in
    bf16 made a 64-frame CPU pass 20 % faster.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.eval().to(device=device, dtype=PRECISIONS[precision], memory_format=torch.channels_last_3d)


@torch.inference_mode()
def extract_features(model: nn.Module, video: torch.Tensor, max_frames_per_pass: int = MAX_FRAMES_PER_PASS) -> VideoFeatures:
    """Features of one preprocessed, padded video, computed in the model's precision.

    Args:
        model: a backbone network prepared with ``prepare_model`` (its device and dtype are used).
        video: (3, N′, 112, 112) float32, N′ a multiple of 16.
        max_frames_per_pass: longer videos are computed in tiles of this many
            frames plus a halo; the result is the same.
    """
    padded = video.shape[1]
    if padded % CLIP_FRAMES:
        raise ValueError(f"padded frame count {padded} is not a multiple of {CLIP_FRAMES}")
    names = [layer.name for layer in model.stored_layers]
    core = max(CLIP_FRAMES, (max_frames_per_pass - 2 * model.halo_frames) // CLIP_FRAMES * CLIP_FRAMES)
    if padded <= max_frames_per_pass:
        core = padded
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in (*names, "fc7")}
    for start in range(0, padded, core):
        stop = min(padded, start + core)
        for name, tensor in _tile(model, video, start, stop).items():
            parts[name].append(tensor)
    layers = {
        name: _to_float16(torch.cat(parts[name], dim=0).permute(0, 2, 3, 1))  # (T, C, H, W) → (T, H, W, C)
        for name in names
    }
    fc7_windows = torch.cat(parts["fc7"], dim=0)
    return VideoFeatures(layers=layers, fc7_windows=_to_float16(fc7_windows), fc7=_to_float16(fc7_windows.mean(0)))


def _tile(model: nn.Module, video: torch.Tensor, start: int, stop: int) -> dict[str, torch.Tensor]:
    """Outputs whose frames lie in [start, stop), computed from a haloed slice of ``video``.

    Returns per layer (T, C, H, W) float32 on the CPU and ``fc7`` (W, D) for the
    windows starting in [start, stop).
    """
    padded = video.shape[1]
    first = max(0, start - model.halo_frames)
    last = min(padded, stop + model.halo_frames)
    weight = next(model.parameters())
    clip = video[:, first:last].unsqueeze(0).to(weight.device, weight.dtype, non_blocking=True)
    clip = clip.contiguous(memory_format=torch.channels_last_3d)
    maps, fc7 = model.stored_maps(clip)
    out = {}
    for layer in model.stored_layers:
        offset = (start - first) // layer.time_stride
        steps = (stop - start) // layer.time_stride
        out[layer.name] = maps[layer.name][0, :, offset : offset + steps].float().transpose(0, 1).cpu()
    total_windows = padded // WINDOW_STRIDE - 1
    window_first = start // WINDOW_STRIDE
    window_stop = min(stop // WINDOW_STRIDE, total_windows)
    offset = first // WINDOW_STRIDE
    out["fc7"] = fc7[0, window_first - offset : window_stop - offset].float().cpu()
    return out


def _to_float16(tensor: torch.Tensor) -> np.ndarray:
    """float32 → float16 numpy, clamped so large activations saturate instead of becoming inf."""
    return tensor.clamp(-FLOAT16_MAX, FLOAT16_MAX).to(torch.float16).contiguous().numpy()
