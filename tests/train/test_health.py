"""The mechanism is alive after training, not only correct: alignment channels fire, α is not mean pooling.

Before per-channel input normalisation (``astar.train.normalise``), the eq. (4) convolutions
of the small preset lost 41-44 % of their channels in the first Adam step and most of the
rest soon after, and α's entropy was exactly ln P; these tests fail on that code.
"""
from __future__ import annotations

import math

import pytest
import torch

from astar.train.health import combined_figures, health_line, position_entropy_ratio
from astar.train.trainer import train

DEAD_LIMIT = 0.10
"""Most of a layer's alignment channels that may be dead after training."""
UNIFORM = 0.98
"""α entropy (share of ln P) at or above which attention is as good as mean pooling: 0.98 is
what position scores of s.d. ≈ 0.33 give over 16 positions (with ±0.01 weights: 0.9999+)."""


def health_after(result) -> dict[str, float]:
    row = result.history[-1]
    return {key: value for key, value in row.items() if key.startswith(("dead_", "alpha_", "beta_", "top_"))}


def assert_alive(health: dict[str, float], layers: tuple[str, ...]) -> None:
    for name in layers:
        assert health[f"dead_{name}"] <= DEAD_LIMIT, f"{name}: {health[f'dead_{name}']:.0%} of its channels are dead"
    assert math.isclose(sum(health[f"beta_{name}"] for name in (*layers, "pool5")), 1.0, rel_tol=1e-4)


@pytest.fixture(scope="module")
def small_run(synthetic_store, tmp_path_factory):
    """Six epochs (30 Adam steps) of the small preset on every layer at its recipe's lr."""
    out = tmp_path_factory.mktemp("health") / "run"
    return train(synthetic_store.train_config(out, layers=None, epochs=6, lr=None, batch_size=8))


@pytest.mark.slow
def test_small_preset_keeps_its_alignment_channels_alive(small_run):
    assert small_run.steps >= 24  # a few dozen Adam steps
    assert_alive(health_after(small_run), ("pool2", "pool3", "pool4"))


@pytest.mark.slow
def test_small_preset_position_attention_is_not_mean_pooling(small_run):
    """Section 4.2's ±0.01 score weights left α within 1e-4 of uniform here (entropy 0.9999-1.0)."""
    assert health_after(small_run)["alpha_entropy"] < UNIFORM


def test_entropy_ratio_is_one_for_uniform_attention_and_zero_for_a_single_position():
    uniform = torch.full((1, 16), 1 / 16)
    peaked = torch.zeros(1, 16).index_fill_(1, torch.tensor([3]), 1.0)
    ratios = position_entropy_ratio(torch.cat([uniform, peaked]), torch.tensor([16, 16]))
    torch.testing.assert_close(ratios, torch.tensor([1.0, 0.0]))
    assert position_entropy_ratio(torch.ones(1, 1), torch.tensor([1])).item() == 0.0


def test_the_fc7_baseline_has_no_health_figures_and_an_empty_line():
    assert combined_figures([None]) == {} and health_line({}) == ""
