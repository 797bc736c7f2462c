"""Hard attention: the K-sample bound (eq. 10) and the VIMCO estimator (eqs. 12–14), joint and layer-only."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from astar.train.model.batch import VideoBatch, random_batch
from astar.train.model.config import ModelConfig
from astar.train.model.hard import multi_sample_bound, vimco_learning_signals, vimco_surrogate
from astar.train.model.astar import ASTAR, caption_log_likelihood



def test_learning_signals_follow_eqs_13_and_14() -> None:
    log_likelihood = torch.randn(2, 4, dtype=torch.float64)
    signals = vimco_learning_signals(log_likelihood)
    for row, k in itertools.product(range(2), range(4)):
        ell = log_likelihood[row]
        others = [j for j in range(4) if j != k]
        geometric = math.exp(sum(ell[j].item() for j in others) / 3)  # eq. (14)
        held_out = math.log((sum(math.exp(ell[j].item()) for j in others) + geometric) / 4)
        bound = math.log(sum(math.exp(value) for value in ell.tolist()) / 4)
        assert math.isclose(signals[row, k].item(), bound - held_out, rel_tol=1e-9)


def test_surrogate_value_is_the_bound_and_its_gradient_weights_samples_by_omega() -> None:
    log_likelihood = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    log_proposal = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    surrogate = vimco_surrogate(log_likelihood, log_proposal)
    torch.testing.assert_close(surrogate, multi_sample_bound(log_likelihood))
    surrogate.sum().backward()
    torch.testing.assert_close(log_likelihood.grad, log_likelihood.detach().softmax(-1))  # ω_k
    torch.testing.assert_close(log_proposal.grad, vimco_learning_signals(log_likelihood))


CASES = [
    # (attention, order, caption, K): each small enough to enumerate every K-tuple of trajectories.
    pytest.param("hard", "position_first", [2, 1], 3, id="paper-position-first"),  # 32 pairs, 32³ tuples
    pytest.param("hard", "layer_first", [2, 3, 1], 2, id="paper-layer-first"),  # 32² trajectories, 32⁴ tuples
    pytest.param("hard_layer", "position_first", [2, 3, 4, 1], 3, id="layer-only"),  # 2³ trajectories, 8³ tuples
]


def tiny_hard_model(attention: str = "hard", order: str = "position_first", samples: int = 3) -> tuple[ASTAR, VideoBatch]:
    generator = torch.Generator().manual_seed(0)
    # Two layers keep hundreds of float64 copies cheap; the estimator is the same for four.
    config = ModelConfig.small(6, layers=("pool4", "pool5"), attention=attention, order=order, samples=samples)
    model = ASTAR(config).double().train()
    with torch.no_grad():  # weights far from the ±0.01 init so α, β and p(Y | m) vary with m
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.3)
    batch = random_batch([1], config.layer_channels, config.fc7_dim, generator).to("cpu", torch.float64)
    return model, batch


def repeated(batch: VideoBatch, copies: int) -> VideoBatch:
    rows = torch.zeros(copies, dtype=torch.long)
    return VideoBatch(
        {name: value.index_select(0, rows) for name, value in batch.features.items()},
        batch.top_steps.index_select(0, rows),
        batch.fc7.index_select(0, rows),
    )


def every_trajectory(model: ASTAR, batch: VideoBatch, caption: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """ℓ = log p(Y | m, A) and log p(m | A) of every choice trajectory m of ``caption``, forced one by one."""
    layers, steps = model.config.attended_layers, len(caption) - 1
    if model.config.attention == "hard":  # a (position, layer) pair per word
        positions = model.encode(batch).mask.shape[1]
        options = torch.cartesian_prod(torch.arange(positions), torch.arange(layers))
    else:  # a layer per word
        options = torch.arange(layers)[:, None]
    trajectories = torch.cartesian_prod(*[torch.arange(len(options))] * steps).view(-1, steps)
    chosen = F.pad(options[trajectories], (0, 0, 1, 0))  # (N, T, ·): column 0, word 1, takes no choice
    tokens = torch.tensor([caption] * len(trajectories))
    forced = {"layer_choices": chosen[..., -1]}
    if model.config.attention == "hard":
        forced["position_choices"] = chosen[..., 0]
    logits, attention = model.teacher_forced(repeated(batch, len(trajectories)), tokens, **forced)
    return caption_log_likelihood(logits, tokens, model.config.pad_id), attention.choice_log_probs.sum(-1)


def exact_bound(model: ASTAR, batch: VideoBatch, caption: list[int]) -> torch.Tensor:
    """Eq. (10) by enumeration: Σ over all K-tuples of trajectories of p(m^1:K) log mean p(Y | m^k)."""
    log_likelihood, log_proposal = every_trajectory(model, batch, caption)
    tuples = torch.cartesian_prod(*[torch.arange(len(log_likelihood))] * model.config.samples)  # (N^K, K)
    probability = log_proposal[tuples].sum(-1).exp()
    torch.testing.assert_close(probability.sum(), torch.tensor(1.0, dtype=torch.float64))
    return (probability * multi_sample_bound(log_likelihood[tuples])).sum()


def gradient(model: ASTAR, value: torch.Tensor, names: list[str]) -> torch.Tensor:
    parameters = dict(model.named_parameters())
    return torch.cat([g.flatten() for g in torch.autograd.grad(value, [parameters[n] for n in names])])


@pytest.mark.slow
@pytest.mark.parametrize(("attention", "order", "caption", "samples"), CASES)
def test_vimco_gradient_estimates_average_to_the_exact_gradient_of_the_bound(
    attention: str, order: str, caption: list[int], samples: int
) -> None:
    model, batch = tiny_hard_model(attention, order, samples)
    # Parameters reached only through the score-function term (both attention scores),
    # and through both terms (the word scores).
    names = ["attention.layer_score.vector.weight", "attention.position_score.vector.weight", "word_scores.bias"]
    exact = gradient(model, -exact_bound(model, batch, caption) / len(caption), names)

    torch.manual_seed(1)
    copies, repeats = 400, 16
    tokens = torch.tensor([caption] * copies)
    many = repeated(batch, copies)
    means = torch.stack([gradient(model, model.loss(many, tokens), names) for _ in range(repeats)])
    estimate, standard_error = means.mean(0), means.std(0) / math.sqrt(repeats)

    assert exact.abs().max() > 10 * standard_error.max()  # the comparison has power
    assert torch.all((estimate - exact).abs() <= 5 * standard_error + 1e-10)


def test_layer_only_hard_attention_at_test_time_takes_the_most_probable_layer() -> None:
    model, batch = tiny_hard_model("hard_layer")
    model.eval()
    tokens = torch.tensor([[2, 3, 4, 1]])
    _, first = model.teacher_forced(batch, tokens)
    _, second = model.teacher_forced(batch, tokens)
    torch.testing.assert_close(first.choices, second.choices)
    torch.testing.assert_close(first.choices[:, 1:], first.layers[:, 1:].argmax(-1))
    assert first.position_choices is None


@pytest.mark.parametrize("order", ["position_first", "layer_first"])
def test_paper_hard_attention_at_test_time_takes_the_most_probable_position_and_layer(order: str) -> None:
    model, batch = tiny_hard_model("hard", order)
    model.eval()
    caption = [2, 1]
    _, chosen = model.teacher_forced(batch, torch.tensor([caption]))
    _, again = model.teacher_forced(batch, torch.tensor([caption]))
    torch.testing.assert_close(chosen.position_choices, again.position_choices)
    torch.testing.assert_close(chosen.choices, again.choices)
    _, log_proposal = every_trajectory(model, batch, caption)  # log p(i, l) of every pair, position-major
    best = int(log_proposal.argmax())
    layers = model.config.attended_layers
    assert (int(chosen.position_choices[0, 1]), int(chosen.choices[0, 1])) == (best // layers, best % layers)


def test_paper_hard_attention_records_the_marginals_of_its_joint_choice() -> None:
    model, batch = tiny_hard_model("hard", "position_first")
    _, log_proposal = every_trajectory(model, batch, [2, 1])
    joint = log_proposal.exp().view(-1, model.config.attended_layers)  # (P, L)
    _, attention = model.eval().teacher_forced(batch, torch.tensor([[2, 1]]))
    torch.testing.assert_close(attention.positions[0, 1], joint.sum(1))
    torch.testing.assert_close(attention.layers[0, 1], joint.sum(0))
