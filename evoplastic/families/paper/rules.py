"""The paper's pool of ten plasticity terms and its rank-≤3 update.

Every term except the decay T3 is an outer product, so the whole update of one layer is
``W ← (1 - θ_3) W - U Vᵀ`` with U, V of at most three columns: three outer products
instead of ten dense matrices. Signs follow the paper: ``ΔW = -Σ_r θ_r T_r``.
"""

from __future__ import annotations

import torch

from evoplastic.families.paper.batched import vecmat
from evoplastic.families.paper.terms import (  # noqa: F401 — the rule vocabulary, re-exported
    DEFAULT_TERM_SCALE,
    N_TERMS,
    NAMED_RULES,
    TERM_FORMULAS,
    default_theta,
    resolve_terms,
)

_NEEDS_BACKPROJECTION = frozenset({6, 7, 9})  # terms that use u = W^T y_l


def needs_backprojection(terms: tuple[int, ...]) -> bool:
    """Whether the rule uses u = W_ℓᵀ y_ℓ (T6, T7, T9), an extra pass over W per step."""
    return bool(_NEEDS_BACKPROJECTION & set(terms))


def update_rank(terms: tuple[int, ...]) -> int:
    """Columns k of the factors U, V that low_rank_update returns for these terms (1 to 3)."""
    active = set(terms)
    return max(1, sum(bool(active & group) for group in ({0, 2, 5, 7}, {1, 4, 6, 8}, {9})))


def expand_theta(theta: torch.Tensor, terms: tuple[int, ...]) -> torch.Tensor:
    """(N, len(terms)) coefficients of the searched terms -> (N, 10), zeros elsewhere."""
    full = theta.new_zeros(theta.shape[0], N_TERMS)
    return full.index_copy(1, torch.tensor(terms, device=theta.device), theta)


def low_rank_update(
    theta: torch.Tensor,
    terms: tuple[int, ...],
    weight: torch.Tensor,
    pre: torch.Tensor,
    post: torch.Tensor,
    pre_error: torch.Tensor,
    post_error: torch.Tensor,
    post_drive: torch.Tensor,
    back: torch.Tensor | None = None,
    column_dim: int = 2,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Factor ``-Σ θ_r T_r`` as ``(decay, U, V)`` with ``ΔW = -decay·W - U Vᵀ``.

    Shapes: theta (N, 10) in the full pool (entries outside ``terms`` are ignored), weight
    (N, n_post, n_pre), pre/pre_error (N, n_pre), post/post_error/post_drive (N, n_post);
    post_drive is z_ℓ = W y_{ℓ-1}; back, when given, is u = Wᵀ y_ℓ (N, n_pre), else computed from weight.
    Returns decay (N,) or None when T3 is not searched, U (N, n_post, k), V (N, n_pre, k);
    with column_dim=1, U (N, k, n_post) and V (N, k, n_pre), each column contiguous.
    """
    active = set(terms)
    th = theta.unbind(1)
    left, right = [], []
    mixed = None
    if active & _NEEDS_BACKPROJECTION:
        if back is None:
            back = vecmat(post, weight)  # u = W^T y_l, (N, n_pre)
        mixed = (back * pre_error).sum(1)  # y_l^T W e_{l-1}
    if active & {0, 2, 5, 7}:  # e_l ⊗ (a y_{l-1} + θ2 e_{l-1})
        a = th[0] if 0 in active else torch.zeros_like(th[0])
        if 5 in active:
            a = a + th[5] * post.sum(1)
        if 7 in active:
            a = a + th[7] * mixed
        right_vec = a.unsqueeze(1) * pre
        if 2 in active:
            right_vec = right_vec + th[2].unsqueeze(1) * pre_error
        left.append(post_error)
        right.append(right_vec)
    if active & {1, 4, 6, 8}:  # (b y_l + θ4 1) ⊗ e_{l-1}
        b = th[1] if 1 in active else torch.zeros_like(th[1])
        if 6 in active:
            b = b + th[6] * mixed
        if 8 in active:
            b = b + th[8] * (post_error * post_drive).sum(1)
        left_vec = b.unsqueeze(1) * post
        if 4 in active:
            left_vec = left_vec + th[4].unsqueeze(1)
        left.append(left_vec)
        right.append(pre_error)
    if 9 in active:  # Oja: y_l ⊗ (y_{l-1} - W^T y_l)
        left.append(th[9].unsqueeze(1) * post)
        right.append(pre - back)
    if not left:  # only the decay term is searched
        left.append(torch.zeros_like(post))
        right.append(torch.zeros_like(pre))
    decay = th[3] if 3 in active else None
    return decay, torch.stack(left, column_dim), torch.stack(right, column_dim)
