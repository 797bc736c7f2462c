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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from torch import nn

from .devices import PRECISIONS
from .memory import offheap_copy, offheap_empty
from .options import MAX_FRAMES_PER_PASS
from .store.schema import CLIP_FRAMES, WINDOW_STRIDE, padded_frame_count

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


@dataclass(frozen=True)
class FeatureTile:
    """What one tile of a whole-video pass contributes: its frames [start, stop) of every stored layer.

    Attributes:
        start, stop: the tile's core, in padded frames (multiples of 16).
        layers: per stored layer ((stop − start)/time_stride, H, W, C) float16, the time steps of the core.
        windows: (W, D) float32, the top features of the windows starting in the core.
    """

    start: int
    stop: int
    layers: dict[str, np.ndarray]
    windows: torch.Tensor


FrameSlicer = Callable[[int, int], torch.Tensor]
"""(first, last) padded frame indices → the network input of those frames, (3, last − first, 112, 112) float32."""


def pad_frames(frames: np.ndarray) -> np.ndarray:
    """Repeat the last frame until there are N′ = max(16, 16·⌈N/16⌉): (N, …) → (N′, …)."""
    return padded_slice(frames, 0, padded_frame_count(len(frames)))


def padded_slice(frames: np.ndarray, first: int, last: int) -> np.ndarray:
    """Frames [first, last) of the video padded by repeating its last frame: (N, …) → (last − first, …), a copy."""
    return np.take(frames, np.minimum(np.arange(first, last), len(frames) - 1), axis=0)


def prepare_model(model: nn.Module, device: torch.device, precision: str = "fp32") -> nn.Module:
    """Move a backbone to ``device`` in ``precision`` and the fastest safe layout (channels-last 3D, cuDNN autotuning).

    The weights are cast once, here. Autocast would cast them again on every pass
    (fc6 alone is 8192×4096) and give the same features bit for bit: holding them in
    bf16 made a 64-frame CPU pass 20 % faster.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.eval().to(device=device, dtype=PRECISIONS[precision], memory_format=torch.channels_last_3d)


def tile_plan(padded: int, max_frames_per_pass: int, halo: int) -> list[tuple[int, int]]:
    """The cores [start, stop) a pass over ``padded`` frames is cut into: one when it fits in
    ``max_frames_per_pass``, else cores of 16·k frames that leave room for a ``halo`` on each side."""
    if padded % CLIP_FRAMES:
        raise ValueError(f"padded frame count {padded} is not a multiple of {CLIP_FRAMES}")
    core = padded if padded <= max_frames_per_pass else max(CLIP_FRAMES, (max_frames_per_pass - 2 * halo) // CLIP_FRAMES * CLIP_FRAMES)
    return [(start, min(padded, start + core)) for start in range(0, padded, core)]


@torch.inference_mode()
def feature_tiles(model: nn.Module, frames: FrameSlicer, padded: int, max_frames_per_pass: int = MAX_FRAMES_PER_PASS) -> Iterator[FeatureTile]:
    """The tiles of one padded video's pass, in time order, computed in the model's precision.

    Only one tile's input and maps exist at a time: ``frames`` gives each tile's haloed input.

    Args:
        model: a backbone network prepared with ``prepare_model`` (its device and dtype are used).
        frames: the preprocessed input of any frame range of the padded video.
        padded: N′, a multiple of 16.
        max_frames_per_pass: longer videos are computed in tiles of this many
            frames plus a halo; the result is the same.
    """
    for start, stop in tile_plan(padded, max_frames_per_pass, model.halo_frames):
        outputs = _tile(model, frames, padded, start, stop)
        windows = torch.from_numpy(offheap_copy(outputs.pop("fc7").numpy()))  # kept to the video's end
        layers = {name: _to_float16(maps.permute(0, 2, 3, 1)) for name, maps in outputs.items()}  # (T, C, H, W) → (T, H, W, C)
        yield FeatureTile(start, stop, layers, windows)


def top_features(windows: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Every tile's (W, D) float32 windows → ``fc7_windows`` (ΣW, D) and ``fc7`` (D,) float16, the mean taken in float32."""
    every = torch.cat(windows, dim=0)
    return _to_float16(every), _to_float16(every.mean(0))


def gather_tiles(tiles: Iterable[FeatureTile]) -> VideoFeatures:
    """A whole video's features from its tiles (for callers that want them in memory at once)."""
    tiles = list(tiles)
    layers = {name: np.concatenate([tile.layers[name] for tile in tiles]) for name in tiles[0].layers}
    fc7_windows, fc7 = top_features([tile.windows for tile in tiles])
    return VideoFeatures(layers=layers, fc7_windows=fc7_windows, fc7=fc7)


def extract_features(model: nn.Module, video: torch.Tensor, max_frames_per_pass: int = MAX_FRAMES_PER_PASS) -> VideoFeatures:
    """Features of one preprocessed, padded video held in memory: (3, N′, 112, 112) float32, N′ a multiple of 16.

    The pass of ``feature_tiles``; extraction itself preprocesses tile by tile (``Extractor.tiles``).
    """
    return gather_tiles(feature_tiles(model, lambda first, last: video[:, first:last], video.shape[1], max_frames_per_pass))


def _tile(model: nn.Module, frames: FrameSlicer, padded: int, start: int, stop: int) -> dict[str, torch.Tensor]:
    """Outputs whose frames lie in [start, stop), computed from the haloed input ``frames`` gives.

    Returns per layer (T, C, H, W) float32 on the CPU and ``fc7`` (W, D) for the
    windows starting in [start, stop).
    """
    first = max(0, start - model.halo_frames)
    last = min(padded, stop + model.halo_frames)
    weight = next(model.parameters())
    clip = frames(first, last).unsqueeze(0).to(weight.device, weight.dtype, non_blocking=True)
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
    """float32 → float16 numpy outside the heap (``memory.offheap_empty``), clamped so large activations saturate
    instead of becoming inf (clamping after the cast gives the same values: what rounds to inf was above the maximum)."""
    values = offheap_empty(tuple(tensor.shape), np.float16)
    torch.from_numpy(values).copy_(tensor).clamp_(-FLOAT16_MAX, FLOAT16_MAX)
    return values
