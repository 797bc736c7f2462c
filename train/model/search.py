"""Beam search over captions, batched; greedy decoding is its beam size 1.

The hypothesis space is the one ``ASTAR.greedy`` explores: captions y_1 … y_n ``<eos>``
with 1 ≤ n and n + 1 ≤ ``max_len`` tokens, plus captions cut at ``max_len`` words without
``<eos>``. Every word may be chosen at every step, as in greedy; ``<pad>``, ``<bos>`` and
``<unk>`` never are, and ``<eos>`` never first (``ASTAR.start``/``step`` give them probability 0).

Hypotheses are ranked by their length-normalised log-probability (GNMT, Wu et al. 2016)

    score(Y) = log p(Y | A) / lp(|Y|),    lp(n) = ((5 + n) / 6)^α,

where |Y| counts the tokens whose probabilities are summed (``<eos>`` included) and
α = ``length_penalty``; α = 0 gives lp ≡ 1, the plain log-probability (eq. 3). A larger
α favours longer captions.

Every step keeps the ``beam_size`` best of all candidates: the extensions of the live
hypotheses by every token, and the finished hypotheses themselves, which stay in the
beam with a frozen score until better candidates push them out. So with beam size 1
the search takes the argmax word at each step, exactly as greedy does, and with a beam
as wide as the number of hypotheses it is exhaustive. Candidates are ranked by a
stable sort over (beam, token), so ties go to the lower beam slot, then the lower
token id, on CPU and CUDA alike. The search stops early only when no live hypothesis
can still overtake the ``n_best`` results (for α ≥ 0 a live score s can reach at most
s / lp(max_len)), so stopping never changes them.

Hard attention decodes with the argmax layer of β_t in eval mode, hence the model must
be in eval mode (``ASTAR.step``). ``decode_captions`` runs the search over a loader's
batches: validation decodes greedily, ``astar-eval`` with a wider beam.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from astar.extract.finite import require_finite

from ..options import DEFAULT_BEAM_SIZE
from ..text import Vocabulary
from .astar import ASTAR, CaptionAttention, stack_attention
from .attention import AttentionStep
from .batch import CaptionBatch, VideoBatch


@dataclass
class SearchResult:
    """The ``n_best`` captions of each of B videos, best first.

    Attributes:
        ranked_tokens: (B, N, T) long, each caption y_1 … y_n, ``<eos>``, then ``<pad>``
            (or ``max_len`` words without ``<eos>``); T is the longest of them.
        ranked_lengths: (B, N) long, tokens per caption (``<eos>`` included).
        ranked_log_probs: (B, N) float, log p(Y | A) (eq. 3).
        ranked_scores: (B, N) float, the length-normalised scores they are ranked by.
        attention: of each video's best caption, (B, T_best, ·) rows as in
            ``CaptionAttention`` (row 0, word 1 from fc7, is zero; rows after
            ``<eos>`` are the model's continuation and mean nothing), or None when not
            asked for, when the model has none (fc7), or when every best caption is
            ``<eos>`` alone (no word attended).

    Slots a beam could not fill (more slots than hypotheses) have score −inf and
    length 0.
    """

    ranked_tokens: Tensor
    ranked_lengths: Tensor
    ranked_log_probs: Tensor
    ranked_scores: Tensor
    attention: CaptionAttention | None

    @property
    def tokens(self) -> Tensor:
        """(B, T_best) the best captions, in ``ASTAR.greedy``'s format and width."""
        return self.ranked_tokens[:, 0, : int(self.ranked_lengths[:, 0].max())]

    @property
    def log_probs(self) -> Tensor:
        """(B,) log p(Y | A) of the best captions."""
        return self.ranked_log_probs[:, 0]


def length_penalty_divisor(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(n) = ((5 + n) / 6)^α for token counts ``lengths`` (any shape)."""
    return ((5.0 + lengths) / 6.0) ** alpha


@dataclass
class _Step:
    """What one step chose, for backtracking: per (B, K) slot its word and parent slot."""

    words: Tensor
    parents: Tensor
    attention: AttentionStep | None  # (B·K, ·) rows in the parents' slot order, if kept


def _attention_rows(step: AttentionStep, rows: Tensor) -> AttentionStep:
    """Rows ``rows`` of every tensor in ``step``."""
    return AttentionStep(
        **{f.name: None if (value := getattr(step, f.name)) is None else value.index_select(0, rows) for f in fields(step)}
    )


@torch.no_grad()
def beam_search(
    model: ASTAR,
    batch: VideoBatch,
    max_len: int,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = 0.0,
    n_best: int = 1,
    with_attention: bool = False,
) -> SearchResult:
    """Search the most probable captions of each video (module docstring).

    Args:
        model: an ASTAR model in eval mode.
        batch: B videos.
        max_len: most tokens per caption, ``<eos>`` included.
        beam_size: K hypotheses kept per video; 1 is greedy decoding.
        length_penalty: α ≥ 0 of lp(n) = ((5 + n) / 6)^α; 0 ranks by log-probability.
        n_best: N ≤ K captions returned per video.
        with_attention: also return the best captions' attention.
    """
    if model.training:
        raise ValueError("beam search needs model.eval(): dropout and sampled hard attention would make it random")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size={beam_size}, got {n_best}")
    require_finite(length_penalty=length_penalty)
    if max_len < 1 or length_penalty < 0:
        raise ValueError(f"need max_len >= 1 and length_penalty >= 0, got {max_len} and {length_penalty}")
    config, videos, width = model.config, batch.batch_size, beam_size
    log_probs, state = model.start(batch)
    device = log_probs.device
    slot_rows = torch.arange(videos, device=device).repeat_interleave(width)  # video of each of the B·K rows
    log_probs, state = log_probs.index_select(0, slot_rows), state.index_select(slot_rows)
    attention: AttentionStep | None = None
    # One live empty hypothesis per video; the other slots start dead (finished, −inf).
    scores = torch.full((videos, width), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.ones(videos, width, dtype=torch.bool, device=device)
    finished[:, 0] = False
    lengths = torch.zeros(videos, width, dtype=torch.long, device=device)
    vocab = config.vocab_size
    pad_only = torch.full((vocab,), float("-inf"), device=device)
    pad_only[config.pad_id] = 0.0
    history: list[_Step] = []
    for length in range(1, max_len + 1):
        # A finished hypothesis extends only by <pad>, at no cost: it competes unchanged.
        extensions = torch.where(finished[..., None], pad_only, log_probs.float().view(videos, width, vocab))
        candidates = scores[..., None] + extensions  # (B, K, V)
        candidate_lengths = torch.where(finished, lengths, length)
        ranked = candidates / length_penalty_divisor(candidate_lengths, length_penalty)[..., None]
        order = ranked.flatten(1).sort(dim=1, descending=True, stable=True).indices[:, :width]  # (B, K)
        parents, words = order // vocab, order % vocab
        scores = candidates.flatten(1).gather(1, order)
        lengths = candidate_lengths.gather(1, parents)
        finished = finished.gather(1, parents) | (words == config.eos_id)
        history.append(_Step(words, parents, attention if with_attention else None))
        if length == max_len or _settled(scores, lengths, finished, max_len, length_penalty, n_best):
            break
        rows = (parents + torch.arange(videos, device=device)[:, None] * width).flatten()
        log_probs, state, attention = model.step(state.index_select(rows), words.flatten())
    return _backtrack(history, scores, lengths, length_penalty, n_best, config.pad_id)


def _settled(
    scores: Tensor, lengths: Tensor, finished: Tensor, max_len: int, alpha: float, n_best: int
) -> bool:
    """Whether no live hypothesis can overtake any video's ``n_best`` sorted slots any more."""
    ranked = scores / length_penalty_divisor(lengths, alpha)
    longest = length_penalty_divisor(torch.full_like(lengths, max_len), alpha)
    best_possible = torch.where(finished, float("-inf"), scores / longest)
    top_done = finished[:, :n_best].all(1) & (ranked[:, n_best - 1] >= best_possible.max(1).values)
    return bool(top_done.all())


def _backtrack(
    history: list[_Step],
    scores: Tensor,
    lengths: Tensor,
    alpha: float,
    n_best: int,
    pad_id: int,
) -> SearchResult:
    """Follow parent pointers from the N best final slots (already sorted) back to word 1."""
    videos, width = scores.shape
    offsets = torch.arange(videos, device=scores.device)[:, None] * width
    slots = torch.arange(n_best, device=scores.device).expand(videos, n_best)
    words, steps = [], []
    for step in reversed(history):
        words.append(step.words.gather(1, slots))
        parents = step.parents.gather(1, slots)
        if step.attention is not None:
            steps.append(_attention_rows(step.attention, parents[:, 0] + offsets[:, 0]))
        slots = parents
    tokens = torch.stack(words[::-1], dim=2)  # (B, N, T)
    final_lengths = lengths[:, :n_best]
    dead = scores[:, :n_best] == float("-inf")
    tokens = tokens.masked_fill(dead[..., None], pad_id)
    final_lengths = final_lengths.masked_fill(dead, 0)
    log_probs = scores[:, :n_best]
    attention = stack_attention(steps[::-1]) if steps else None
    if attention is not None:
        best = int(final_lengths[:, 0].max())
        attention = CaptionAttention(
            **{f.name: None if (value := getattr(attention, f.name)) is None else value[:, :best] for f in fields(attention)}
        )
    return SearchResult(tokens, final_lengths, log_probs, log_probs / length_penalty_divisor(final_lengths, alpha), attention)


@torch.no_grad()
def decode_captions(
    model: ASTAR, batches: Iterator[CaptionBatch], vocabulary: Vocabulary, max_len: int,
    device: torch.device, autocast: torch.dtype | None, beam_size: int = 1, length_penalty: float = 0.0,
) -> dict[str, str]:
    """Video id → caption of at most ``max_len`` tokens by ``beam_search``; beam size 1 is greedy.

    Validation decodes greedily; ``astar-eval`` uses the same loop with a wider beam.
    """
    captions = {}
    for batch in batches:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            tokens = beam_search(model, batch.videos.to(device), max_len, beam_size, length_penalty).tokens
        for video_id, row in zip(batch.video_ids, tokens.tolist()):
            captions[video_id] = vocabulary.decode(row)
    return captions
