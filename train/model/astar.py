"""ASTAR (Pu et al., ICLR 2017): aligned C3D layers, two-level attention, LSTM decoder.

Captions are token tensors (B, T) holding y_1 … y_n, ``<eos>``, then ``<pad>``. There
is no ``<bos>``: y_1 is predicted from h_1 = tanh(C a_{L+1}) alone (fc7, Section 3.1),
and each later y_t from h_t = LSTM(w_{t−1}, h_{t−1}, z_t) (eq. 2). Logits row t
therefore predicts tokens[:, t], and step t ≥ 2 reads tokens[:, t − 1].

Attention records are aligned with the words: row 0 (y_1, from fc7 alone) is all zero.

Shared alignment: training may pair V videos with B ≥ V captions, ``caption_videos``
(B,) naming each caption's video row. Eq. (4) then runs once per video, on V rows, and
its aligned memory, keys and h_1 are indexed out to the B captions; gradients from all
of a video's captions add up in its one alignment. Without ``caption_videos`` caption
i belongs to video i.

Input and aligned-map scale: the paper does not say how it scaled C3D's maps. Every
input (each stored layer and fc7) is normalised per channel by statistics the trainer
measures once on training videos (``set_feature_statistics``), and every aligned map â_l
is normalised before eqs. (5)–(6); ``astar.train.model.normalise`` says why and how. The
statistics are buffers saved with the weights, so evaluation and captioning apply them too.

Decoding never emits ``<pad>`` or ``config.never_emitted`` (``<bos>``, ``<unk>``), and
never ``<eos>`` as the first word: ``start`` and ``step`` give those words probability 0,
so greedy, beam search and sampling all produce captions of at least one real word.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .align import Aligner
from .attention import AdditiveScore, AttentionMemory, AttentionStep, TwoLevelAttention
from .batch import VideoBatch
from .config import HARD_ATTENTION, ModelConfig
from .hard import vimco_surrogate
from .normalise import ChannelStatistics, InputNormaliser, normalise_aligned

INIT_RANGE = 0.01
"""Non-recurrent weights start uniform in [−0.01, 0.01] (Section 4.2), but for the attention scores' (``initialise``)."""


def input_widths(config: ModelConfig) -> dict[str, int]:
    """Channels of every input ``ASTAR`` normalises, in order: each stored layer, then ``fc7``."""
    return {**{name: config.channels(name) for name in config.layer_names}, "fc7": config.fc7_dim}


def banned_words(config: ModelConfig) -> tuple[Tensor, Tensor]:
    """(V,) bool masks of the words decoding never chooses: at any step, and as word 1 (``<eos>`` too)."""
    anywhere = torch.zeros(config.vocab_size, dtype=torch.bool)
    anywhere[[token for token in (config.pad_id, *config.never_emitted) if token < config.vocab_size]] = True
    first = anywhere.clone()
    first[config.eos_id] = True
    return anywhere, first


@dataclass
class DecoderState:
    """The decoder after word t: h_t, c_t (B, H) and the videos' attention memory."""

    hidden: Tensor
    cell: Tensor
    memory: AttentionMemory | None

    def index_select(self, indices: Tensor) -> DecoderState:
        """Rows ``indices`` (B′,): reorder hypotheses or expand B videos to B·beam."""
        return DecoderState(
            hidden=self.hidden.index_select(0, indices),
            cell=self.cell.index_select(0, indices),
            memory=None if self.memory is None else self.memory.index_select(indices),
        )


@dataclass
class CaptionAttention:
    """Attention for every word of a caption; row 0 (word 1, from fc7) is zero.

    Attributes:
        positions: (B, T, P) α per word.
        layers: (B, T, L) β per word.
        choices: (B, T) long m_t (the chosen layer) for hard attention (−1 in row 0), else None.
        position_choices: (B, T) long i_t for ``hard`` attention (−1 in row 0), else None.
        choice_log_probs: (B, T) log-probability of each word's choices (``AttentionStep``)
            for hard attention (0 in row 0), else None.
    """

    positions: Tensor
    layers: Tensor
    choices: Tensor | None = None
    position_choices: Tensor | None = None
    choice_log_probs: Tensor | None = None


def stack_attention(steps: list[AttentionStep]) -> CaptionAttention:
    """Stack per-step records of words 2 … T and prepend word 1's empty row."""

    def stacked(values: list[Tensor], first: float) -> Tensor:
        return F.pad(torch.stack(values, dim=1), (0, 0) * (values[0].dim() - 1) + (1, 0), value=first)

    hard, joint = steps[0].choice is not None, steps[0].position_choice is not None
    return CaptionAttention(
        positions=stacked([step.positions for step in steps], 0.0),
        layers=stacked([step.layers for step in steps], 0.0),
        choices=stacked([step.choice for step in steps], -1) if hard else None,
        position_choices=stacked([step.position_choice for step in steps], -1) if joint else None,
        choice_log_probs=stacked([step.choice_log_prob for step in steps], 0.0) if hard else None,
    )


