"""Spatiotemporal alignment of the stored layers onto the top layer's grid: eq. (4) and Appendix D.

Every transform here maps one stored layer a_l, (B, T_l, H_l, W_l, C_l), to features
on the top layer a_L's T_L×H_L×W_L grid (C3D: pool5, 4×4), (B, P, D) with P = T_L·H_L·W_L
flattened row-major over (t, y, x).

Everything is derived from the stored geometry (``LayerGeometry``: strides, receptive-field
centres and sizes in input frames and pixels), never from a backbone's name. Along each
axis, with s_l and c_l layer l's stride and cell-0 centre, cell j of a_l is centred at
s_l·j + c_l and top cell i at s_L·i + c_L; r = s_L / s_l is the pooling ratio.

Eq. (4) keeps centres with a 'same' convolution (kernel k = 2·log₂ r + 1, padding k//2:
one 3-wide step per halving between the layer and the top) and then max-pools windows
of w cells at stride r, padded by p = (w − 1)/2 + (c_l − c_L)/s_l so that window i is
centred on top cell i. w = r when that p is a whole number, else r + 1 (an odd window
around a centre that falls on a cell).

- C3D (Appendix C; 0-based): pool_l cells are centred at s·j + (s − 1)/2 (unpadded pools,
  'same' convolutions) and pool5 pads (0, 1, 1), so its cell i is centred at pixel
  32i − 1/2 and frame 16t + 15/2. This gives Section 4.2's 7³ / 5³ / 3³ kernels, 8³ / 4³ / 2³
  windows and padding (0, r/2, r/2): aligned row i pools layer-l rows ri − r/2 … ri + r/2 − 1,
  centred at ri − 1/2, i.e. at pixel 32i − 1/2 for every layer. Pooling with ``ceil_mode``
  instead would land 16 pixels, half a pool5 cell, right of and below pool5.
- torchvision's video ResNets: strided 3-wide convolutions padded by 1 put every stage's cell
  j at s·j, so a centre falls on a cell: windows of 9 / 5 / 3 at strides 8 / 4 / 2, padded
  4 / 2 / 1 (MC3's stages 2–4 keep every frame: ratio 1 in time, no pooling there).

Appendix C's Table 4 (1-based, ignoring pool5's spatial padding) lists the field of
â_l in a_l. Section 4.2's kernels 7³ / 5³ / 3³ give [8i − 10, 8i + 3], [4i − 5, 4i + 2]
and [2i − 2, 2i + 1] for pool2 / pool3 / pool4. Only the pool4 row agrees: the pool2 row
[8i − 14, 8i + 7] needs a 15³ kernel (±7), and the pool3 row [4i − 6, 4i + 4], 11 wide
and lopsided, follows from no centred kernel; both look chosen to make every input
field equal pool5's. We implement Section 4.2's kernels: the field *centres* coincide
across layers, which is what alignment needs, while the field widths differ by layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astar.extract.store.schema import LayerGeometry

from .batch import time_mask
from .config import ModelConfig

Window = tuple[int, int, int]
"""(kernel, stride, padding) of a pooling window along one axis, in the layer's cells."""


@dataclass(frozen=True)
class AxisAlignment:
    """How layer l meets the top grid along one axis (module docstring).

    Attributes:
        ratio: r = s_L / s_l, layer cells per top cell.
        kernel: k of eq. (4)'s 'same' convolution, 2·log₂ r + 1 (1 when r = 1).
        window: w, cells each max-pooling window spans (r, or r + 1 to stay centred).
        padding: p, cells before cell 0 the first window starts at.
        offset: (c_L − c_l)/s_l, where top cell 0's centre falls in layer-l cells.
    """

    ratio: int
    kernel: int
    window: int
    padding: int
    offset: float


def _axis(layer_stride: int, layer_centre: float | None, top_stride: int, top_centre: float | None, what: str) -> AxisAlignment:
    if top_stride % layer_stride:
        raise ValueError(f"{what}: stride {top_stride} is not a multiple of {layer_stride}; the grids cannot be aligned")
    if layer_centre is None or top_centre is None:
        raise ValueError(f"{what}: no receptive-field centre in the store's geometry; alignment needs one")
    ratio = top_stride // layer_stride
    offset = (top_centre - layer_centre) / layer_stride
    window = ratio if float((ratio - 1) / 2 - offset).is_integer() else ratio + 1
    padding = (window - 1) / 2 - offset
    if not padding.is_integer() or not 0 <= padding <= window // 2:
        raise ValueError(f"{what}: no pooling window of {ratio} or {ratio + 1} cells is centred on the top grid")
    return AxisAlignment(ratio, 2 * math.ceil(math.log2(ratio)) + 1, window, int(padding), offset)


