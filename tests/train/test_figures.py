"""Figure-3 attention figures: one panel per word, the most attended frame, the β bars."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import imread

from astar.extract import decode_video
from astar.extract.preprocessing import PAPER
from astar.pipelines.synthetic import generate_dataset
from astar.train.figures import WordAttention, attention_figure, caption_words, save_attention_figure
from astar.train.model.astar import ASTAR
from astar.train.model.batch import random_batch
from astar.train.model.config import C3D_GEOMETRY, ModelConfig
from astar.train.model.search import beam_search
from astar.train.text import EOS_ID, PAD_ID, build_vocabulary

LAYERS = ("pool2", "pool3", "pool4", "pool5")


def panels(figure: Figure, kind: str) -> dict[int, object]:
    """Word index → axes of ``kind`` ("frame" or "layers"), by the module's gid convention."""
    found = {}
    for axes in figure.axes:
        gid = axes.get_gid() or ""
        if gid.startswith("word-") and gid.endswith(f"-{kind}"):
            found[int(gid.split("-")[1])] = axes
    return found


def numbered_frames(count: int) -> np.ndarray:
    """(count, 112, 112, 3) frames whose every pixel holds the frame's index."""
    return np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 112, 112, 3)).copy()


def shown_frame(axes: object) -> int:
    return int(np.asarray(axes.images[0].get_array())[0, 0, 0])


def one_hot_attention(grid_steps: int, side: int, step: int, cell: tuple[int, int], layers: int = 4) -> WordAttention:
    """Two words: word 1 (fc7, zero row) and word 2 attending mostly to one cell of ``step``."""
    alpha = np.full((grid_steps, side, side), 0.1 / (grid_steps * side * side - 1))
    alpha[step, cell[0], cell[1]] = 0.9
    positions = np.stack([np.zeros(alpha.size), alpha.ravel()])
    beta = np.stack([np.zeros(layers), np.full(layers, 1 / layers)])
    return WordAttention(positions, beta, LAYERS if layers == 4 else ("pool4",), C3D_GEOMETRY[-1 if side == 4 else -2])


@pytest.fixture(scope="module")
def decoded_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[str]]:
    """Frames of a generated synthetic clip as decode_video returns them, and its captions."""
    folder = tmp_path_factory.mktemp("clip")
    clip = generate_dataset(folder, n_videos=1, seed=1, duration_range_s=(9.0, 10.0))[0]
    return decode_video(folder / clip.filename, PAPER).frames, clip.captions


@pytest.mark.parametrize("variant", [{}, {"attention": "hard"}, {"variant": "single", "layers": ("pool3",)}])
def test_a_decoded_caption_gives_a_png_with_one_panel_per_word(
    decoded_clip: tuple[np.ndarray, list[str]], tmp_path: Path, variant: dict[str, object]
) -> None:
    frames, captions = decoded_clip
    vocabulary = build_vocabulary(captions, min_count=1)
    torch.manual_seed(0)
    config = ModelConfig.small(len(vocabulary), pad_id=PAD_ID, eos_id=EOS_ID, **variant)
    model = ASTAR(config).eval()
    with torch.no_grad():
        model.word_scores.bias[EOS_ID] = -30.0  # ten words, so the panels wrap onto a second row
    batch = random_batch([math.ceil(len(frames) / 16)], config.layer_channels, config.fc7_dim)
    result = beam_search(model, batch, max_len=10, beam_size=2, with_attention=True)
    words = caption_words(result.tokens[0].tolist(), vocabulary)
    attention = WordAttention.of_video(result.attention, 0, len(words), config)
    path = save_attention_figure(tmp_path / "figures" / "clip.png", frames, words, attention, title="clip")
    assert imread(path).shape[2] in (3, 4)
    figure = attention_figure(frames, words, attention)
    assert len(words) == 10
    assert sorted(panels(figure, "frame")) == sorted(panels(figure, "layers")) == list(range(10))
    assert [axes.get_xlabel() for _, axes in sorted(panels(figure, "frame").items())] == words


def test_the_frame_shown_is_from_the_most_attended_pool5_step() -> None:
    frames = numbered_frames(40)  # 3 pool5 steps: frames 0–15, 16–31, 32–39 (+ padding)
    figure = attention_figure(frames, ["a", "cat"], one_hot_attention(3, 4, step=1, cell=(2, 1)))
    assert 16 <= shown_frame(panels(figure, "frame")[1]) <= 31


