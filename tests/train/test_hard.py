"""Hard attention: the K-sample bound (eq. 10) and the VIMCO estimator (eqs. 12–14)."""
from __future__ import annotations

import itertools
import math

import torch

from astar.train.video_batch import VideoBatch, random_batch
from astar.train.model_config import ModelConfig
from astar.train.hard import multi_sample_bound, vimco_learning_signals, vimco_surrogate
from astar.train.model import ASTAR, caption_log_likelihood

CAPTION = [2, 3, 4, 1]  # y_1 … y_3, <eos>: three attended steps, so 2³ trajectories m = (m_2, m_3, m_4)
SAMPLES = 3


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


def tiny_hard_model() -> tuple[ASTAR, VideoBatch]:
    generator = torch.Generator().manual_seed(0)
    # Two layers keep hundreds of float64 copies cheap; the estimator is the same for four.
    config = ModelConfig.small(6, layers=("pool4", "pool5"), attention="hard", samples=SAMPLES)
    model = ASTAR(config).double().train()
    with torch.no_grad():  # weights far from the ±0.01 init so β and p(Y | m) vary with m
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.3)
    batch = random_batch([1], config.layer_channels, config.fc7_dim, generator).to("cpu", torch.float64)
    return model, batch


def repeated(batch: VideoBatch, copies: int) -> VideoBatch:
    rows = torch.zeros(copies, dtype=torch.long)
    return VideoBatch(
        {name: value.index_select(0, rows) for name, value in batch.features.items()},
        batch.pool5_steps.index_select(0, rows),
        batch.fc7.index_select(0, rows),
    )


def exact_bound(model: ASTAR, batch: VideoBatch) -> torch.Tensor:
    """Eq. (10) by enumeration: Σ over all K-tuples of trajectories of p(m^1:K) log mean p(Y | m^k)."""
    layers = model.config.attended_layers
    trajectories = torch.cartesian_prod(*[torch.arange(layers)] * (len(CAPTION) - 1))  # (8, 3)
    choices = torch.cat([torch.zeros(len(trajectories), 1, dtype=torch.long), trajectories], dim=1)
    tokens = torch.tensor([CAPTION] * len(trajectories))
    logits, attention = model.teacher_forced(repeated(batch, len(trajectories)), tokens, choices)
    log_likelihood = caption_log_likelihood(logits, tokens, model.config.pad_id)
    log_proposal = attention.choice_log_probs.sum(-1)
    tuples = torch.cartesian_prod(*[torch.arange(len(trajectories))] * SAMPLES)  # (8^K, K)
    probability = log_proposal[tuples].sum(-1).exp()
    torch.testing.assert_close(probability.sum(), torch.tensor(1.0, dtype=torch.float64))
    return (probability * multi_sample_bound(log_likelihood[tuples])).sum()


def gradient(model: ASTAR, value: torch.Tensor, names: list[str]) -> torch.Tensor:
    parameters = dict(model.named_parameters())
    return torch.cat([g.flatten() for g in torch.autograd.grad(value, [parameters[n] for n in names])])


def test_vimco_gradient_estimates_average_to_the_exact_gradient_of_the_bound() -> None:
    model, batch = tiny_hard_model()
    # Parameters reached only through the score-function term, and through both terms.
    names = ["attention.layer_score.vector.weight", "attention.position_score.vector.weight", "word_scores.bias"]
    exact = gradient(model, -exact_bound(model, batch) / len(CAPTION), names)

    torch.manual_seed(1)
    copies, repeats = 400, 16
    tokens = torch.tensor([CAPTION] * copies)
    many = repeated(batch, copies)
    means = torch.stack([gradient(model, model.loss(many, tokens), names) for _ in range(repeats)])
    estimate, standard_error = means.mean(0), means.std(0) / math.sqrt(repeats)

    assert exact.abs().max() > 10 * standard_error.max()  # the comparison has power
    assert torch.all((estimate - exact).abs() <= 5 * standard_error + 1e-10)


def test_hard_attention_at_test_time_takes_the_most_probable_layer() -> None:
    model, batch = tiny_hard_model()
    model.eval()
    tokens = torch.tensor([CAPTION])
    _, first = model.teacher_forced(batch, tokens)
    _, second = model.teacher_forced(batch, tokens)
    torch.testing.assert_close(first.choices, second.choices)
    torch.testing.assert_close(first.choices[:, 1:], first.layers[:, 1:].argmax(-1))
