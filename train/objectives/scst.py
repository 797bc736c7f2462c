"""Self-critical sequence training (Rennie et al., CVPR 2017): CIDEr-D as the objective.

After cross-entropy training, the caption model π_θ is tuned to maximise the expected
reward of its own captions, r(Y) = CIDEr-D(Y, S) + w · BLEU-4(Y, S) against the video's
training references S (``CaptionReward``; w = 0 by default). For each video K captions
Y^1 … Y^K are sampled, word by word, from softmax(logits / τ) up to ``max_len`` tokens,
and REINFORCE with a baseline b gives

    ∇ E[r] ≈ (1/K) Σ_k (r(Y^k) − b_k) ∇ log π(Y^k | A)

as the gradient of ``self_critical_loss``. Two baselines (``BASELINES``):

- ``greedy``: b_k = r(Ŷ) of the caption greedy decoding gives the same video — the
  original SCST, which rewards samples that beat test-time inference;
- ``mean``: b_k = the mean reward of the other K − 1 samples of the video (the "new
  self-critical" variant, Luo 2020): no extra decoding, and still unbiased because
  b_k does not depend on Y^k.

log π(Y | A) sums the log-probabilities of the words up to and including ``<eos>``.
With hard attention the sampled position and layer choices are part of the trajectory
(they are sampled in training mode as in eqs. 8–14), so their log-probabilities join
the words': REINFORCE then estimates the gradient of the expected reward over both.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pycocoevalcap.bleu.bleu import Bleu
from torch import Tensor

from ..model.astar import ASTAR, CaptionAttention, stack_attention
from ..model.batch import VideoBatch
from ..text import EOS_ID, SPECIALS, Vocabulary
from .cider import CiderD

BASELINES = ("greedy", "mean")
"""Reward baselines of ``self_critical_loss`` (module docstring)."""


@dataclass
class SampledCaptions:
    """K sampled captions per video, rows video-major (video b's samples are rows bK … bK + K − 1).

    Attributes:
        tokens: (B·K, T) long, y_1 … ``<eos>`` then ``<pad>`` (or cut at ``max_len``).
        log_probs: (B·K,) log π(Y | A) of each at the sampling temperature, with gradient;
            with hard attention it includes the attention choices' log-probabilities.
        attention: per word, as ``ASTAR.greedy`` returns it (None for fc7): with hard
            attention, the sampled choices.
    """

    tokens: Tensor
    log_probs: Tensor
    attention: CaptionAttention | None


def sample_captions(model: ASTAR, batch: VideoBatch, samples: int, max_len: int, temperature: float = 1.0) -> SampledCaptions:
    """Draw ``samples`` captions of at most ``max_len`` tokens per video from softmax(logits / τ).

    The model should be in training mode (dropout and hard attention's choices as in
    training); the log-probabilities keep their graph for ``self_critical_loss``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    config = model.config
    log_probs, state = model.start(batch)
    rows = torch.arange(batch.batch_size, device=log_probs.device).repeat_interleave(samples)
    log_probs, state = log_probs.index_select(0, rows), state.index_select(rows)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=rows.device)
    dtype = torch.promote_types(log_probs.dtype, torch.float32)  # sums in at least fp32 under autocast
    words, steps, total = [], [], log_probs.new_zeros(len(rows), dtype=dtype)
    while True:
        tempered = (log_probs.to(dtype) / temperature).log_softmax(-1)
        word = torch.multinomial(tempered.detach().exp(), 1).squeeze(1)
        total = total + tempered.gather(1, word[:, None]).squeeze(1).masked_fill(finished, 0.0)
        word = word.masked_fill(finished, config.pad_id)
        finished = finished | (word == config.eos_id)
        words.append(word)
        if len(words) == max_len or bool(finished.all()):
            break
        log_probs, state, attention = model.step(state, word)
        if attention is not None:
            steps.append(attention)
            if attention.choice_log_prob is not None:
                total = total + attention.choice_log_prob.to(dtype).masked_fill(finished, 0.0)
    return SampledCaptions(torch.stack(words, dim=1), total, stack_attention(steps) if steps else None)