def initialise(model: nn.Module) -> None:
    """Section 4.2: orthogonal recurrent matrices, uniform ±0.01 elsewhere, zero biases; but
    the score layers of eqs. (5)–(6) (W_k, W_h, w) are Glorot-uniform, our reading.

    With ±0.01 the scores of the 16 positions differ by a few thousandths, so α starts as
    mean pooling; Adam's first steps then grow W_k by lr per weight over a fan-in of L·D
    aligned channels, the tanh saturates (87 % of its units after 30 small-preset steps)
    and α stays mean pooling (entropy ≥ 0.995 of ln P). Glorot-uniform scales each layer to
    its fan-in and fan-out: α's entropy was 0.63–0.92 of ln P after 6 epochs on 60 clips, at
    the same validation NLL (README, "Mechanism health").
    """
    for module in model.modules():
        if isinstance(module, nn.LSTMCell):
            nn.init.uniform_(module.weight_ih, -INIT_RANGE, INIT_RANGE)
            for gate in module.weight_hh.chunk(4, dim=0):  # W_ih, W_fh, W_ch, W_oh of eq. (2)
                nn.init.orthogonal_(gate)
            nn.init.zeros_(module.bias_ih)
            nn.init.zeros_(module.bias_hh)
        elif isinstance(module, (nn.Linear, nn.Conv3d, nn.Embedding)):
            with torch.no_grad():  # drawn in logical order: a channels-last kernel gets a contiguous one's values
                module.weight.copy_(torch.empty(module.weight.shape).uniform_(-INIT_RANGE, INIT_RANGE))
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, AdditiveScore):
            for layer in (module.key, module.query, module.vector):
                nn.init.xavier_uniform_(layer.weight)


def caption_log_likelihood(logits: Tensor, tokens: Tensor, pad_id: int) -> Tensor:
    """Eq. (3): (B, T, V) logits and (B, T) tokens → (B,) log p(Y | A), pads skipped."""
    log_probs = logits.float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return (log_probs * (tokens != pad_id)).sum(-1)


