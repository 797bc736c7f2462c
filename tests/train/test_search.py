"""Beam search: exact on a tiny vocabulary, greedy at beam size 1, batched, length penalty."""
from __future__ import annotations

import itertools

import pytest
import torch

from astar.train.model.batch import VideoBatch, random_batch
from astar.train.model.config import ModelConfig
from astar.train.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from astar.train.model.astar import ASTAR
from astar.train.model.search import beam_search, length_penalty_divisor
from astar.train.model.variants import NAMED_MODELS

PAD, EOS = PAD_ID, EOS_ID
SEARCHED = ("astar-soft", "astar-soft-layer-first", "astar-hard", "fc7", "pool3", "hypercolumn", "maxpool")
VARIANTS = {name: NAMED_MODELS[name].model_fields() for name in SEARCHED}
"""One registered configuration of each kind of attention (``astar.train.model.variants``)."""


def spread_model(vocab: int, seed: int = 0, **overrides: object) -> ASTAR:
    """A small model in eval mode whose word distributions are far from uniform (few near-ties)."""
    torch.manual_seed(seed)
    model = ASTAR(ModelConfig.small(vocab, pad_id=PAD, eos_id=EOS, **overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # drawn in logical order, whatever the memory layout (channels-last kernels)
            parameter.copy_(torch.empty(parameter.shape).normal_(0.0, 0.5))
    return model


def constant_model(word_probs: list[float]) -> ASTAR:
    """A model that predicts the same word distribution at every step, whatever it saw."""
    model = ASTAR(ModelConfig.small(len(word_probs), pad_id=PAD, eos_id=EOS)).eval()
    with torch.no_grad():
        model.word_scores.weight.zero_()
        model.word_scores.bias.copy_(torch.tensor(word_probs).log())
    return model


def videos(model: ASTAR, steps: list[int], seed: int = 0) -> VideoBatch:
    config = model.config
    return random_batch(steps, config.layer_channels, config.fc7_dim, torch.Generator().manual_seed(seed))


def exhaustive(model: ASTAR, batch: VideoBatch, video: int, max_len: int, alpha: float) -> list[tuple[float, float, list[int]]]:
    """Every caption of the search space with (score, log-prob), best first.

    Scored word by word along each whole caption with ``ASTAR.start``/``step``, whose
    agreement with teacher forcing test_model checks.
    """
    vocab = model.config.vocab_size
    words = [token for token in range(vocab) if token not in (EOS, PAD, BOS_ID, UNK_ID)]  # what decoding may emit
    captions = [list(prefix) + [EOS] for n in range(1, max_len) for prefix in itertools.product(words, repeat=n)]
    captions += [list(prefix) for prefix in itertools.product(words, repeat=max_len)]
    tokens = torch.tensor([caption + [PAD] * (max_len - len(caption)) for caption in captions])
    lengths = torch.tensor([len(caption) for caption in captions])
    row = slice(video, video + 1)
    one = VideoBatch({name: value[row] for name, value in batch.features.items()}, batch.top_steps[row], batch.fc7[row])
    with torch.no_grad():
        first, state = model.start(one)
        state = state.index_select(torch.zeros(len(captions), dtype=torch.long))
        log_probs = [first.expand(len(captions), -1)]
        for t in range(1, max_len):
            step_log_probs, state, _ = model.step(state, tokens[:, t - 1])
            log_probs.append(step_log_probs)
    word_log_probs = torch.stack(log_probs, dim=1).gather(-1, tokens[..., None]).squeeze(-1)
    total = word_log_probs.masked_fill(torch.arange(max_len) >= lengths[:, None], 0.0).sum(-1)  # <pad> has log p = −inf
    scores = total / length_penalty_divisor(lengths, alpha)
    return sorted(zip(scores.tolist(), total.tolist(), captions), key=lambda entry: -entry[0])


TRICKY_SEED = 0
"""Greedy decoding misses the most likely caption of video 1 of ``videos(spread_model(8, seed=0), [2, 1], seed=0)``
(8 tokens: the 4 specials and 4 words)."""


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("name", ["astar-soft", "astar-hard", "fc7"])
def test_a_beam_as_wide_as_the_search_space_finds_the_exhaustive_ranking(name: str, alpha: float) -> None:
    model = spread_model(8, seed=TRICKY_SEED, **VARIANTS[name])
    batch = videos(model, [2, 1], seed=TRICKY_SEED)
    max_len = 4
    space = sum(4**n for n in range(1, max_len)) + 4**max_len  # finished captions (1+ words) + those cut at max_len
    result = beam_search(model, batch, max_len, beam_size=space, length_penalty=alpha, n_best=5)
    for video in range(2):
        expected = exhaustive(model, batch, video, max_len, alpha)[:5]
        found = [
            result.ranked_tokens[video, rank, : int(result.ranked_lengths[video, rank])].tolist() for rank in range(5)
        ]
        assert found == [caption for _, _, caption in expected]
        torch.testing.assert_close(result.ranked_log_probs[video], torch.tensor([total for _, total, _ in expected]))
        torch.testing.assert_close(result.ranked_scores[video], torch.tensor([score for score, _, _ in expected]))


def test_a_narrow_beam_can_miss_what_the_exhaustive_search_finds() -> None:
    """The exactness test above is not vacuous: greedy is beaten on its model."""
    model = spread_model(8, seed=TRICKY_SEED)
    batch = videos(model, [2, 1], seed=TRICKY_SEED)
    best = [exhaustive(model, batch, video, 4, 0.0)[0][1] for video in range(2)]
    greedy = beam_search(model, batch, 4, beam_size=1).log_probs
    assert any(found < exact - 1e-4 for found, exact in zip(greedy.tolist(), best))


@pytest.mark.parametrize("name", ["astar-soft", "astar-hard", "fc7", "pool3"])
def test_beam_size_one_is_greedy_decoding(name: str) -> None:
    model = spread_model(12, **VARIANTS[name])
    batch = videos(model, [2, 1, 3])
    tokens, attention = model.greedy(batch, max_len=7)
    result = beam_search(model, batch, 7, beam_size=1, with_attention=True)
    assert torch.equal(result.tokens, tokens)
    if attention is None:
        assert result.attention is None
    else:
        torch.testing.assert_close(result.attention.positions, attention.positions)
        torch.testing.assert_close(result.attention.layers, attention.layers)


def test_each_video_is_searched_as_if_it_were_alone() -> None:
    model = spread_model(12)
    alone = videos(model, [1])
    together = videos(model, [1, 3], seed=1)
    for layer, value in together.features.items():
        value[0] = torch.rand_like(value[0]) * 5  # garbage in the padding
        value[0, : alone.features[layer].shape[1]] = alone.features[layer][0]
    together.fc7[0] = alone.fc7[0]
    by_itself = beam_search(model, alone, 6, beam_size=4, n_best=4)
    in_batch = beam_search(model, together, 6, beam_size=4, n_best=4)
    width = by_itself.ranked_tokens.shape[-1]
    assert torch.equal(in_batch.ranked_tokens[:1, :, :width], by_itself.ranked_tokens)
    assert torch.all(in_batch.ranked_tokens[:1, :, width:] == PAD)
    torch.testing.assert_close(in_batch.ranked_log_probs[:1], by_itself.ranked_log_probs)


def test_length_penalty_turns_the_shortest_caption_into_the_longest() -> None:
    # p(<eos>) = 0.3 and p(word 4) = 0.6 at every step, renormalised over what decoding may
    # emit (no <pad>, <bos>, <unk>; no <eos> first): "4 <eos>" is the most likely caption, but
    # per lp(n) = ((5 + n)/6)^2 four words score more.
    probs = [0.1 / 4, 0.1 / 4, 0.3, 0.1 / 4, 0.6, 0.1 / 4]
    model = constant_model(probs)
    batch = videos(model, [1])
    plain = beam_search(model, batch, 4, beam_size=3)
    penalised = beam_search(model, batch, 4, beam_size=3, length_penalty=2.0)
    assert plain.tokens.tolist() == [[4, EOS]]
    assert penalised.tokens.tolist() == [[4, 4, 4, 4]]
    first, later = 0.6 / (0.6 + 0.1 / 4), 0.6 / (0.3 + 0.6 + 0.1 / 4)
    expected = torch.tensor(first).log() + 3 * torch.tensor(later).log()
    torch.testing.assert_close(penalised.log_probs, expected[None])


@pytest.mark.parametrize("max_len", [1, 3])
def test_captions_stop_at_max_len(max_len: int) -> None:
    model = spread_model(12)
    with torch.no_grad():
        model.word_scores.bias[EOS] = -30.0  # <eos> all but impossible: every caption is cut
    result = beam_search(model, videos(model, [2, 1]), max_len, beam_size=3, n_best=3)
    assert result.ranked_tokens.shape == (2, 3, max_len)
    assert torch.all(result.ranked_lengths == max_len)
    assert not torch.any(result.ranked_tokens == EOS)


@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "fc7"])
def test_attention_of_the_best_caption_has_one_distribution_per_word(name: str) -> None:
    model = spread_model(12, **VARIANTS[name])
    batch = videos(model, [2, 1])
    result = beam_search(model, batch, 6, beam_size=3, with_attention=True)
    attention, tokens = result.attention, result.tokens
    positions = {"pool3": 2 * 4 * 14 * 14}.get(name, 2 * 16)
    assert attention.positions.shape == (*tokens.shape, positions)
    assert attention.layers.shape == (*tokens.shape, model.config.attended_layers)
    assert torch.all(attention.positions[:, 0] == 0) and torch.all(attention.layers[:, 0] == 0)
    for video, length in enumerate(result.ranked_lengths[:, 0].tolist()):
        words = slice(1, length)
        torch.testing.assert_close(attention.positions[video, words].sum(-1), torch.ones(length - 1))
        torch.testing.assert_close(attention.layers[video, words].sum(-1), torch.ones(length - 1))
    assert torch.all(attention.positions[1, :, positions // 2 :] == 0)  # video 1 has one pool5 step of two
    if model.config.attention == "hard":
        assert attention.choices.shape == tokens.shape


def test_stopping_once_the_best_caption_is_settled_does_not_change_it() -> None:
    model = spread_model(12, seed=3)
    with torch.no_grad():
        model.word_scores.bias[EOS] += 2.0  # short captions, so the search can stop early
    batch = videos(model, [2, 1, 3], seed=3)
    best_only = beam_search(model, batch, 12, beam_size=5, n_best=1, length_penalty=1.0)
    five_best = beam_search(model, batch, 12, beam_size=5, n_best=5, length_penalty=1.0)
    assert best_only.ranked_tokens.shape[-1] < five_best.ranked_tokens.shape[-1]  # steps searched: one stopped early
    assert torch.equal(best_only.tokens, five_best.tokens)
    torch.testing.assert_close(best_only.log_probs, five_best.log_probs)


def test_n_best_captions_are_distinct_and_ranked() -> None:
    model = spread_model(12)
    result = beam_search(model, videos(model, [2]), 6, beam_size=5, n_best=5)
    captions = {tuple(result.ranked_tokens[0, rank].tolist()) for rank in range(5)}
    assert len(captions) == 5
    assert torch.all(result.ranked_scores[0, :-1] >= result.ranked_scores[0, 1:])


def test_a_model_in_training_mode_is_refused() -> None:
    model = spread_model(12).train()
    with pytest.raises(ValueError, match="eval"):
        beam_search(model, videos(model, [1]), 4)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf")])
def test_a_length_penalty_that_is_not_finite_is_refused(alpha: float) -> None:
    model = spread_model(12)
    with pytest.raises(ValueError, match=f"length_penalty must be a finite number, got {alpha}"):
        beam_search(model, videos(model, [1]), 4, beam_size=2, length_penalty=alpha)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["astar-soft", "astar-hard"])
def test_cuda_finds_the_same_captions_as_the_cpu(name: str) -> None:
    model = spread_model(12, **VARIANTS[name])
    batch = videos(model, [2, 1, 3])
    on_cpu = beam_search(model, batch, 8, beam_size=5, n_best=3)
    on_gpu = beam_search(model.cuda(), batch.to("cuda"), 8, beam_size=5, n_best=3)
    assert torch.equal(on_gpu.ranked_tokens.cpu(), on_cpu.ranked_tokens)
    torch.testing.assert_close(on_gpu.ranked_log_probs.cpu(), on_cpu.ranked_log_probs, atol=1e-4, rtol=1e-4)