def test_a_step_that_runs_into_padding_shows_a_real_frame() -> None:
    frames = numbered_frames(40)
    figure = attention_figure(frames, ["a", "cat"], one_hot_attention(3, 4, step=2, cell=(0, 0)))
    assert 32 <= shown_frame(panels(figure, "frame")[1]) <= 39


def test_the_overlay_is_the_attended_steps_map_on_the_pool5_cell_centres() -> None:
    figure = attention_figure(numbered_frames(40), ["a", "cat"], one_hot_attention(3, 4, step=1, cell=(2, 1)))
    frame = panels(figure, "frame")[1]
    overlay = np.asarray(frame.images[1].get_array())
    assert overlay.shape == (4, 4, 4)
    assert np.unravel_index(overlay[..., 3].argmax(), (4, 4)) == (2, 1)
    assert frame.images[1].get_extent() == [-16.5, 111.5, 111.5, -16.5]  # cell i centred at 32i − 1/2
    assert frame.get_xlim() == (-0.5, 111.5)


def test_a_single_layer_model_is_drawn_on_its_own_grid() -> None:
    # pool4: 2 steps per pool5 step, 7×7 cells, each step spanning 8 frames.
    attention = one_hot_attention(6, 7, step=3, cell=(5, 2), layers=1)
    figure = attention_figure(numbered_frames(40), ["a", "cat"], attention)
    frame = panels(figure, "frame")[1]
    assert 24 <= shown_frame(frame) <= 31
    overlay = np.asarray(frame.images[1].get_array())
    assert overlay.shape == (7, 7, 4)
    assert np.unravel_index(overlay[..., 3].argmax(), (7, 7)) == (5, 2)
    assert len(panels(figure, "layers")[1].patches) == 1


def test_bars_are_the_layer_weights_and_word_one_says_fc7() -> None:
    attention = one_hot_attention(3, 4, step=0, cell=(0, 0))
    beta = np.array([[0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    attention = WordAttention(attention.positions, beta, LAYERS)
    figure = attention_figure(numbered_frames(20), ["a", "cat"], attention)
    first, second = panels(figure, "layers")[0], panels(figure, "layers")[1]
    assert [text.get_text() for text in first.texts] == ["fc7"] and not first.patches
    assert len(panels(figure, "frame")[0].images) == 1  # no attention overlay for word 1
    np.testing.assert_allclose([bar.get_height() for bar in second.patches], beta[1])
    assert [label.get_text() for label in second.get_xticklabels()] == list(LAYERS)


@pytest.mark.parametrize(
    ("variant", "labels", "grid"),
    [
        ({"variant": "hypercolumn"}, ("hypercolumn",), "pool5"),
        ({"variant": "single", "layers": ("pool3",)}, ("pool3",), "pool3"),
        ({"layers": ("pool4", "pool5")}, ("pool4", "pool5"), "pool5"),
    ],
)
def test_word_attention_takes_its_grid_and_bar_labels_from_the_config(
    variant: dict[str, object], labels: tuple[str, ...], grid: str
) -> None:
    config = ModelConfig.small(12, **variant)
    model = ASTAR(config).eval()
    with torch.no_grad():
        model.word_scores.bias[config.eos_id] = -30.0
    batch = random_batch([2], config.layer_channels, config.fc7_dim)
    result = beam_search(model, batch, max_len=4, beam_size=1, with_attention=True)
    attention = WordAttention.of_video(result.attention, 0, 3, config)
    assert (attention.layer_labels, attention.grid_layer) == (labels, grid)
    assert attention.positions.shape[0] == attention.layers.shape[0] == 3
    assert attention.layers.shape[1] == len(labels)


def test_caption_words_stop_at_eos_and_keep_every_other_token() -> None:
    vocabulary = build_vocabulary(["a cat runs"], min_count=1)
    tokens = [vocabulary.id("a"), 3, vocabulary.id("cat"), EOS_ID, vocabulary.id("runs"), PAD_ID]
    assert caption_words(tokens, vocabulary) == ["a", "<unk>", "cat"]
