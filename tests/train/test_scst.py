"""Self-critical sequence training: sampling, rewards, baselines and an unbiased gradient."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu

from astar.train.model.batch import VideoBatch, random_batch
from astar.train.objectives.cider import CiderD, DocumentFrequencies
from astar.train.model.config import ModelConfig
from astar.train.model.astar import ASTAR
from astar.train.objectives.scst import (
    CaptionReward, leave_one_out_mean, sample_captions, self_critical_step,
)
from astar.train.text import EOS_ID, PAD_ID, build_vocabulary

REFERENCES = {"v": ["a dog runs", "a dog plays"], "w": ["a cat sleeps", "the cat sleeps"]}
VOCABULARY = build_vocabulary([caption for captions in REFERENCES.values() for caption in captions], min_count=1)


def tiny_model(attention: str = "soft", vocab_size: int = len(VOCABULARY)) -> tuple[ASTAR, VideoBatch]:
    generator = torch.Generator().manual_seed(0)
    config = ModelConfig.small(vocab_size, pad_id=PAD_ID, eos_id=EOS_ID, layers=("pool4", "pool5"), attention=attention)
    model = ASTAR(config).double().train()
    with torch.no_grad():  # weights far from the ±0.01 init so captions differ in probability
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.3)
    batch = random_batch([1, 2], config.layer_channels, config.fc7_dim, generator).to("cpu", torch.float64)
    return model, batch


def rows_of(batch: VideoBatch, samples: int) -> VideoBatch:
    """Each video of ``batch`` repeated ``samples`` times, video-major, as the sampler lays out rows."""
    rows = torch.arange(batch.batch_size).repeat_interleave(samples)
    return VideoBatch({k: v[rows] for k, v in batch.features.items()}, batch.top_steps[rows], batch.fc7[rows])


def reward() -> CaptionReward:
    return CaptionReward(CiderD(DocumentFrequencies.from_references(REFERENCES), REFERENCES), VOCABULARY)


def test_temperature_rescales_the_distribution_sampled_and_scored() -> None:
    model, batch = tiny_model()
    torch.manual_seed(0)
    sampled = sample_captions(model, batch, samples=1, max_len=1, temperature=0.5)
    first = (model.start(batch)[0] / 0.5).log_softmax(-1)
    torch.testing.assert_close(sampled.log_probs, first.gather(1, sampled.tokens[:, :1]).squeeze(1))
    with pytest.raises(ValueError, match="temperature"):
        sample_captions(model, batch, samples=1, max_len=1, temperature=0.0)


def test_reward_is_cider_d_of_the_decoded_caption_plus_weighted_bleu_4() -> None:
    tokens = torch.tensor([VOCABULARY.encode("a dog runs") + [PAD_ID], VOCABULARY.encode("the cat") + [PAD_ID] * 2])
    plain, mixed = reward(), CaptionReward(reward().cider, VOCABULARY, bleu_weight=0.5)
    cider = [reward().cider.score("v", ["a dog runs"])[0], reward().cider.score("w", ["the cat"])[0]]
    torch.testing.assert_close(plain(["v", "w"], tokens), torch.tensor(cider, dtype=torch.float32))
    _, bleu = Bleu(4).compute_score({"0": REFERENCES["v"], "1": REFERENCES["w"]}, {"0": ["a dog runs"], "1": ["the cat"]},
                                    verbose=0)
    torch.testing.assert_close(mixed(["v", "w"], tokens), torch.tensor(np.add(cider, 0.5 * np.array(bleu[3])),
                                                                     dtype=torch.float32))


def test_leave_one_out_baseline_is_the_mean_of_the_other_samples() -> None:
    rewards = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    torch.testing.assert_close(leave_one_out_mean(rewards, 3), torch.tensor([4.0, 3.5, 1.5, 1.5, 1.5, 0.0]))


def every_caption(model: ASTAR, batch: VideoBatch, max_len: int) -> tuple[list[list[int]], torch.Tensor]:
    """Every caption of at most ``max_len`` tokens the sampler can produce, and log π of each (with graph)."""
    log_probs, state = model.start(batch)
    captions, values = [], []

    def extend(prefix: list[int], log_probs: torch.Tensor, state, total: torch.Tensor) -> None:
        for word in range(model.config.vocab_size):
            caption, value = prefix + [word], total + log_probs[0, word]
            if word == EOS_ID or len(caption) == max_len:
                captions.append(caption)
                values.append(value)
            else:
                next_log_probs, next_state, _ = model.step(state, torch.tensor([word]))
                extend(caption, next_log_probs, next_state, value)

    extend([], log_probs, state, log_probs.new_zeros(()))
    return captions, torch.stack(values)


def gradient(model: ASTAR, value: torch.Tensor, names: list[str]) -> torch.Tensor:
    parameters = dict(model.named_parameters())
    return torch.cat([g.flatten() for g in torch.autograd.grad(value, [parameters[n] for n in names])])


@pytest.mark.slow
def test_self_critical_gradient_averages_to_the_gradient_of_the_expected_reward() -> None:
    model, batch = tiny_model()
    one = VideoBatch({k: v[:1] for k, v in batch.features.items()}, batch.top_steps[:1], batch.fc7[:1])
    names = ["word_scores.bias"]  # few enough values that 5 standard errors is a safe bound for all
    max_len = 3
    captions, log_probs = every_caption(model, one, max_len)
    assert math.isclose(float(log_probs.detach().exp().sum()), 1.0, rel_tol=1e-9)
    tokens = torch.tensor([caption + [PAD_ID] * (max_len - len(caption)) for caption in captions])
    rewards = reward()(["v"] * len(captions), tokens).double()
    exact = gradient(model, (log_probs.exp() * rewards).sum(), names)

    torch.manual_seed(1)
    copies, repeats = 100, 16
    many = VideoBatch({k: v.expand(copies, *v.shape[1:]) for k, v in one.features.items()},
                      one.top_steps.expand(copies), one.fc7.expand(copies, -1))
    estimates = torch.stack([
        -gradient(model, self_critical_step(model, many, ["v"] * copies, reward(), 4, "mean", max_len).loss, names)
        for _ in range(repeats)
    ])
    estimate, standard_error = estimates.mean(0), estimates.std(0) / math.sqrt(repeats)
    assert exact.abs().max() > 10 * standard_error.max()  # the comparison has power
    assert torch.all((estimate - exact).abs() <= 5 * standard_error + 1e-10)


def before_end(tokens: torch.Tensor) -> torch.Tensor:
    """(N, T) True on every token up to and including the first <eos>, even a sampled <pad>."""
    ends = (tokens == EOS_ID).long()
    return ends.cumsum(1) - ends == 0


def test_sampled_log_probabilities_are_the_teacher_forced_ones_at_temperature_one() -> None:
    model, batch = tiny_model()
    torch.manual_seed(0)
    sampled = sample_captions(model, batch, samples=3, max_len=5)
    assert sampled.tokens.shape[0] == 6 and sampled.tokens.shape[1] <= 5
    tokens, videos = sampled.tokens, rows_of(batch, 3)
    word_log_probs = model.decoding_log_probs(model(videos, tokens)).gather(-1, tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(sampled.log_probs, word_log_probs.masked_fill(~before_end(tokens), 0.0).sum(1))  # <pad>: −inf


@pytest.mark.parametrize("attention", ["hard", "hard_layer"])
def test_hard_attention_choices_join_the_sampled_trajectory(attention: str) -> None:
    model, batch = tiny_model(attention)
    torch.manual_seed(0)
    sampled = sample_captions(model, batch, samples=2, max_len=4)
    tokens, chosen = sampled.tokens, sampled.attention
    logits, forced = model.teacher_forced(rows_of(batch, 2), tokens, chosen.choices, chosen.position_choices)
    word_log_probs = model.decoding_log_probs(logits).gather(-1, tokens[..., None]).squeeze(-1)
    expected = (word_log_probs + forced.choice_log_probs).masked_fill(~before_end(tokens), 0.0).sum(1)  # <pad>: −inf
    torch.testing.assert_close(sampled.log_probs, expected)
    assert torch.all(forced.choice_log_probs[:, 1:][before_end(tokens)[:, 1:]] < 0)  # the choices do count
