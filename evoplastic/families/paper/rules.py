"""The plasticity terms as a low-rank update: the paper's ten (rank ≤ 3), generated terms, plastic feedback.

Every term except the decay T3 is an outer product, so the whole update of one layer is
``W ← (1 - θ_3) W - U Vᵀ`` with U, V of at most three columns for the paper's pool (three
more for generated terms, one per pre-synaptic factor): a few outer products instead of
dense matrices. Signs follow the paper: ``ΔW = -Σ_r θ_r T_r``.
"""

from __future__ import annotations

import torch

from evoplastic.families.paper.batched import vecmat
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.terms import (  # noqa: F401 — the rule vocabulary, re-exported
    DEFAULT_TERM_SCALE,
    FEEDBACK_TERMS,
    GENERATED_TERMS,
    N_TERMS,
    N_VOCAB,
    NAMED_RULES,
    TERM_FORMULAS,
    default_theta,
    resolve_terms,
)

_NEEDS_BACKPROJECTION = frozenset({6, 7, 9} | {N_TERMS + i for i, (m, _, _) in enumerate(GENERATED_TERMS) if m == 2})
"""Terms that use u = W^T y_l: T6, T7, T9 and generated terms modulated by y_lᵀ W e_{l-1}."""


def needs_backprojection(terms: tuple[int, ...]) -> bool:
    """Whether the rule uses u = W_ℓᵀ y_ℓ (T6, T7, T9), an extra pass over W per step."""
    return bool(_NEEDS_BACKPROJECTION & set(terms))


def update_rank(terms: tuple[int, ...]) -> int:
    """Columns k of the factors U, V that low_rank_update returns for these terms (1 to 3)."""
    active = set(terms)
    paper = max(1, sum(bool(active & group) for group in ({0, 2, 5, 7}, {1, 4, 6, 8}, {9})))
    return paper + len({GENERATED_TERMS[t - N_TERMS][2] for t in active if t >= N_TERMS})


def vocabulary_width(terms: tuple[int, ...]) -> int:
    """Columns of the full coefficient table for these terms: the paper's 10, or N_VOCAB with generated terms."""
    return N_VOCAB if max(terms) >= N_TERMS else N_TERMS


def expand_theta(theta: torch.Tensor, terms: tuple[int, ...]) -> torch.Tensor:
    """(..., len(terms)) coefficients of the searched terms -> (..., vocabulary_width(terms)), zeros elsewhere."""
    full = theta.new_zeros(*theta.shape[:-1], vocabulary_width(terms))
    return full.index_copy(-1, torch.tensor(terms, device=theta.device), theta)


def of_layer(t: torch.Tensor, layer: int, per_layer: bool) -> torch.Tensor:
    """Layer ``layer``'s slice of per-layer coefficients (c, L, …) -> (c, …); shared ones (c, …) as they are."""
    return t[:, layer] if per_layer else t


def split_theta(space: RuleSpace, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, size) θ -> the weight rule's full coefficients, (N, V) shared or (N, L, V) per layer, and the
    feedback rule's (N, L, 4), or None when the feedback is fixed."""
    if theta.dim() != 2:
        raise ValueError(f"theta must be (N, {space.size}), got {tuple(theta.shape)}")
    space.check_width(theta.shape[1])
    n, weight = theta.shape[0], theta[:, : space.n_weight]
    if space.per_layer:
        weight = weight.reshape(n, space.n_layers, len(space.terms))
    if not space.feedback_terms:
        return expand_theta(weight, space.terms), None
    k = len(space.feedback_terms)
    phi = theta[:, space.n_weight:].reshape(n, space.blocks, k).expand(n, space.n_layers, k)
    full = phi.new_zeros(n, space.n_layers, len(FEEDBACK_TERMS))
    return expand_theta(weight, space.terms), full.index_copy(
        2, torch.tensor(space.feedback_terms, device=theta.device), phi)


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
    if any(t >= N_TERMS for t in active):
        modulators = (None, post.sum(1), mixed, (post_error * post_drive).sum(1))
        for pre_vec, left_vec in generated_columns(th, active, modulators, (post, post_error), (pre, pre_error)):
            left.append(left_vec)
            right.append(pre_vec)
    if not left:  # only the decay term is searched
        left.append(torch.zeros_like(post))
        right.append(torch.zeros_like(pre))
    decay = th[3] if 3 in active else None
    return decay, torch.stack(left, column_dim), torch.stack(right, column_dim)


def generated_columns(
    th: tuple[torch.Tensor, ...], active: set[int], modulators: tuple, posts: tuple, pres: tuple,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(pre factor, post factor) columns of the generated terms, one per pre-synaptic vector used.

    Term (m, q, p) adds θ·m·q pᵀ; grouping by p gives Σ_p (Σ_{m,q} θ m q) pᵀ, at most three columns.
    modulators: (None for 1, 1ᵀy, yᵀWe, eᵀz) each (N,); posts (y_ℓ, e_ℓ), pres (y_{ℓ-1}, e_{ℓ-1}); 1 is ones.
    """
    sums: dict[int, torch.Tensor] = {}
    for term in sorted(t for t in active if t >= N_TERMS):
        m, q, p = GENERATED_TERMS[term - N_TERMS]
        coef = th[term] if modulators[m] is None else th[term] * modulators[m]
        vec = coef.unsqueeze(1) * posts[q] if q < 2 else coef.unsqueeze(1).expand_as(posts[0])
        sums[p] = vec if p not in sums else sums[p] + vec
    return [(pres[p] if p < 2 else torch.ones_like(pres[0]), vec) for p, vec in sorted(sums.items())]


def feedback_update(
    phi: torch.Tensor, feedback: torch.Tensor, pre: torch.Tensor, pre_error: torch.Tensor,
    post: torch.Tensor, post_error: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factor the plastic-feedback rule ``ΔB = -Σ φ_r F_r`` as ``(decay, U, V)``: ΔB = -decay·B - U Vᵀ.

    phi (N, 4) over FEEDBACK_TERMS (hebb, ee, decay, oja); feedback B (N, n_post, n_pre); pre,
    pre_error (N, n_pre) of layer ℓ-1; post, post_error (N, n_post): layer ℓ for fa, the output for dfa.
    """
    hebb, ee, decay, oja = phi.unbind(1)
    back = vecmat(post, feedback)  # Bᵀ y_post
    left = torch.stack([post_error, oja.unsqueeze(1) * post], 2)
    right = torch.stack([hebb.unsqueeze(1) * pre + ee.unsqueeze(1) * pre_error, pre - back], 2)
    return decay, left, right