class CaptionReward:
    """r(Y) = CIDEr-D(Y, S) + ``bleu_weight`` · BLEU-4(Y, S) of token captions against references S.

    Captions are read as evaluation reads them (``Vocabulary.decode``: up to ``<eos>``,
    specials dropped), so the reward is the metric the model is validated and tested on.
    BLEU-4 is pycocoevalcap's sentence-level score (its ``Bleu``, ``closest`` lengths).

    Args:
        cider: CIDEr-D with the training split's document frequencies and references.
        vocabulary: the model's vocabulary.
        bleu_weight: w ≥ 0; 0 is CIDEr-D alone.
    """

    def __init__(self, cider: CiderD, vocabulary: Vocabulary, bleu_weight: float = 0.0) -> None:
        if bleu_weight < 0:
            raise ValueError(f"bleu_weight must be 0 or more, got {bleu_weight}")
        self.cider, self.vocabulary, self.bleu_weight = cider, vocabulary, bleu_weight
        unknown: dict[str, int] = {}
        special = set(range(len(SPECIALS)))
        self._word_ids = [None if index in special else cider.frequencies.word_ids(token, unknown)[0]
                          for index, token in enumerate(vocabulary.tokens)]

    def __call__(self, video_ids: Sequence[str], tokens: Tensor) -> Tensor:
        """(N,) rewards of the N captions ``tokens`` (N, T), row n a caption of ``video_ids[n]``."""
        captions = []
        for row in tokens.tolist():
            row = row[: row.index(EOS_ID)] if EOS_ID in row else row
            captions.append([word for word in (self._word_ids[token] for token in row) if word is not None])
        rewards = np.zeros(len(captions))
        by_video: dict[str, list[int]] = {}
        for index, video_id in enumerate(video_ids):
            by_video.setdefault(video_id, []).append(index)
        for video_id, indices in by_video.items():
            rewards[indices] = self.cider.score_ids(video_id, [captions[index] for index in indices])
        if self.bleu_weight:
            rewards += self.bleu_weight * self._bleu4(video_ids, tokens)
        return torch.from_numpy(rewards).float()

    def _bleu4(self, video_ids: Sequence[str], tokens: Tensor) -> np.ndarray:
        references = {str(index): list(self.cider.references[video_id]) for index, video_id in enumerate(video_ids)}
        hypotheses = {str(index): [self.vocabulary.decode(row)] for index, row in enumerate(tokens.tolist())}
        _, per_caption = Bleu(4).compute_score(references, hypotheses, verbose=0)
        return np.asarray(per_caption[3])


def self_critical_loss(log_probs: Tensor, rewards: Tensor, baselines: Tensor) -> Tensor:
    """The scalar whose gradient is −(1/N) Σ_n (r_n − b_n) ∇ log π(Y^n | A): (N,) each → ()."""
    advantages = (rewards - baselines).to(log_probs.device, log_probs.dtype)
    return -(advantages.detach() * log_probs).mean()


def leave_one_out_mean(rewards: Tensor, samples: int) -> Tensor:
    """(B·K,) video-major rewards → (B·K,) the mean reward of each sample's K − 1 siblings."""
    grouped = rewards.view(-1, samples)
    return ((grouped.sum(1, keepdim=True) - grouped) / (samples - 1)).flatten()


@dataclass(frozen=True)
class ScstStep:
    """What one self-critical step measured: the loss to backpropagate and reward statistics."""

    loss: Tensor
    sample_reward: float
    baseline_reward: float


def self_critical_step(
    model: ASTAR, batch: VideoBatch, video_ids: Sequence[str], reward: CaptionReward, samples: int,
    baseline: str, max_len: int, temperature: float = 1.0,
) -> ScstStep:
    """Sample, score and build the SCST loss for B videos (``video_ids``, one per row of ``batch``).

    Samples are drawn in training mode, where the model is left; the greedy baseline
    decodes in eval mode, as test time does.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; got {baseline!r}")
    if baseline == "mean" and samples < 2:
        raise ValueError("the mean-of-others baseline needs at least 2 samples per video")
    expanded = [video_id for video_id in video_ids for _ in range(samples)]
    model.train()
    if baseline == "greedy":
        model.eval()
        greedy_tokens, _ = model.greedy(batch, max_len)
        model.train()
        baselines = reward(video_ids, greedy_tokens).repeat_interleave(samples)
    sampled = sample_captions(model, batch, samples, max_len, temperature)
    rewards = reward(expanded, sampled.tokens)
    if baseline == "mean":
        baselines = leave_one_out_mean(rewards, samples)
    loss = self_critical_loss(sampled.log_probs, rewards, baselines)
    return ScstStep(loss, float(rewards.mean()), float(baselines.mean()))
