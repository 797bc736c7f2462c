"""Spatiotemporal and abstraction-level attention, eqs. (5)–(8).

Both orders of Section 3.2 are here: ``position_first`` (the paper's: α over
positions from all layers, then β over layers) and ``layer_first`` (β first, then α
over the β-weighted map).

Hard attention (eq. 8) comes in two forms (``ModelConfig.attention``):

- ``hard``, the paper's: Section 3.2 defines ψ for z_t = ψ({s_tl}, {β_tl}) and says
  "this function setup is applied in the same way to s_t = ψ({â_i}, {α_ti})", so both
  choices are samples. Position first: i_t ~ Mult(1, α_t), s_tl = â_{i_t,l}, then
  l_t ~ Mult(1, β_t) with β_t scored from those s_tl, and z_t = â_{i_t,l_t}. Layer first:
  l_t ~ Mult(1, β_t), then i_t ~ Mult(1, α_t) over layer l_t's positions. Either way the
  pair has p(i, l | h_{t−1}) = α_ti β_tl|i (or β_tl α_ti|l), computed for every pair at
  once (``joint_log_probs``) and sampled in one draw, which is the same distribution as
  drawing the two in order. Test time takes the most probable pair of that joint.
- ``hard_layer``: only the layer is sampled, m_t ~ Mult(1, β_t), over the soft s_t of
  eq. (5). Fewer discrete choices (L instead of P·L per word) give a lower-variance
  estimator; runs trained before the paper's form existed used it.

The training objective of both lives in ``hard.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig


@dataclass
class AttentionMemory:
    """What attention needs from one batch of videos, computed once per caption.

    Attributes:
        aligned: (B, L, P, D) the aligned maps â_{i,l}.
        mask: (B, P) bool, True on positions of valid time steps.
        position_keys: W_aα â_i of eq. (5): (B, P, A) for ``position_first``, where â_i
            stacks all layers; (B, L, P, A), one per layer, for ``layer_first``.
        layer_summary: (B, L, D) mean of each layer over valid positions, the s_tl that
            ``layer_first`` scores before any α exists; None otherwise.
        layer_keys: (B, P, L, A) W_sβ â_{i,l} for the paper's hard attention in
            ``position_first`` order, where s_tl = â_{i_t,l} once i_t is drawn; None otherwise.
    """

    aligned: Tensor
    mask: Tensor
    position_keys: Tensor
    layer_summary: Tensor | None
    layer_keys: Tensor | None = None

    def index_select(self, indices: Tensor) -> AttentionMemory:
        """Rows ``indices`` (B′,) of the batch, e.g. to expand B videos to B·beam."""
        return AttentionMemory(
            aligned=self.aligned.index_select(0, indices),
            mask=self.mask.index_select(0, indices),
            position_keys=self.position_keys.index_select(0, indices),
            layer_summary=None if self.layer_summary is None else self.layer_summary.index_select(0, indices),
            layer_keys=None if self.layer_keys is None else self.layer_keys.index_select(0, indices),
        )


@dataclass
class AttentionStep:
    """One decoding step's attention.

    Attributes:
        context: (B, D) z_t.
        positions: (B, P) α_t; for ``hard``, the marginal Σ_l p(i, l) (α_t itself when
            positions come first); for ``hard_layer`` in ``layer_first`` order, α over the chosen layer.
        layers: (B, L) β_t (all ones when L = 1); for ``hard``, the marginal Σ_i p(i, l).
        choice: (B,) long m_t, the chosen layer; None for soft attention.
        position_choice: (B,) long i_t, the chosen position; ``hard`` only.
        choice_log_prob: (B,) log-probability of the choices: log p(i_t, l_t) for
            ``hard``, log β_t[m_t] for ``hard_layer``; None for soft attention.
    """

    context: Tensor
    positions: Tensor
    layers: Tensor
    choice: Tensor | None = None
    position_choice: Tensor | None = None
    choice_log_prob: Tensor | None = None


class AdditiveScore(nn.Module):
    """The score MLP shared by eqs. (5) and (6): w^T tanh(W_k k + W_h h_{t−1})."""

    def __init__(self, key_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(key_dim, attention_dim, bias=False)
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.vector = nn.Linear(attention_dim, 1, bias=False)

    def project(self, keys: Tensor) -> Tensor:
        """W_k k: (…, key_dim) → (…, A), computable once per video."""
        return self.key(keys)

    def forward(self, projected_keys: Tensor, hidden: Tensor) -> Tensor:
        """(B, …, N, A) projected keys, (B, H) h_{t−1} → (B, …, N) scores."""
        query = self.query(hidden)
        query = query.view(query.shape[0], *([1] * (projected_keys.dim() - 2)), query.shape[-1])
        return self.vector(torch.tanh(projected_keys + query)).squeeze(-1)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis giving exactly zero weight where ``mask`` is False."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def masked_log_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Log-softmax over the last axis, −inf where ``mask`` is False."""
    return scores.masked_fill(~mask, float("-inf")).log_softmax(dim=-1)