def axis_alignments(layer: LayerGeometry, top: LayerGeometry) -> tuple[AxisAlignment, AxisAlignment]:
    """(time, space) alignment of ``layer`` onto ``top``'s grid.

    C3D's pool2: time (8, 7, 8, 0), space (8, 7, 8, 4); r3d_18's layer1: (8, 7, 9, 4) on both axes.
    """
    return (
        _axis(layer.time_stride, layer.time_centre, top.time_stride, top.time_centre, f"{layer.name} time"),
        _axis(layer.space_stride, layer.space_centre, top.space_stride, top.space_centre, f"{layer.name} space"),
    )


def top_field(layer: LayerGeometry, top: LayerGeometry) -> tuple[Window, Window]:
    """The receptive field N_{i,L} of a top cell in ``layer``, as a (time, space) pooling window.

    A top cell sees F_L input units centred on its centre; in layer-l cells that is a window
    of (F_L − F_l)/s_l + 1 cells at stride r, padded to be centred (Appendix C's definition).
    E.g. C3D's pool4: time (6, 2, 2), space (6, 2, 3).
    """
    axes = []
    for axis, (stride, field, top_field_size) in zip(
        axis_alignments(layer, top),
        ((layer.time_stride, layer.time_field, top.time_field), (layer.space_stride, layer.space_field, top.space_field)),
    ):
        if field is None or top_field_size is None:
            raise ValueError(f"{layer.name}: no receptive-field size in the store's geometry")
        kernel = (top_field_size - field) // stride + 1
        axes.append((kernel, axis.ratio, int((kernel - 1) / 2 - axis.offset)))
    return axes[0], axes[1]


def channels_first(layer_map: Tensor) -> Tensor:
    """Stored (B, T, H, W, C) → Conv3d's (B, C, T, H, W)."""
    return layer_map.permute(0, 4, 1, 2, 3)


def flatten_positions(grid: Tensor) -> Tensor:
    """(B, D, T_L, H_L, W_L) → (B, T_L·H_L·W_L, D), positions row-major over (t, y, x)."""
    return grid.flatten(2).transpose(1, 2)


def zero_padding(layer_map: Tensor, valid_steps: Tensor) -> Tensor:
    """Zero the padded time steps of a stored (B, T, H, W, C) map; valid_steps is (B, T)."""
    return layer_map * valid_steps[:, :, None, None, None].to(layer_map.dtype)


def embedding_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """The two-layer ReLU MLP of Appendix D that embeds features into the common space, (…, in_dim) → (…, out_dim);
    each layer's input is centred and scaled over its channels (LayerNorm without parameters).

    Our reading, as for eq. (4)'s inputs (``normalise``): a max over a field of centred
    values is biased positive and a hidden ReLU layer is all positive, so without it every
    unit's gradient has one sign over its fan-in and Adam's first steps kill most units.
    Measured by ``benchmarks/fidelity.py --epochs 10 --rows maxpool,avgpool`` (3 seeds):
    dead output units 77 % / 75 % (maxpool / avgpool) without, 53 % / 2 % with; test
    CIDEr-D 178.1 ± 26.6 / 223.8 ± 31.8 without, 229.2 ± 15.5 / 253.3 ± 39.6 with.
    """
    return nn.Sequential(
        nn.LayerNorm(in_dim, elementwise_affine=False), nn.Linear(in_dim, out_dim), nn.ReLU(),
        nn.LayerNorm(out_dim, elementwise_affine=False), nn.Linear(out_dim, out_dim), nn.ReLU(),
    )


