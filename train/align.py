"""Spatiotemporal alignment of pool2 … pool5 onto pool5's grid: eq. (4) and Appendix D.

Every transform here maps one stored layer a_l, (B, T_l, H_l, W_l, C_l), to features
on pool5's 4×4×T₅ grid, (B, P, D) with P = T₅·4·4 positions flattened row-major over
(t, y, x).

Geometry (Appendix C; 0-based indices, centres in input pixels and frames). C3D's
pool1 … pool4 pool without padding and its convolutions are 'same', so cell j of pool_l
is centred at s·j + (s − 1)/2, s its stride in input units (pool2: 4 px / 2 frames,
pool3: 8 / 4, pool4: 16 / 8). pool5 pads (0, 1, 1): its cell i pools conv5b rows
2i − 1 and 2i, so it is centred at pixel 32i − 1/2 and frame 16t + 15/2.

Eq. (4) keeps these centres with 'same' convolutions (kernel k, padding k//2) followed
by r³ max-pooling padded like pool5, (0, r/2, r/2): aligned row i pools layer-l rows
ri − r/2 … ri + r/2 − 1, centred at ri − 1/2, i.e. at pixel 32i − 1/2 for every layer,
and aligned step t pools steps rt … rt + r − 1, centred at frame 16t + 15/2.
Pooling with ``ceil_mode`` instead would pool rows ri … ri + r − 1 and land 16 pixels,
half a pool5 cell, right of and below pool5.

Appendix C's Table 4 (1-based, ignoring pool5's spatial padding) lists the field of
â_l in a_l. Section 4.2's kernels 7³ / 5³ / 3³ give [8i − 10, 8i + 3], [4i − 5, 4i + 2]
and [2i − 2, 2i + 1] for pool2 / pool3 / pool4. Only the pool4 row agrees: the pool2 row
[8i − 14, 8i + 7] needs a 15³ kernel (±7), and the pool3 row [4i − 6, 4i + 4], 11 wide
and lopsided, follows from no centred kernel; both look chosen to make every input
field equal pool5's. We implement Section 4.2's kernels: the field *centres* coincide
across layers, which is what alignment needs, while the field widths differ by layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .video_batch import LAYER_SIDE, POOL5_RATIO, time_mask
from .model_config import ModelConfig

POOL5_SIDE = LAYER_SIDE["pool5"]
"""Rows and columns of pool5, and so of every aligned map."""

ALIGNMENT_KERNEL: dict[str, int] = {"pool2": 7, "pool3": 5, "pool4": 3}
"""Kernel size of eq. (4)'s convolution U_{·,l} per layer (Section 4.2)."""

Window = tuple[int, int, int]
"""(kernel, stride, padding) of a pooling window along one axis."""

_CONV: tuple[Window, Window] = ((3, 1, 1), (3, 1, 1))
_POOL: tuple[Window, Window] = ((2, 2, 0), (2, 2, 0))
_POOL5: tuple[Window, Window] = ((2, 2, 0), (2, 2, 1))
C3D_ABOVE_POOL2: tuple[tuple[Window, Window], ...] = (
    _CONV, _CONV, _POOL, _CONV, _CONV, _POOL, _CONV, _CONV, _POOL5,
)
"""C3D's operations (time, space) from pool2 up to pool5: conv3a … conv5b and pools (Appendix B)."""

_FIRST_OP_ABOVE = {"pool2": 0, "pool3": 3, "pool4": 6, "pool5": 9}


def pool5_field(layer: str) -> tuple[Window, Window]:
    """The receptive field N_{i,L} of a pool5 cell in ``layer``, as a (time, space) pooling window.

    Composes C3D's operations between ``layer`` and pool5 (Appendix C's definition):
    pool5 cell i sees rows stride·i − padding … stride·i − padding + kernel − 1 of the layer.
    E.g. pool4: time (6, 2, 2), space (6, 2, 3).
    """
    axes = []
    for axis in (0, 1):
        kernel, stride, padding = 1, 1, 0
        for op in reversed(C3D_ABOVE_POOL2[_FIRST_OP_ABOVE[layer]:]):
            op_kernel, op_stride, op_padding = op[axis]
            kernel = op_stride * (kernel - 1) + op_kernel
            padding = op_stride * padding + op_padding
            stride *= op_stride
        axes.append((kernel, stride, padding))
    return axes[0], axes[1]