def draw(log_probs: Tensor, sample: bool) -> Tensor:
    """(B, N) log-probabilities → (B,) one index per row: a sample, or the mode (first on ties)."""
    if sample:
        return torch.multinomial(log_probs.detach().float().exp(), 1).squeeze(1)
    return log_probs.argmax(-1)


class TwoLevelAttention(nn.Module):
    """φ(h_{t−1}, â_1 … â_L) of Section 3.2: α over positions, β over layers, z_t.

    With one attended map (single-layer and hypercolumn baselines) only α exists,
    β ≡ 1 and z_t = s_t.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layer_count = config.attended_layers
        self.order = config.order
        self.mode = config.attention
        width = config.context_dim
        key_width = width * self.layer_count if self.order == "position_first" else width
        self.position_score = AdditiveScore(key_width, config.hidden_dim, config.attention_dim)
        self.layer_score = (
            AdditiveScore(width, config.hidden_dim, config.attention_dim) if self.layer_count > 1 else None
        )

    def prepare(self, aligned: Tensor, mask: Tensor) -> AttentionMemory:
        """Precompute the step-independent parts of eqs. (5)–(6) from (B, L, P, D) and (B, P)."""
        summary = layer_keys = None
        if self.order == "position_first":
            keys = self.position_score.project(aligned.permute(0, 2, 1, 3).flatten(2))  # (B, P, A)
            if self.mode == "hard" and self.layer_score is not None:
                layer_keys = self.layer_score.project(aligned.transpose(1, 2))  # (B, P, L, A)
        else:
            keys = self.position_score.project(aligned)  # (B, L, P, A)
            if self.layer_score is not None:
                valid = mask[:, None, :, None].to(aligned.dtype)
                summary = (aligned * valid).sum(2) / valid.sum(2)  # (B, L, D)
        return AttentionMemory(aligned, mask, keys, summary, layer_keys)

    def forward(
        self,
        memory: AttentionMemory,
        hidden: Tensor,
        layer_choice: Tensor | None = None,
        position_choice: Tensor | None = None,
    ) -> AttentionStep:
        """Attend with h_{t−1} (B, H).

        ``layer_choice`` (B,) forces hard attention's l_t, and with ``hard`` also
        ``position_choice`` (B,) its i_t (both or neither). Unforced choices are sampled
        in training mode and the mode of their distribution in eval mode.
        """
        if self.mode == "hard":
            return self._joint(memory, hidden, layer_choice, position_choice)
        if position_choice is not None:
            raise ValueError(f"{self.mode!r} attention has no position choice to force")
        if self.order == "position_first":
            return self._position_first(memory, hidden, layer_choice)
        return self._layer_first(memory, hidden, layer_choice)

    def joint_log_probs(self, memory: AttentionMemory, hidden: Tensor) -> Tensor:
        """log p(i, l | h_{t−1}) of every position–layer pair: (B, P, L), −inf at padding.

        ``position_first``: log α_ti (eq. 5) + log β_tl|i, β scored from s_tl = â_{i,l} (eq. 6).
        ``layer_first``: log β_tl (eq. 6 on the layer means) + log α_ti|l, α scored on layer l.
        """
        if self.order == "position_first":
            log_positions = masked_log_softmax(self.position_score(memory.position_keys, hidden), memory.mask)  # (B, P)
            if memory.layer_keys is None:
                return log_positions.unsqueeze(-1)
            log_layers = self.layer_score(memory.layer_keys, hidden).log_softmax(-1)  # (B, P, L)
            return log_positions.unsqueeze(-1) + log_layers
        position_scores = self.position_score(memory.position_keys, hidden)  # (B, L, P)
        log_positions = masked_log_softmax(position_scores, memory.mask.unsqueeze(1))
        if self.layer_score is None:
            return log_positions.transpose(1, 2)
        log_layers = self.layer_score(self.layer_score.project(memory.layer_summary), hidden).log_softmax(-1)  # (B, L)
        return (log_layers.unsqueeze(-1) + log_positions).transpose(1, 2)

    def _joint(
        self, memory: AttentionMemory, hidden: Tensor, layer_choice: Tensor | None, position_choice: Tensor | None
    ) -> AttentionStep:
        """The paper's hard attention: (i_t, l_t) ~ p(i, l | h_{t−1}) and z_t = â_{i_t,l_t} (eq. 8 on both levels)."""
        joint = self.joint_log_probs(memory, hidden)  # (B, P, L)
        batch = torch.arange(joint.shape[0], device=joint.device)
        if (layer_choice is None) != (position_choice is None):
            raise ValueError("the paper's hard attention forces both the position and the layer, or neither")
        if layer_choice is None or position_choice is None:
            pair = draw(joint.flatten(1), self.training)  # test time: the most probable pair
            position_choice, layer_choice = pair // self.layer_count, pair % self.layer_count
        log_prob = joint[batch, position_choice, layer_choice]
        context = memory.aligned[batch, layer_choice, position_choice]  # (B, D)
        probabilities = joint.exp()
        return AttentionStep(context, probabilities.sum(2), probabilities.sum(1), layer_choice, position_choice, log_prob)

    def _position_first(self, memory: AttentionMemory, hidden: Tensor, choice: Tensor | None) -> AttentionStep:
        # Eq. (5): e_ti from all layers at position i; s_tl = Σ_i α_ti â_{i,l}.
        positions = masked_softmax(self.position_score(memory.position_keys, hidden), memory.mask)  # (B, P)
        per_layer = torch.einsum("bp,blpd->bld", positions, memory.aligned)  # (B, L, D)
        layers, weights, choice, log_prob = self._layer_weights(per_layer, hidden, choice)
        context = torch.einsum("bl,bld->bd", weights, per_layer)  # eq. (7) or (8)
        return AttentionStep(context, positions, layers, choice, choice_log_prob=log_prob)

    def _layer_first(self, memory: AttentionMemory, hidden: Tensor, choice: Tensor | None) -> AttentionStep:
        layers, weights, choice, log_prob = self._layer_weights(memory.layer_summary, hidden, choice)
        # W_aα is linear, so the keys of the β-mixed map are the β-mixed keys.
        keys = torch.einsum("bl,blpa->bpa", weights, memory.position_keys)
        positions = masked_softmax(self.position_score(keys, hidden), memory.mask)
        context = torch.einsum("bl,bp,blpd->bd", weights, positions, memory.aligned)
        return AttentionStep(context, positions, layers, choice, choice_log_prob=log_prob)

    def _layer_weights(
        self, per_layer: Tensor | None, hidden: Tensor, choice: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Eq. (6) and the layer selection of eqs. (7)/(8) (soft and ``hard_layer``).

        Args:
            per_layer: (B, L, D) s_tl to score (None when L = 1).
            hidden: (B, H) h_{t−1}.
            choice: (B,) forced m_t, ``hard_layer`` only.

        Returns:
            β_t (B, L); the weights that mix layers (β_t, or one-hot m_t when hard);
            m_t (B,) and log β_t[m_t] (B,) for hard attention, else None.
        """
        if self.layer_score is None:
            ones = hidden.new_ones(hidden.shape[0], 1)
            return ones, ones, None, None
        log_layers = self.layer_score(self.layer_score.project(per_layer), hidden).log_softmax(dim=-1)
        layers = log_layers.exp()
        if self.mode == "soft":
            return layers, layers, None, None
        if choice is None:
            # Test time: the mode of Mult(1, β_t), a z_t of the kind training saw.
            choice = draw(log_layers, self.training)
        log_prob = log_layers.gather(1, choice[:, None]).squeeze(1)
        weights = F.one_hot(choice, self.layer_count).to(layers.dtype)
        return layers, weights, choice, log_prob