class ASTAR(nn.Module):
    """The caption model of Section 3 and, through ``ModelConfig.variant``, its baselines.

    Args:
        config: architecture.
        word_vectors: optional (V, M) initial word embeddings W_e (``load_word2vec``).
    """

    def __init__(self, config: ModelConfig, word_vectors: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        has_context = config.variant != "fc7"
        self.aligner = Aligner(config) if has_context else None
        self.attention = TwoLevelAttention(config) if has_context else None
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)  # W_e
        self.initial_hidden = nn.Linear(config.fc7_dim, config.hidden_dim)  # C
        self.lstm = nn.LSTMCell(config.embedding_dim + config.context_dim, config.hidden_dim)  # H, eq. (2)
        self.word_scores = nn.Linear(config.hidden_dim, config.vocab_size)  # V
        self.dropout = nn.Dropout(config.dropout)
        self.normaliser = InputNormaliser(input_widths(config), config.input_norm)  # see the module docstring
        banned, banned_first = banned_words(config)
        self.register_buffer("banned_words", banned, persistent=False)
        self.register_buffer("banned_first_words", banned_first, persistent=False)
        initialise(self)
        if word_vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(word_vectors)

    def set_feature_statistics(self, statistics: dict[str, ChannelStatistics]) -> None:
        """Normalise input ``name`` (a stored layer or ``fc7``) by ``statistics[name]`` from now on."""
        self.normaliser.set_statistics(statistics)

    def scaled(self, name: str, features: Tensor) -> Tensor:
        """Input ``name`` (a layer or ``fc7``), (…, C), in the model's dtype and normalised (module docstring)."""
        return self.normaliser(name, features, self.initial_hidden.weight.dtype)

    def align(self, features: dict[str, Tensor], top_steps: Tensor | None = None) -> Tensor:
        """Eq. (4) (or the variant's alternative): stored layers → (B, L, P, D), before aligned-map normalisation.

        Args:
            features: per layer (B, T_l, H_l, W_l, C_l), as in ``VideoBatch`` (normalised here).
            top_steps: (B,) valid top-layer steps (C3D: pool5); None means no padding.
        """
        if top_steps is None:
            name = self.config.layers[0]
            layer_map = features[name]
            steps = layer_map.shape[1] // self.config.time_ratio(name)
            top_steps = torch.full((layer_map.shape[0],), steps, device=layer_map.device)
        return self._align(features, top_steps)[0]

    def aligned_maps(self, batch: VideoBatch) -> tuple[Tensor, Tensor]:
        """Eq. (4) on a batch before aligned-map normalisation: (B, L, P, D) â and the (B, P) mask."""
        return self._align({name: batch.features[name] for name in self.config.layers}, batch.top_steps)

    def encode(self, batch: VideoBatch) -> AttentionMemory | None:
        """Align a batch once, normalise the maps and precompute attention keys (None for the fc7 baseline)."""
        if self.aligner is None or self.attention is None:
            return None
        aligned, mask = self.aligned_maps(batch)
        return self.attention.prepare(normalise_aligned(aligned, mask, self.config.aligned_norm), mask)

    def start(self, batch: VideoBatch) -> tuple[Tensor, DecoderState]:
        """Encode the videos and predict word 1: (B, V) log p(y_1 | A) and the state after it."""
        state = self._begin(batch)
        return self._word_logits(state.hidden).masked_fill(self.banned_first_words, float("-inf")).log_softmax(-1), state

    def decoding_log_probs(self, logits: Tensor) -> Tensor:
        """Teacher-forced (B, T, V) logits → the log-probabilities ``start`` and ``step`` give (module note)."""
        first = logits[:, :1].masked_fill(self.banned_first_words, float("-inf"))
        return torch.cat([first, logits[:, 1:].masked_fill(self.banned_words, float("-inf"))], dim=1).log_softmax(-1)

    def step(self, state: DecoderState, previous_words: Tensor) -> tuple[Tensor, DecoderState, AttentionStep | None]:
        """One word: (B,) y_{t−1} → (B, V) log p(y_t | y_<t, A), the new state, its attention.

        Hard attention's choices are sampled in training mode and, in eval mode, the
        most probable ones (``astar.train.model.attention``). Attention is None for fc7.
        """
        state, attention = self._advance(state, self._embed(previous_words))
        return self._word_logits(state.hidden).masked_fill(self.banned_words, float("-inf")).log_softmax(-1), state, attention

    def forward(self, batch: VideoBatch, tokens: Tensor, caption_videos: Tensor | None = None) -> Tensor:
        """Teacher-forced (B, T, V) logits of B captions; row t predicts tokens[:, t].

        ``caption_videos`` (B,) long: the video row of each caption (module note), None for row i.
        """
        return self.teacher_forced(batch, tokens, caption_videos=caption_videos)[0]

    def teacher_forced(
        self, batch: VideoBatch, tokens: Tensor, layer_choices: Tensor | None = None,
        position_choices: Tensor | None = None, caption_videos: Tensor | None = None,
    ) -> tuple[Tensor, CaptionAttention | None]:
        """(B, T, V) logits and per-word attention.

        ``layer_choices`` (B, T) forces hard attention's l_t and, for ``hard``,
        ``position_choices`` (B, T) its i_t (column 0, word 1 from fc7, unused).
        ``caption_videos`` (B,): each caption's video row (module note); None pairs row i with video i.
        """
        state = self._begin(batch)
        if caption_videos is not None:
            state = state.index_select(caption_videos)
        return self._teacher_force(state, tokens, layer_choices, position_choices)

    def loss(self, batch: VideoBatch, tokens: Tensor, caption_videos: Tensor | None = None) -> Tensor:
        """The scalar to minimise for B captions (B, T) of ``batch``'s videos, normalised per caption word.

        Soft attention and evaluation: mean negative log-likelihood per word (eq. 3).
        Hard attention in training mode: −L^K (eq. 10, K = ``config.samples``) summed over
        the captions and divided by their word count; ``backward()`` gives eq. (12)'s estimator.
        ``caption_videos`` (B,): each caption's video row (module note); None pairs row i with video i.
        """
        pad_id = self.config.pad_id
        if self.config.attention in HARD_ATTENTION and self.training:
            return -self._multi_sample_bound(batch, tokens, caption_videos).sum() / (tokens != pad_id).sum()
        logits = self(batch, tokens, caption_videos)
        return F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten(), ignore_index=pad_id)

    @torch.no_grad()
    def greedy(self, batch: VideoBatch, max_len: int) -> tuple[Tensor, CaptionAttention | None]:
        """Most likely word at every step, up to ``max_len`` words.

        Returns:
            (B, T ≤ max_len) tokens, each caption ending with ``<eos>`` then ``<pad>``
            (or cut at max_len), and its attention (None for fc7).
        """
        config = self.config
        log_probs, state = self.start(batch)
        words = [log_probs.argmax(-1)]
        finished = words[0] == config.eos_id
        steps = []
        while len(words) < max_len and not bool(finished.all()):
            log_probs, state, attention = self.step(state, words[-1])
            steps.append(attention)
            word = log_probs.argmax(-1).masked_fill(finished, config.pad_id)
            finished = finished | (word == config.eos_id)
            words.append(word)
        tokens = torch.stack(words, dim=1)
        if self.attention is None or not steps:
            return tokens, None
        return tokens, stack_attention(steps)

    def _align(self, features: dict[str, Tensor], top_steps: Tensor) -> tuple[Tensor, Tensor]:
        if self.aligner is None:
            raise ValueError("variant 'fc7' has no feature maps to align")
        return self.aligner({name: self.scaled(name, value) for name, value in features.items()}, top_steps)

    def _begin(self, batch: VideoBatch) -> DecoderState:
        """The state that predicts y_1: h_1 = tanh(C a_{L+1}), c_1 = 0, and the aligned memory, one row per video."""
        hidden = torch.tanh(self.initial_hidden(self.scaled("fc7", batch.fc7)))
        return DecoderState(hidden, torch.zeros_like(hidden), self.encode(batch))

    def _embed(self, words: Tensor) -> Tensor:
        """W_e y with dropout: (…) token ids → (…, M)."""
        return self.dropout(self.embedding(words))

    def _word_logits(self, hidden: Tensor) -> Tensor:
        """V h_t of softmax(V h_t): (…, H) → (…, vocabulary) logits."""
        return self.word_scores(self.dropout(hidden))

    def _advance(
        self, state: DecoderState, inputs: Tensor, layer_choice: Tensor | None = None,
        position_choice: Tensor | None = None,
    ) -> tuple[DecoderState, AttentionStep | None]:
        """Eq. (2): the state after word t, h_t and c_t, given y_{t−1} embedded (B, M) by ``_embed``."""
        attention = None
        if self.attention is not None and state.memory is not None:
            attention = self.attention(state.memory, state.hidden, layer_choice, position_choice)
            inputs = torch.cat([inputs, attention.context.to(inputs.dtype)], dim=-1)
        hidden, cell = self.lstm(inputs, (state.hidden, state.cell))
        return DecoderState(hidden, cell, state.memory), attention

    def _teacher_force(
        self, state: DecoderState, tokens: Tensor, layer_choices: Tensor | None = None,
        position_choices: Tensor | None = None,
    ) -> tuple[Tensor, CaptionAttention | None]:
        """(B, T, V) logits and attention of B captions from the state that predicts y_1, one row per caption."""
        hiddens, steps = [state.hidden], []
        previous_words = self._embed(tokens[:, :-1])  # (B, T − 1, M): one lookup, one gradient
        for t in range(1, tokens.shape[1]):
            layer = None if layer_choices is None else layer_choices[:, t]
            position = None if position_choices is None else position_choices[:, t]
            state, attention = self._advance(state, previous_words[:, t - 1], layer, position)
            hiddens.append(state.hidden)
            steps.append(attention)
        # One (B·T, H) × (H, V) product: T thin ones of B rows each read the whole
        # vocabulary matrix, and were most of a C = 4 step's time at the paper's widths.
        logits = self._word_logits(torch.stack(hiddens, dim=1))
        if self.attention is None or not steps:
            return logits, None
        return logits, stack_attention(steps)

    def _multi_sample_bound(self, batch: VideoBatch, tokens: Tensor, caption_videos: Tensor | None) -> Tensor:
        """(B,) VIMCO surrogate of L^K (eqs. 10–14); the alignment runs once per video, decoding K times per caption.

        Each of the K samples m^k is a whole trajectory of per-word choices (a position
        and a layer for ``hard``, a layer for ``hard_layer``); log p(m^k | A) sums their
        log-probabilities over the caption's words.
        """
        samples, batch_size = self.config.samples, tokens.shape[0]
        captions = torch.arange(batch_size, device=tokens.device)
        videos = captions if caption_videos is None else caption_videos
        state = self._begin(batch).index_select(videos.repeat_interleave(samples))
        tokens = tokens.index_select(0, captions.repeat_interleave(samples))
        logits, attention = self._teacher_force(state, tokens)
        assert attention is not None and attention.choice_log_probs is not None
        log_likelihood = caption_log_likelihood(logits, tokens, self.config.pad_id)
        # Choices after <eos> cannot change p(Y | m), so they are left out of p(m | A).
        log_proposal = (attention.choice_log_probs * (tokens != self.config.pad_id)).sum(-1)
        return vimco_surrogate(log_likelihood.view(batch_size, samples), log_proposal.view(batch_size, samples))
