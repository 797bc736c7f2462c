"""The ASTAR model and its baselines: shapes, padding, decoding API, init, overfitting."""
from __future__ import annotations

import math

import pytest
import numpy as np
import torch
from torch import nn

from astar.train.model.batch import VideoBatch, random_batch
from astar.train.model.config import ModelConfig
from astar.train.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from astar.train.model.variants import NAMED_MODELS
from astar.train.model.normalise import ChannelStatistics
from astar.train.model.astar import ASTAR

VOCAB = 12
PAD, EOS = PAD_ID, EOS_ID
VARIANTS = {name: model.model_fields() for name, model in NAMED_MODELS.items()}
"""Every registered configuration (``astar.train.model.variants``): the model tests cover them all."""


def small(**overrides: object) -> ModelConfig:
    return ModelConfig.small(VOCAB, pad_id=PAD, eos_id=EOS, **overrides)


def videos(config: ModelConfig, steps: list[int], seed: int = 0) -> VideoBatch:
    return random_batch(steps, config.layer_channels, config.fc7_dim, torch.Generator().manual_seed(seed))


CAPTIONS = torch.tensor([[4, 5, 6, EOS], [7, EOS, PAD, PAD]])


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_gives_logits_loss_and_attention_of_the_documented_shapes(name: str) -> None:
    config = small(**VARIANTS[name])
    model = ASTAR(config)
    batch = videos(config, [2, 1])
    logits = model(batch, CAPTIONS)
    assert logits.shape == (2, 4, VOCAB)
    model.loss(batch, CAPTIONS).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    _, attention = model.eval().teacher_forced(batch, CAPTIONS)
    if config.variant == "fc7":
        assert attention is None
        return
    positions = {"pool2": 2 * 8 * 28 * 28, "pool3": 2 * 4 * 14 * 14, "pool4": 2 * 2 * 7 * 7}.get(
        config.layers[0] if config.variant == "single" else "", 2 * 16
    )
    assert attention.positions.shape == (2, 4, positions)
    assert attention.layers.shape == (2, 4, config.attended_layers)
    torch.testing.assert_close(attention.positions[:, 1:].sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(attention.layers[:, 1:].sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("name", VARIANTS)
def test_padding_a_video_changes_nothing(name: str) -> None:
    config = small(**VARIANTS[name])
    model = ASTAR(config).eval()
    alone = videos(config, [1])
    together = videos(config, [1, 3], seed=1)
    for layer, value in together.features.items():
        value[0] = torch.rand_like(value[0]) * 5  # garbage in the padding, not even zeros
        value[0, : alone.features[layer].shape[1]] = alone.features[layer][0]
    together.fc7[0] = alone.fc7[0]
    tokens = torch.tensor([[4, 5, 6, EOS]])
    logits_alone, attention_alone = model.teacher_forced(alone, tokens)
    logits_together, attention_together = model.teacher_forced(together, tokens.repeat(2, 1))
    torch.testing.assert_close(logits_together[:1], logits_alone, atol=1e-5, rtol=1e-4)
    if attention_alone is not None:
        valid = attention_alone.positions.shape[-1]
        torch.testing.assert_close(attention_together.positions[:1, :, :valid], attention_alone.positions, atol=1e-6, rtol=1e-4)
        assert torch.all(attention_together.positions[0, :, valid:] == 0)


def test_incremental_decoding_matches_teacher_forcing_and_expands_along_the_batch() -> None:
    config = small()
    model = ASTAR(config).eval()
    batch = videos(config, [2, 1])
    expected = model.decoding_log_probs(model(batch, CAPTIONS))
    log_probs, state = model.start(batch)
    torch.testing.assert_close(log_probs, expected[:, 0])
    beams = torch.tensor([0, 0, 0, 1, 1, 1])  # B = 2 videos → 2 · 3 hypotheses
    state = state.index_select(beams)
    for t in range(1, CAPTIONS.shape[1]):
        log_probs, state, attention = model.step(state, CAPTIONS[beams, t - 1])
        torch.testing.assert_close(log_probs, expected[beams, t])
        assert attention.positions.shape == (6, 32) and attention.layers.shape == (6, 4)


def test_inputs_are_normalised_per_channel_and_the_statistics_are_saved_with_the_weights() -> None:
    config = small()
    plain, normalised = ASTAR(config).eval(), ASTAR(config).eval()
    normalised.load_state_dict(plain.state_dict())
    widths = {**{name: config.channels(name) for name in config.layer_names}, "fc7": config.fc7_dim}
    generator = np.random.default_rng(0)
    statistics = {name: ChannelStatistics(generator.normal(5.0, 2.0, width), generator.uniform(0.5, 9.0, width), 1.0)
                  for name, width in widths.items()}
    normalised.set_feature_statistics(statistics)
    batch = videos(config, [2, 1])

    def moved(name: str, value: torch.Tensor) -> torch.Tensor:
        return value * torch.from_numpy(statistics[name].std).float() + torch.from_numpy(statistics[name].mean).float()

    shifted = VideoBatch({name: moved(name, value) for name, value in batch.features.items()}, batch.top_steps,
                         moved("fc7", batch.fc7))
    torch.testing.assert_close(normalised(shifted, CAPTIONS), plain(batch, CAPTIONS), atol=1e-4, rtol=1e-4)
    restored = ASTAR(config)
    restored.load_state_dict(normalised.state_dict())
    torch.testing.assert_close(restored(shifted, CAPTIONS), normalised(shifted, CAPTIONS))


def test_rms_inputs_divide_each_input_by_one_constant_and_do_not_centre() -> None:
    config = small(input_norm="rms")
    plain, scaled = ASTAR(config).eval(), ASTAR(config).eval()
    scaled.load_state_dict(plain.state_dict())
    factors = {"pool2": 3.0, "pool3": 5.0, "pool4": 7.0, "pool5": 11.0, "fc7": 13.0}
    widths = {**{name: config.channels(name) for name in config.layer_names}, "fc7": config.fc7_dim}
    scaled.set_feature_statistics({name: ChannelStatistics(np.full(widths[name], 4.0), np.ones(widths[name]), factor)
                                   for name, factor in factors.items()})
    batch = videos(config, [2, 1])
    enlarged = VideoBatch({name: value * factors[name] for name, value in batch.features.items()}, batch.top_steps,
                          batch.fc7 * factors["fc7"])
    torch.testing.assert_close(scaled(enlarged, CAPTIONS), plain(batch, CAPTIONS))


def test_decoding_never_emits_specials_and_never_ends_before_the_first_word() -> None:
    config = small()
    model = ASTAR(config).eval()
    with torch.no_grad():  # a model that would rather say <eos>, <unk>, <bos> or <pad> than any word
        model.word_scores.bias[[PAD_ID, BOS_ID, EOS_ID, UNK_ID]] = 30.0
    log_probs, state = model.start(videos(config, [2, 1]))
    assert torch.isinf(log_probs[:, [PAD_ID, BOS_ID, EOS_ID, UNK_ID]]).all()
    log_probs, _, _ = model.step(state, log_probs.argmax(-1))
    assert torch.isinf(log_probs[:, [PAD_ID, BOS_ID, UNK_ID]]).all() and (log_probs.argmax(-1) == EOS_ID).all()
    tokens, _ = model.greedy(videos(config, [2, 1]), max_len=5)
    assert tokens[:, 0].ge(4).all() and (tokens[:, 1] == EOS_ID).all()


def test_initialisation_follows_section_4_2_but_for_glorot_attention_scores() -> None:
    model = ASTAR(small())
    for gate in model.lstm.weight_hh.chunk(4, dim=0):
        torch.testing.assert_close(gate @ gate.T, torch.eye(gate.shape[0]), atol=1e-5, rtol=0)
    for name, parameter in model.named_parameters():
        if name.endswith("bias") or "bias_" in name:
            assert torch.all(parameter == 0), name
        elif "_score." in name:  # W_k, W_h, w of eqs. (5)-(6): Glorot-uniform, filling its bound
            fan_out, fan_in = parameter.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert 0.9 * bound < parameter.abs().max() <= bound, name
        elif name != "lstm.weight_hh":
            assert parameter.abs().max() <= 0.01, name


def test_word_vectors_initialise_the_embedding() -> None:
    vectors = torch.randn(VOCAB, 32)
    torch.testing.assert_close(ASTAR(small(), word_vectors=vectors).embedding.weight.detach(), vectors)


def test_config_rejects_impossible_variants() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        small(variant="single")
    with pytest.raises(ValueError, match="hard_layer attention chooses among layers"):
        small(variant="hypercolumn", attention="hard_layer")
    with pytest.raises(ValueError, match="'fc7' has neither"):
        small(variant="fc7", attention="hard")
    with pytest.raises(ValueError, match="stored order"):
        small(layers=("pool5", "pool2"))


def test_paper_sizes_are_the_defaults() -> None:
    config = ModelConfig(vocab_size=VOCAB)
    model = ASTAR(config)
    assert (config.hidden_dim, config.embedding_dim, config.samples, config.context_dim) == (512, 300, 10, 512)
    kernels = [module.kernel_size for module in model.modules() if isinstance(module, nn.Conv3d)]
    assert kernels == [(7, 7, 7), (5, 5, 5), (3, 3, 3)]


@pytest.mark.parametrize("attention", ["soft", "hard", "hard_layer"])
def test_a_tiny_model_overfits_a_handful_of_captions(attention: str) -> None:
    torch.manual_seed(0)
    config = small(attention=attention, layers=("pool4", "pool5"))
    model = ASTAR(config)
    batch = videos(config, [1, 2, 1, 1])
    captions = torch.tensor([[4, 5, 6, EOS], [7, 8, EOS, PAD], [9, 5, 10, EOS], [11, EOS, PAD, PAD]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        model.loss(batch, captions).backward()
        optimiser.step()
    tokens, _ = model.eval().greedy(batch, max_len=6)
    assert tokens.tolist() == captions.tolist()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_agrees_with_float32(dtype: torch.dtype) -> None:
    config = ModelConfig(vocab_size=VOCAB, dropout=0.0)
    model = ASTAR(config).cuda().eval()
    batch = videos(config, [2, 1]).to("cuda")
    tokens = CAPTIONS.cuda()
    with torch.no_grad():
        reference = model(batch, tokens).log_softmax(-1)
        with torch.autocast("cuda", dtype=dtype):
            mixed = model(batch, tokens).float().log_softmax(-1)
    torch.testing.assert_close(mixed, reference, atol=2e-2, rtol=2e-2)


def repeat_videos(batch: VideoBatch, rows: torch.Tensor) -> VideoBatch:
    """The batch with video ``rows[i]`` copied into row i, as if every caption brought its own video."""
    return VideoBatch({name: value[rows] for name, value in batch.features.items()}, batch.top_steps[rows], batch.fc7[rows])


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_captions_sharing_a_video_give_the_loss_and_gradients_of_repeated_videos(attention: str) -> None:
    config = small(attention=attention, dropout=0.0)
    model = ASTAR(config).train()
    batch = videos(config, [2, 1])
    caption_videos = torch.tensor([0, 0, 1, 1, 0])
    tokens = torch.tensor([[4, 5, 6, EOS], [7, EOS, PAD, PAD], [8, 9, EOS, PAD], [4, EOS, PAD, PAD], [5, 5, EOS, PAD]])
    results = []
    for inputs, rows in ((batch, caption_videos), (repeat_videos(batch, caption_videos), None)):
        model.zero_grad()
        torch.manual_seed(0)  # the same layer choices m_t for hard attention
        loss = model.loss(inputs, tokens, rows)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (shared, shared_grads), (repeated, repeated_grads) = results
    torch.testing.assert_close(shared, repeated)
    for shared_grad, repeated_grad in zip(shared_grads, repeated_grads, strict=True):
        torch.testing.assert_close(shared_grad, repeated_grad, rtol=1e-4, atol=1e-7)


def test_the_alignment_runs_once_per_video_not_once_per_caption() -> None:
    config = small()
    model = ASTAR(config)
    aligned_rows = []
    model.aligner.register_forward_hook(lambda module, inputs, output: aligned_rows.append(output[0].shape[0]))
    tokens = CAPTIONS.repeat(3, 1)  # six captions
    logits = model(videos(config, [2, 1]), tokens, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert aligned_rows == [2] and logits.shape == (6, 4, VOCAB)
