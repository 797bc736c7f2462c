"""Hard attention's training objective: the K-sample bound (eq. 10) and VIMCO (eqs. 12–14).

For caption Y and K independent choice trajectories m^1 … m^K, each with
ℓ_k = log p(Y | m^k, A) and log-probability log p(m^k | A) = Σ_t log p(m_t^k | h_{t−1}),
where m_t is word t's position and layer (i_t, l_t) with p = α_ti β_tl|i for the
paper's hard attention, or its layer alone with p = β_tl for ``hard_layer``
(``astar.train.model.attention``); the estimator below is the same for both:

    L^K = log (1/K) Σ_k exp ℓ_k                                              (eq. 10)
    ∇L^K ≈ Σ_k L̂(m^k | m^−k) ∇ log p(m^k | A) + ω_k ∇ℓ_k                     (eq. 12)
    L̂(m^k | m^−k) = L^K − log (1/K)(Σ_{j≠k} exp ℓ_j + exp(mean_{j≠k} ℓ_j))    (eqs. 13–14)

with ω_k = exp ℓ_k / Σ_j exp ℓ_j. (Eq. 12 as printed has ω_k ∇p(Y | m^k, A); the
gradient of L^K has ∇ log p, as in Mnih & Rezende, 2016.)
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def multi_sample_bound(log_likelihood: Tensor) -> Tensor:
    """Eq. (10) for one draw of samples: (B, K) ℓ_k → (B,) log (1/K) Σ_k exp ℓ_k."""
    return torch.logsumexp(log_likelihood, dim=-1) - math.log(log_likelihood.shape[-1])


def vimco_learning_signals(log_likelihood: Tensor) -> Tensor:
    """Eqs. (13)–(14): (B, K) ℓ_k → (B, K) L̂(m^k | m^−k), without gradient.

    Each sample's own ℓ_k is replaced by the mean of the others' (the geometric
    mean of eq. 14 in log space); what the bound loses is sample k's learning signal.
    """
    log_likelihood = log_likelihood.detach()
    samples = log_likelihood.shape[-1]
    others_mean = (log_likelihood.sum(-1, keepdim=True) - log_likelihood) / (samples - 1)  # (B, K)
    replaced = log_likelihood.unsqueeze(-2).repeat(1, samples, 1)  # (B, K, K): row k is sample set k
    replaced.diagonal(dim1=-2, dim2=-1).copy_(others_mean)
    return multi_sample_bound(log_likelihood).unsqueeze(-1) - multi_sample_bound(replaced)


def vimco_surrogate(log_likelihood: Tensor, log_proposal: Tensor) -> Tensor:
    """A (B,) objective whose value is L^K and whose gradient is eq. (12)'s estimator.

    Args:
        log_likelihood: (B, K) ℓ_k = log p(Y | m^k, A), differentiable.
        log_proposal: (B, K) log p(m^k | A) of the sampled trajectories, differentiable.
    """
    signals = vimco_learning_signals(log_likelihood)
    score_terms = (signals * (log_proposal - log_proposal.detach())).sum(-1)  # value 0, gradient eq. (12)
    return multi_sample_bound(log_likelihood) + score_terms
