"""Diagnostics the paper plots: error alignment with backprop and Oja orthonormality.

Both are pure functions of a network state and inputs; they reuse the inner loop's own
forward and error pathway, so what they measure is exactly what the rule saw.
Shapes: N networks, one sample each unless stated; L weight layers; every tensor has the
batch axis first. Only hidden layers ℓ = 1..L-1 are reported: e_L is the same under
every feedback (α_L = 0) and e_0 is synthetic; the paper's orthonormality plot also
excludes the softmax output layer.
"""

from __future__ import annotations

import math

import torch

from evoplastic.families.paper.inner import backward_errors, forward
from evoplastic.families.paper.network import Activation


def vector_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between rows of a and b (N, n); NaN where either row is zero.

    Uses 2·atan2(‖u - v‖, ‖u + v‖) of the unit vectors, exact near 0° and 180° where
    acos of the cosine loses half the digits (float32 would blur small angles by ~0.02°).
    """
    norm_a, norm_b = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    u, v = a / norm_a, b / norm_b
    angle = torch.rad2deg(2 * torch.atan2((u - v).norm(dim=1), (u + v).norm(dim=1)))
    defined = ((norm_a > 0) & (norm_b > 0)).squeeze(1)
    return torch.where(defined, angle, torch.full_like(angle, math.nan))


def alignment_angles(
    weights: list[torch.Tensor],
    feedback: list[torch.Tensor] | None,
    x: torch.Tensor,
    target: torch.Tensor,
    activation: Activation,
    direct: bool = False,
) -> torch.Tensor:
    """α_ℓ (N, L-1) in degrees between e_ℓ sent through B and backprop's e_ℓ (B = W), ℓ = 1..L-1.

    x (N, D) one sample per network, target (N, n_L) one-hot. Feedback None means bp
    (all angles 0); direct means dfa feedback. NaN where an error vector is exactly zero (e.g.
    dead ReLU layers).
    """
    ys, zs = forward(weights, x, activation)
    ones = torch.ones_like(x)  # e_0 is not reported, so its input slope is irrelevant
    true = backward_errors(weights, zs, ys[-1], target, activation, ones)
    sent = true if feedback is None else backward_errors(feedback, zs, ys[-1], target, activation, ones, direct)
    return _columns([vector_angles(sent[layer], true[layer]) for layer in range(1, len(weights))], x)


def mean_alignment_angles(
    weights: list[torch.Tensor],
    feedback: list[torch.Tensor] | None,
    x: torch.Tensor,
    target: torch.Tensor,
    activation: Activation,
    direct: bool = False,
) -> torch.Tensor:
    """α_ℓ (N, L-1) averaged over S samples per network, x (N, S, D), target (N, S, n_L).

    Undefined (NaN) angles are left out of the mean.
    """
    angles = torch.stack([alignment_angles(weights, feedback, x[:, s], target[:, s], activation, direct)
                          for s in range(x.shape[1])], 1)
    return angles.nanmean(1)


def orthonormality_errors(weights: list[torch.Tensor], x: torch.Tensor, activation: Activation) -> torch.Tensor:
    """Paper Eq. 10, E_ℓ = ‖z_ℓ - W_ℓ ȳ‖², ȳ = W_ℓᵀ σ(z_ℓ), per hidden layer: (N, L-1).

    x (N, D) one sample per network. E_ℓ is 0 when W_ℓ has orthonormal rows and σ is the
    identity: the fixed point of Oja's rule.
    """
    ys, zs = forward(weights, x, activation)
    errors = []
    for layer in range(len(weights) - 1):
        w, z = weights[layer], zs[layer]
        back = torch.matmul(ys[layer + 1].unsqueeze(1), w)  # ȳᵀ = σ(z)ᵀ W, (N, 1, n_{ℓ-1})
        reconstruction = torch.matmul(back, w.transpose(1, 2)).squeeze(1)  # (W ȳ)ᵀ, (N, n_ℓ)
        errors.append(((z - reconstruction) ** 2).sum(1))
    return _columns(errors, x)


def _columns(values: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Stack per-layer (N,) values into (N, L-1); (N, 0) for a network without hidden layers."""
    return torch.stack(values, 1) if values else like.new_zeros(like.shape[0], 0)


__all__ = ["alignment_angles", "mean_alignment_angles", "orthonormality_errors", "vector_angles"]
