"""Attention figures like the paper's Figure 3 (Section 4.5), drawn with matplotlib's Agg.

One panel per generated word y_t, in caption order, at most ``MAX_COLUMNS`` per row:

- above, a bar plot of the layer weights β_t (eq. 6), one bar per attended map
  (pool2 … pool5 for ASTAR, a single bar for single-layer and hypercolumn models);
  for hard attention the chosen layer m_t is drawn in a darker colour;
- below, the input frame with the strongest spatiotemporal attention: α_t (eq. 5) is
  summed over the spatial cells of each time step of its grid, the strongest step is
  taken, and the middle frame of that step's span of input frames is shown (the span
  clamped to the video's real frames), with that step's α map overlaid on the pixels
  the grid cells are centred on (``GRID_GEOMETRY``); the word is written underneath.

Word 1 comes from fc7 alone (h_1 = tanh(C a_{L+1}), Section 3.1): its bar panel says
"fc7" and its frame, the video's middle one, has no overlay.

Frames are shown as decoded (``astar.extract.decode_video``): 112×112 RGB, after the
preprocessing's resize and crop. Axes carry gids ``word-{i}-layers`` and
``word-{i}-frame`` for the 0-based word index i, so a figure's panels can be found.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from astar.extract.folders import register_kind
from astar.extract.store.schema import FPS, LayerGeometry

from .model.astar import CaptionAttention
from .model.config import C3D_GEOMETRY, ModelConfig
from .text import EOS_ID, Vocabulary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch import Tensor

FIGURES_FOLDER = register_kind("figures", "attention figure folder")
"""The ``folders`` kind of a folder of attention figures (``astar-caption --attention``)."""

MAX_COLUMNS = 8
"""Word panels per row before the figure wraps."""

OVERLAY_COLOURMAP = "viridis"
OVERLAY_OPACITY = 0.6
"""Opacity of the α heat map on the most attended cell; it fades to clear with α."""
FC7_LABEL = "fc7"


@dataclass(frozen=True)
class WordAttention:
    """One video's attention, one row per generated word (row 0, word 1 from fc7, is zero).

    Attributes:
        positions: (n, P) α_t on ``grid_layer``'s grid, P = T_g·H_g·W_g flattened
            row-major over (time, row, column).
        layers: (n, L) β_t.
        layer_labels: L names for β's bars.
        grid: the stored layer whose grid α lives on (the top layer, C3D's pool5, for every
            aligned model); its geometry places the cells on the frame (cell j of a layer
            with stride s is centred at s·j + centre; aligned maps share the top's centres).
        choices: (n,) hard attention's chosen layer m_t, else None.
    """

    positions: np.ndarray
    layers: np.ndarray
    layer_labels: tuple[str, ...]
    grid: LayerGeometry = C3D_GEOMETRY[-1]
    choices: np.ndarray | None = None

    @property
    def grid_layer(self) -> str:
        """Name of the layer whose grid α lives on."""
        return self.grid.name

    @classmethod
    def of_video(cls, attention: CaptionAttention, video: int, words: int, config: ModelConfig) -> WordAttention:
        """Rows 0 … ``words`` − 1 of video ``video`` of a batch's ``CaptionAttention``."""
        return cls(
            positions=_rows(attention.positions, video, words),
            layers=_rows(attention.layers, video, words),
            layer_labels=("hypercolumn",) if config.variant == "hypercolumn" else config.layers,
            grid=config.layer(config.layers[0]) if config.variant == "single" else config.top,
            choices=None if attention.choices is None else _rows(attention.choices, video, words),
        )


def _rows(values: Tensor, video: int, words: int) -> np.ndarray:
    """(B, T, …) → video ``video``'s first ``words`` rows as a NumPy array."""
    return values[video, :words].detach().cpu().numpy()


def caption_words(tokens: Sequence[int], vocabulary: Vocabulary) -> list[str]:
    """The generated tokens before ``<eos>``, one word per attention row (specials kept)."""
    words = []
    for token in tokens:
        if token == EOS_ID:
            break
        words.append(vocabulary.tokens[token])
    return words


def step_attention(positions: np.ndarray, grid: LayerGeometry) -> np.ndarray:
    """(P,) α_t → (T_g, H_g, W_g) on ``grid``."""
    return positions.reshape(-1, grid.height, grid.width)


def strongest_step(positions: np.ndarray, grid: LayerGeometry) -> int:
    """The time step of ``grid`` whose cells hold the most α (first on ties)."""
    return int(step_attention(positions, grid).sum((1, 2)).argmax())


def frame_of_step(step: int, grid: LayerGeometry, frame_count: int) -> int:
    """Middle frame of the input frames that time step ``step`` spans, within 0 … frame_count − 1.

    A step of ``grid`` spans its ``time_stride`` frames (16 for pool5); frames past
    ``frame_count`` are the extraction's padding and are never shown.
    """
    span = grid.time_stride
    first = min(step * span, frame_count - 1)
    last = min((step + 1) * span, frame_count) - 1
    return (first + last) // 2


def attention_figure(
    frames: np.ndarray, words: Sequence[str], attention: WordAttention, title: str | None = None
) -> Figure:
    """The Figure-3 panels (module docstring) of one captioned video.

    Args:
        frames: (N, 112, 112, 3) uint8 RGB, the video's decoded frames at 2 fps.
        words: the n generated words, y_1 … y_n (``caption_words``).
        attention: at least n rows.
        title: optional line above the panels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # here: only drawing a figure needs matplotlib
    from matplotlib.figure import Figure

    if len(words) > attention.positions.shape[0]:
        raise ValueError(f"{len(words)} words but attention for only {attention.positions.shape[0]}")
    columns = max(1, min(len(words), MAX_COLUMNS))
    panel_rows = max(1, math.ceil(len(words) / columns))
    figure = Figure(figsize=(1.7 * columns, 3.0 * panel_rows + (0.4 if title else 0)), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2 * panel_rows, columns, height_ratios=[1, 2] * panel_rows)
    for index, word in enumerate(words):
        row, column = divmod(index, columns)
        bars = figure.add_subplot(grid[2 * row, column], gid=f"word-{index}-layers")
        frame = figure.add_subplot(grid[2 * row + 1, column], gid=f"word-{index}-frame")
        if index == 0:
            _draw_fc7_panel(bars, frame, frames)
        else:
            choice = None if attention.choices is None else int(attention.choices[index])
            _draw_layer_weights(bars, attention.layers[index], attention.layer_labels, choice)
            _draw_attended_frame(frame, frames, attention.positions[index], attention.grid)
        frame.set_xlabel(word, fontsize=11)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def save_attention_figure(
    path: str | Path, frames: np.ndarray, words: Sequence[str], attention: WordAttention, title: str | None = None
) -> Path:
    """Write ``attention_figure(...)`` as a PNG to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    attention_figure(frames, words, attention, title).savefig(path, format="png", dpi=100)
    return path


def _draw_fc7_panel(bars: Axes, frame: Axes, frames: np.ndarray) -> None:
    """Word 1: no attention; the whole video's fc7, shown by its middle frame."""
    bars.text(0.5, 0.5, FC7_LABEL, ha="center", va="center", fontsize=10, transform=bars.transAxes)
    bars.set_xticks([])
    bars.set_yticks([])
    _show_frame(frame, frames, (len(frames) - 1) // 2)


def _draw_layer_weights(bars: Axes, weights: np.ndarray, labels: Sequence[str], choice: int | None) -> None:
    """β_t as bars in [0, 1]; the hard-attention choice m_t darker."""
    colours = ["tab:blue"] * len(weights)
    if choice is not None:
        colours = ["navy" if layer == choice else "lightsteelblue" for layer in range(len(weights))]
    bars.bar(range(len(weights)), weights, color=colours)
    bars.set_ylim(0, 1)
    bars.set_xticks(range(len(labels)), labels, fontsize=6, rotation=45)
    bars.set_yticks([0, 1], ["0", "1"], fontsize=6)


def _draw_attended_frame(axes: Axes, frames: np.ndarray, positions: np.ndarray, grid: LayerGeometry) -> None:
    """The frame of the strongest α step with that step's α map over its pixels."""
    step = strongest_step(positions, grid)
    _show_frame(axes, frames, frame_of_step(step, grid, len(frames)))
    alpha_map = step_attention(positions, grid)[step]
    spacing, first_centre = grid.space_stride, grid.space_centre or 0.0
    low = first_centre - spacing / 2
    high = low + spacing * alpha_map.shape[0]
    peak = float(alpha_map.max())
    strength = alpha_map / peak if peak > 0 else alpha_map
    from matplotlib import colormaps

    overlay = colormaps[OVERLAY_COLOURMAP](strength)
    overlay[..., 3] = OVERLAY_OPACITY * strength  # unattended cells leave the frame as it is
    axes.imshow(overlay, interpolation="bilinear", extent=(low, high, high, low))
    height, width = frames.shape[1:3]
    axes.set_xlim(-0.5, width - 0.5)  # the overlay's grid may overhang the frame (pool5's padding)
    axes.set_ylim(height - 0.5, -0.5)


def _show_frame(axes: Axes, frames: np.ndarray, index: int) -> None:
    axes.imshow(frames[index])
    axes.set_title(f"{index / FPS:.1f} s", fontsize=7)
    axes.set_xticks([])
    axes.set_yticks([])