def channels_first(layer_map: Tensor) -> Tensor:
    """Stored (B, T, H, W, C) → Conv3d's (B, C, T, H, W)."""
    return layer_map.permute(0, 4, 1, 2, 3)


def flatten_positions(grid: Tensor) -> Tensor:
    """(B, D, T₅, 4, 4) → (B, T₅·16, D), positions row-major over (t, y, x)."""
    return grid.flatten(2).transpose(1, 2)


def zero_padding(layer_map: Tensor, valid_steps: Tensor) -> Tensor:
    """Zero the padded time steps of a stored (B, T, H, W, C) map; valid_steps is (B, T)."""
    return layer_map * valid_steps[:, :, None, None, None].to(layer_map.dtype)


def embedding_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """The two-layer ReLU MLP of Appendix D that embeds features into the common space."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU())


class Unchanged(nn.Module):
    """â_L = a_L (eq. 4), and the raw layer of the single-layer baselines: only flattened."""

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, T, H, W, C), (B, T) → (B, T·H·W, C)."""
        return zero_padding(layer_map, valid_steps).flatten(1, 3)


class ConvAlignment(nn.Module):
    """Eq. (4): â_l = maxpool_r(ReLU(Σ_k a_l(k) * U_{k,l})), kernels and ratios of Section 4.2."""

    def __init__(self, layer: str, in_channels: int, out_channels: int) -> None:
        super().__init__()
        kernel, ratio = ALIGNMENT_KERNEL[layer], POOL5_RATIO[layer]
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.pool = nn.MaxPool3d(ratio, stride=ratio, padding=(0, ratio // 2, ratio // 2))

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T₅, H_l, W_l, C_l), (B, r·T₅) → (B, T₅·16, D)."""
        # Zeroed padding is exactly the conv's own zero padding at a video's end.
        convolved = self.conv(channels_first(zero_padding(layer_map, valid_steps)))
        return flatten_positions(self.pool(torch.relu(convolved)))


class TileMLPAlignment(nn.Module):
    """Appendix D "MLP": â_{i,l} = MLP(vec(a_l over pool5 cell i's r³ tile)).

    The tiles are eq. (4)'s pooling windows, so centres match ``ConvAlignment``'s.
    """

    def __init__(self, layer: str, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.ratio = POOL5_RATIO[layer]
        self.mlp = embedding_mlp(in_channels * self.ratio**3, out_channels)

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T₅, H_l, W_l, C_l), (B, r·T₅) → (B, T₅·16, D)."""
        r, side = self.ratio, POOL5_SIDE
        grid = channels_first(zero_padding(layer_map, valid_steps))
        batch, channels, steps, height, width = grid.shape
        before = r // 2
        grid = F.pad(grid, (before, side * r - width - before, before, side * r - height - before))
        tiles = grid.reshape(batch, channels, steps // r, r, side, r, side, r)
        tiles = tiles.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(batch, -1, channels * r**3)
        return self.mlp(tiles)


class FieldPoolAlignment(nn.Module):
    """Appendix D eqs. (15–16): max or mean of a_l over N_{i,l}, then an MLP.

    N_{i,l} is pool5 cell i's receptive field in layer l (``pool5_field``), padded
    steps excluded from both the max and the mean.
    """

    def __init__(self, layer: str, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        (t_kernel, t_stride, t_pad), (s_kernel, s_stride, s_pad) = pool5_field(layer)
        self.kernel = (t_kernel, s_kernel, s_kernel)
        self.stride = (t_stride, s_stride, s_stride)
        self.padding = (s_pad, s_pad, s_pad, s_pad, t_pad, t_pad)
        self.mode = mode
        self.mlp = embedding_mlp(in_channels, out_channels)

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, T_l, H_l, W_l, C_l), (B, T_l) → (B, T₅·16, D)."""
        grid = channels_first(layer_map)
        valid = valid_steps[:, None, :, None, None]
        # Padded explicitly: torch's pools refuse windows wider than the unpadded input.
        if self.mode == "max":
            grid = F.pad(grid.masked_fill(~valid, float("-inf")), self.padding, value=float("-inf"))
            pooled = F.max_pool3d(grid, self.kernel, self.stride)
            # Windows of padded pool5 steps hold only -inf; attention masks them anyway.
            pooled = pooled.masked_fill(pooled == float("-inf"), 0.0)
        else:
            weight = valid.to(grid.dtype).expand(-1, 1, -1, grid.shape[3], grid.shape[4])
            total = F.avg_pool3d(F.pad(grid * weight, self.padding), self.kernel, self.stride)
            count = F.avg_pool3d(F.pad(weight, self.padding), self.kernel, self.stride)
            pooled = total / count.clamp_min(torch.finfo(count.dtype).tiny)
        return self.mlp(flatten_positions(pooled))


class HypercolumnSample(nn.Module):
    """Appendix D hypercolumn: a_l interpolated at pool5 cell i's centre.

    Cell i's centre falls between layer-l rows ri − 1 and ri and steps rt + r/2 − 1 and
    rt + r/2 (module docstring), so trilinear interpolation is the mean of that 2³ block.
    """

    def __init__(self, layer: str) -> None:
        super().__init__()
        self.ratio = POOL5_RATIO[layer]

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T₅, H_l, W_l, C_l), (B, r·T₅) → (B, T₅·16, C_l)."""
        r = self.ratio
        grid = channels_first(zero_padding(layer_map, valid_steps))[:, :, r // 2 - 1 :]
        sampled = F.avg_pool3d(grid, 2, stride=r, padding=(0, 1, 1), count_include_pad=False)
        return flatten_positions(sampled)


def layer_transform(config: ModelConfig, layer: str) -> nn.Module:
    """The module that brings ``layer`` onto the attention grid for ``config.variant``."""
    variant, channels, width = config.variant, config.channels(layer), config.context_dim
    if variant == "maxpool":
        return FieldPoolAlignment(layer, channels, width, "max")
    if variant == "avgpool":
        return FieldPoolAlignment(layer, channels, width, "mean")
    if layer == "pool5" or variant == "single":
        return Unchanged()
    if variant == "astar":
        return ConvAlignment(layer, channels, width)
    if variant == "mlp":
        return TileMLPAlignment(layer, channels, width)
    if variant == "hypercolumn":
        return HypercolumnSample(layer)
    raise ValueError(f"variant {variant!r} has no feature maps to align")


class Aligner(nn.Module):
    """All of a config's layers on one position grid: (B, L, P, D) plus a (B, P) mask.

    For ``hypercolumn`` the layers are concatenated per position into L = 1 map of
    width Σ C_l; for ``single`` P is the chosen layer's own T_l·H_l·W_l.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.native_grid = config.variant == "single"
        self.concatenate = config.variant == "hypercolumn"
        self.transforms = nn.ModuleDict({name: layer_transform(config, name) for name in config.layers})

    def forward(self, features: dict[str, Tensor], pool5_steps: Tensor) -> tuple[Tensor, Tensor]:
        """Align the stored layers.

        Args:
            features: per layer (B, T_l, H_l, W_l, C_l), zero-padded in time.
            pool5_steps: (B,) valid pool5 steps per video.

        Returns:
            aligned (B, L, P, D) and the position mask (B, P), True on valid positions.
        """
        masks = {name: time_mask(pool5_steps, name, features[name].shape[1]) for name in self.transforms}
        maps = [transform(features[name], masks[name]) for name, transform in self.transforms.items()]
        aligned = torch.cat(maps, dim=-1).unsqueeze(1) if self.concatenate else torch.stack(maps, dim=1)
        first = next(iter(self.transforms))
        if self.native_grid:
            _, _, height, width, _ = features[first].shape
            position_steps = masks[first].repeat_interleave(height * width, dim=1)
        else:
            pool5_mask = time_mask(pool5_steps, "pool5", features[first].shape[1] // POOL5_RATIO[first])
            position_steps = pool5_mask.repeat_interleave(POOL5_SIDE * POOL5_SIDE, dim=1)
        return aligned, position_steps