class Unchanged(nn.Module):
    """â_L = a_L (eq. 4), and the raw layer of the single-layer baselines: only flattened."""

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, T, H, W, C), (B, T) → (B, T·H·W, C)."""
        return zero_padding(layer_map, valid_steps).flatten(1, 3)


class ConvAlignment(nn.Module):
    """Eq. (4): â_l = maxpool_r(ReLU(Σ_k a_l(k) * U_{k,l})), kernels and windows from the geometry
    (C3D: Section 4.2's)."""

    def __init__(self, layer: LayerGeometry, top: LayerGeometry, in_channels: int, out_channels: int) -> None:
        super().__init__()
        time, space = axis_alignments(layer, top)
        kernel = (time.kernel, space.kernel, space.kernel)
        # The stored maps reach the conv channels-last (``channels_first`` is a view); a weight
        # kept channels-last too spares oneDNN and cuDNN a copy of it in every forward and
        # backward pass (pool3's 5³ kernel at the paper's widths: 65 MB, a third of a CPU step).
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, padding=tuple(k // 2 for k in kernel)).to(
            memory_format=torch.channels_last_3d)
        self.pool = nn.MaxPool3d(
            (time.window, space.window, space.window), stride=(time.ratio, space.ratio, space.ratio),
            padding=(time.padding, space.padding, space.padding),
        )

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T_L, H_l, W_l, C_l), (B, r·T_L) → (B, T_L·H_L·W_L, D)."""
        # Zeroed padding is exactly the conv's own zero padding at a video's end.
        convolved = self.conv(channels_first(zero_padding(layer_map, valid_steps)))
        return flatten_positions(self.pool(torch.relu(convolved)))


class TileMLPAlignment(nn.Module):
    """Appendix D "MLP": â_{i,l} = MLP(vec(a_l over top cell i's tile)).

    The tiles are eq. (4)'s pooling windows (C3D: r³, disjoint), so centres match ``ConvAlignment``'s.
    """

    def __init__(self, layer: LayerGeometry, top: LayerGeometry, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.axes = axis_alignments(layer, top)
        self.top_shape = (top.height, top.width)
        time, space = self.axes
        self.mlp = embedding_mlp(in_channels * time.window * space.window**2, out_channels)

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T_L, H_l, W_l, C_l), (B, r·T_L) → (B, T_L·H_L·W_L, D)."""
        time, space = self.axes
        grid = channels_first(zero_padding(layer_map, valid_steps))
        batch, channels, steps, height, width = grid.shape
        top_steps = steps // time.ratio
        padding = []
        for axis, size, cells in ((space, width, self.top_shape[1]), (space, height, self.top_shape[0]), (time, steps, top_steps)):
            padding += [axis.padding, (cells - 1) * axis.ratio + axis.window - size - axis.padding]
        grid = F.pad(grid, padding)
        tiles = grid.unfold(2, time.window, time.ratio).unfold(3, space.window, space.ratio).unfold(4, space.window, space.ratio)
        tiles = tiles.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(batch, -1, channels * time.window * space.window**2)
        return self.mlp(tiles)


class FieldPoolAlignment(nn.Module):
    """Appendix D eqs. (15–16): max or mean of a_l over N_{i,l}, then an MLP.

    N_{i,l} is top cell i's receptive field in layer l (``top_field``), padded
    steps excluded from both the max and the mean.
    """

    def __init__(self, layer: LayerGeometry, top: LayerGeometry, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        (t_kernel, t_stride, t_pad), (s_kernel, s_stride, s_pad) = top_field(layer, top)
        self.kernel = (t_kernel, s_kernel, s_kernel)
        self.stride = (t_stride, s_stride, s_stride)
        self.padding = (s_pad, s_pad, s_pad, s_pad, t_pad, t_pad)
        self.mode = mode
        self.mlp = embedding_mlp(in_channels, out_channels)

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, T_l, H_l, W_l, C_l), (B, T_l) → (B, T_L·H_L·W_L, D)."""
        grid = channels_first(layer_map)
        valid = valid_steps[:, None, :, None, None]
        # Padded explicitly: torch's pools refuse windows wider than the unpadded input.
        if self.mode == "max":
            grid = F.pad(grid.masked_fill(~valid, float("-inf")), self.padding, value=float("-inf"))
            pooled = F.max_pool3d(grid, self.kernel, self.stride)
            # Windows of padded top steps hold only -inf; attention masks them anyway.
            pooled = pooled.masked_fill(pooled == float("-inf"), 0.0)
        else:
            weight = valid.to(grid.dtype).expand(-1, 1, -1, grid.shape[3], grid.shape[4])
            total = F.avg_pool3d(F.pad(grid * weight, self.padding), self.kernel, self.stride)
            count = F.avg_pool3d(F.pad(weight, self.padding), self.kernel, self.stride)
            pooled = total / count.clamp_min(torch.finfo(count.dtype).tiny)
        return self.mlp(flatten_positions(pooled))


class HypercolumnSample(nn.Module):
    """Appendix D hypercolumn: a_l interpolated at top cell i's centre.

    Top cell i's centre falls at layer-l cell r·i + offset (``AxisAlignment.offset``): on a
    cell (video ResNets), which is then taken as it is, or halfway between two (C3D: rows
    ri − 1 and ri, steps rt + r/2 − 1 and rt + r/2), whose mean is the linear interpolation;
    a tap outside the map is left out of the mean.
    """

    def __init__(self, layer: LayerGeometry, top: LayerGeometry) -> None:
        super().__init__()
        self.axes = axis_alignments(layer, top)
        self.top_shape = (top.height, top.width)
        for axis in self.axes:
            if math.floor(axis.offset) < -1 or (math.floor(axis.offset) < 0 and axis.offset.is_integer()):
                raise ValueError(f"{layer.name}: the top grid's centres fall outside the layer")

    def forward(self, layer_map: Tensor, valid_steps: Tensor) -> Tensor:
        """(B, r·T_L, H_l, W_l, C_l), (B, r·T_L) → (B, T_L·H_L·W_L, C_l)."""
        grid = channels_first(zero_padding(layer_map, valid_steps))
        kernel, stride, padding = [], [], []
        for axis, dim in zip((self.axes[0], self.axes[1], self.axes[1]), (2, 3, 4)):
            first = math.floor(axis.offset)
            if first > 0:
                grid = grid.narrow(dim, first, grid.shape[dim] - first)
            kernel.append(1 if axis.offset.is_integer() else 2)
            stride.append(axis.ratio)
            padding.append(max(0, -first))
        sampled = F.avg_pool3d(grid, kernel, stride=stride, padding=padding, count_include_pad=False)
        steps = layer_map.shape[1] // self.axes[0].ratio
        return flatten_positions(sampled[:, :, :steps, : self.top_shape[0], : self.top_shape[1]])


LEARNT_ALIGNMENTS = (ConvAlignment, TileMLPAlignment, FieldPoolAlignment)
"""Transforms that learn â_l and end in a ReLU, so their channels can die (``astar.train.model.health``)."""


def layer_transform(config: ModelConfig, name: str) -> nn.Module:
    """The module that brings layer ``name`` onto the attention grid for ``config.variant``."""
    variant, channels, width = config.variant, config.channels(name), config.context_dim
    layer, top = config.layer(name), config.top
    if variant == "maxpool":
        return FieldPoolAlignment(layer, top, channels, width, "max")
    if variant == "avgpool":
        return FieldPoolAlignment(layer, top, channels, width, "mean")
    if name == top.name or variant == "single":
        return Unchanged()
    if variant == "astar":
        return ConvAlignment(layer, top, channels, width)
    if variant == "mlp":
        return TileMLPAlignment(layer, top, channels, width)
    if variant == "hypercolumn":
        return HypercolumnSample(layer, top)
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
        self.time_ratios = {name: config.time_ratio(name) for name in config.layers}
        self.top_cells = config.top.height * config.top.width

    def forward(self, features: dict[str, Tensor], top_steps: Tensor) -> tuple[Tensor, Tensor]:
        """Align the stored layers.

        Args:
            features: per layer (B, T_l, H_l, W_l, C_l), zero-padded in time.
            top_steps: (B,) valid top-layer steps per video (C3D: pool5 steps).

        Returns:
            aligned (B, L, P, D) and the position mask (B, P), True on valid positions.
        """
        masks = {name: time_mask(top_steps * ratio, features[name].shape[1]) for name, ratio in self.time_ratios.items()}
        maps = [transform(features[name], masks[name]) for name, transform in self.transforms.items()]
        aligned = torch.cat(maps, dim=-1).unsqueeze(1) if self.concatenate else torch.stack(maps, dim=1)
        first = next(iter(self.transforms))
        if self.native_grid:
            _, _, height, width, _ = features[first].shape
            position_steps = masks[first].repeat_interleave(height * width, dim=1)
        else:
            top_mask = time_mask(top_steps, features[first].shape[1] // self.time_ratios[first])
            position_steps = top_mask.repeat_interleave(self.top_cells, dim=1)
        return aligned, position_steps
