"""The θ space of the k-cap family: a pool of named local terms, or the paper's tiny MLP f_θ(pre_j, post_i, M_ij).

Sign convention: ΔM = +Σ_r θ_r T_r (θ_hebb > 0 potentiates, θ_decay < 0 shrinks M), unlike the
paper system's ΔW = -Σ θ_r T_r. A matrix sees P (pre, post) pairs per sample (P = 1 for M_in,
T for M_rec) and ΔM is the mean over them. θ holds one block, shared by every plastic matrix, or
one block per plastic matrix (``per_matrix``), in the order of ``cfg.plastic``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from evoplastic.families.kcap.config import POOL_TERMS, KcapConfig
from evoplastic.seeding import make_generator

Fn = Callable[[torch.Tensor], torch.Tensor]


def _centred(v: torch.Tensor) -> torch.Tensor:
    return v - v.mean(-1, keepdim=True)


def _neighbours(v: torch.Tensor, distance: int) -> torch.Tensor:
    """v_{j-d} + v_{j+d} at every j along the last dim (cyclic)."""
    return torch.roll(v, distance, -1) + torch.roll(v, -distance, -1)


@dataclass(frozen=True)
class Term:
    """T = left ⊗ right(pre) + diag(row(post)) M, for one (pre, post) pair; either part may be absent."""

    name: str
    formula: str
    scale: float
    """Natural size of θ_r: a step of 1 in ES's scaled coordinates moves θ_r by this much."""
    left: str | None = None
    """Post-side factor: 'post', 'one' or 'centred_post' (terms with the same left share a rank-1 product)."""
    right: Fn | None = None
    """Pre-side factor from pre (..., a)."""
    row: Fn | None = None
    """Per-row coefficient on M from post (..., b)."""


SELF = "pre_self"
"""Left factor that is the presynaptic activity itself (square matrices only)."""
LEFT: dict[str, Fn] = {"post": lambda post: post, "one": torch.ones_like, "centred_post": _centred}

POOL: dict[str, Term] = {t.name: t for t in (
    Term("hebb", "post pre^T", 1e-2, "post", lambda pre: pre),
    Term("post", "post 1^T", 1e-2, "post", torch.ones_like),
    Term("pre", "1 pre^T", 1e-2, "one", lambda pre: pre),
    Term("decay", "M", 1e-3, row=lambda post: torch.ones_like(post)),
    Term("oja", "post pre^T - diag(post^2) M", 1e-2, "post", lambda pre: pre, lambda post: -post**2),
    # Hebb with both activities centred on their mean over units (post's is k/m under k-cap): every
    # row and column of the update sums to zero, so it moves weight between synapses without the
    # net growth plain Hebb causes, a covariance rule that does not need the normalisation.
    Term("covariance", "(post - mean post)(pre - mean pre)^T", 1e-2, "centred_post", _centred),
    # Heterosynaptic depression of an active unit's inputs; Oja = hebb - gated_decay, so this lets
    # θ weigh Oja's growth and decay parts separately.
    Term("gated_decay", "diag(post^2) M", 1e-2, row=lambda post: post**2),
    # A wider presynaptic field (Balwani, Gupta & Shu's extended Hebbian update): synapse (i, j) also
    # sees the presynaptic units next to j in index order, at distance 1 (near) or 2 (far), cyclically.
    Term("hebb_near", "post (pre_{j-1} + pre_{j+1})^T", 1e-2, "post", lambda pre: _neighbours(pre, 1)),
    Term("hebb_far", "post (pre_{j-2} + pre_{j+2})^T", 1e-2, "post", lambda pre: _neighbours(pre, 2)),
    # Coincidence of two units' activity in the same step (M_rec only: pre and post are both x_t); it
    # makes each code drive itself, so the recurrence keeps what x_1 encodes instead of scrambling it.
    Term("auto", "pre pre^T (M_rec; 0 for M_in)", 1e-1, SELF, lambda pre: pre),
)}
"""The pool's terms by name; ΔM = Σ_r θ_r T_r."""
assert tuple(POOL) == POOL_TERMS, "config.POOL_TERMS must list rules.POOL in order"

MLP_INPUTS = ("pre", "post", "M")
"""Inputs of f_θ per synapse (i, j): pre_j, post_i, M_ij."""


def block_size(cfg: KcapConfig) -> int:
    """Entries of one θ block: the searched terms, or the MLP's 3h + h + h + 1 weights."""
    return len(cfg.terms) if cfg.rule == "pool" else 5 * cfg.mlp_hidden + 1


def n_blocks(cfg: KcapConfig) -> int:
    """θ blocks: one per plastic matrix when per_matrix, else one shared."""
    return len(cfg.plastic) if cfg.per_matrix else 1


def theta_size(cfg: KcapConfig) -> int:
    """R, the length of θ."""
    return block_size(cfg) * n_blocks(cfg)


def _block_labels(cfg: KcapConfig) -> list[str]:
    if cfg.rule == "pool":
        return list(cfg.terms)
    h = range(cfg.mlp_hidden)
    return ([f"W1[{u},{name}]" for u in h for name in MLP_INPUTS] + [f"b1[{u}]" for u in h]
            + [f"w2[{u}]" for u in h] + ["b2"])


def theta_labels(cfg: KcapConfig) -> list[str]:
    """A short name per θ coordinate, prefixed by the matrix ('M_in/hebb') when per_matrix."""
    labels = _block_labels(cfg)
    if not cfg.per_matrix:
        return labels
    return [f"{matrix}/{label}" for matrix in cfg.plastic for label in labels]


def _mlp_scales(h: int) -> torch.Tensor:
    return torch.cat([torch.full((4 * h,), 1.0), torch.full((h,), 1e-2), torch.full((1,), 1e-3)])


def theta_scales(cfg: KcapConfig, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(R,) natural size of each coordinate: pool terms' Term.scale; MLP W1, b1: 1, w2: 1e-2, b2: 1e-3."""
    if cfg.rule == "pool":
        block = torch.tensor([POOL[name].scale for name in cfg.terms], dtype=torch.float64)
    else:
        block = _mlp_scales(cfg.mlp_hidden).to(torch.float64)
    return block.repeat(n_blocks(cfg)).to(dtype)


MLP_START_HEBB = 1e-2
"""The MLP starts as ΔM_ij ≈ MLP_START_HEBB · pre_j post_i (for binary post), like the pool's start."""
MLP_START_SLOPE, MLP_START_GATE = 0.1, 5.0
"""Input slope a and post gate b of the two units that build the start's Hebb term."""


def _mlp_start(h: int) -> torch.Tensor:
    """Units 0, 1 give (η/a)[tanh(a pre + b post - b) - tanh(b post - b)]: η·pre·(1 + O(a²)) when post = 1,
    η·sech²(b)·pre ≈ 2e-4 η·pre when post = 0. Units 2.. get seeded random inputs and zero output
    weights, so they change nothing yet still carry a gradient."""
    a, b, eta = MLP_START_SLOPE, MLP_START_GATE, MLP_START_HEBB
    g = make_generator("kcap", "mlp_start", h)
    w1 = torch.randn(h, 3, generator=g, dtype=torch.float64)
    b1 = 0.5 * torch.randn(h, generator=g, dtype=torch.float64)
    w2 = torch.zeros(h, dtype=torch.float64)
    w1[:2] = torch.tensor([[a, b, 0.0], [0.0, b, 0.0]], dtype=torch.float64)
    b1[:2] = -b
    w2[:2] = torch.tensor([eta / a, -eta / a], dtype=torch.float64)
    return torch.cat([w1.flatten(), b1, w2, torch.zeros(1, dtype=torch.float64)])


def initial_theta(cfg: KcapConfig, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(R,) start: pool θ_hebb = 1e-2 (others 0); mlp the same small Hebb term built from two units."""
    if cfg.rule == "pool":
        block = torch.tensor([1e-2 if name == "hebb" else 0.0 for name in cfg.terms], dtype=torch.float64)
    else:
        block = _mlp_start(cfg.mlp_hidden)
    return block.repeat(n_blocks(cfg)).to(dtype)


def theta_block(theta: torch.Tensor, cfg: KcapConfig, which: str) -> torch.Tensor:
    """(N, block_size) coefficients matrix `which` uses, out of θ (N, R)."""
    size = block_size(cfg)
    start = cfg.plastic.index(which) * size if cfg.per_matrix else 0
    return theta[:, start: start + size]


def _pairs(v: torch.Tensor) -> torch.Tensor:
    return v.unsqueeze(1) if v.dim() == 2 else v


def pool_delta(theta: torch.Tensor, terms: tuple[str, ...], M: torch.Tensor,
               pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """Σ_r θ_r T_r averaged over the P pairs: theta (N, R), M (N, b, a), pre (N, P, a), post (N, P, b).

    Terms with the same left factor share one outer product, so ΔM = diag(c) M + U Vᵀ with
    U, V of at most 3P columns.
    """
    n_pairs = pre.shape[1]
    rights: dict[str, torch.Tensor] = {}
    row = None
    square = pre.shape[-1] == post.shape[-1]
    for r, name in enumerate(terms):
        term, coef = POOL[name], theta[:, r].view(-1, 1, 1)
        if term.left == SELF and not square:
            continue  # no same-step postsynaptic activity for M_in: the term is zero there
        if term.left is not None:
            part = coef * term.right(pre)
            rights[term.left] = rights[term.left] + part if term.left in rights else part
        if term.row is not None:
            part = coef * term.row(post)
            row = part if row is None else row + part
    delta = torch.zeros_like(M) if row is None else row.mean(1).unsqueeze(2) * M
    if rights:
        left = torch.cat([pre if key == SELF else LEFT[key](post) for key in rights], 1)  # (N, K·P, b)
        right = torch.cat(list(rights.values()), 1)  # (N, K·P, a)
        delta = delta + torch.matmul(left.transpose(1, 2), right) / n_pairs
    return delta


def unpack_mlp(theta: torch.Tensor, hidden: int) -> tuple[torch.Tensor, ...]:
    """θ block (N, 5h+1) -> W1 (N, h, 3), b1 (N, h), w2 (N, h), b2 (N,)."""
    h = hidden
    w1 = theta[:, : 3 * h].reshape(-1, h, 3)
    return w1, theta[:, 3 * h: 4 * h], theta[:, 4 * h: 5 * h], theta[:, 5 * h]


def mlp_delta(theta: torch.Tensor, hidden: int, M: torch.Tensor,
              pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """ΔM_ij = mean_P w2·tanh(W1 (pre_j, post_i, M_ij) + b1) + b2, elementwise over all synapses.

    Shapes: theta (N, 5h+1), M (N, b, a), pre (N, P, a), post (N, P, b); the hidden layer is
    formed as (N, P, b, a, h) by broadcasting the three inputs' first-layer contributions.
    """
    w1, b1, w2, b2 = unpack_mlp(theta, hidden)
    per = lambda w: w.view(w.shape[0], 1, 1, 1, hidden)
    drive = (pre.unsqueeze(2).unsqueeze(4) * per(w1[..., 0]) + post.unsqueeze(3).unsqueeze(4) * per(w1[..., 1])
             + M.unsqueeze(1).unsqueeze(4) * per(w1[..., 2]) + per(b1))
    out = torch.matmul(torch.tanh(drive), w2.view(-1, 1, 1, hidden, 1)).squeeze(4)  # (N, P, b, a)
    return out.mean(1) + b2.view(-1, 1, 1)


def normalise(M: torch.Tensor, how: str) -> torch.Tensor:
    """Rows (a unit's inputs) or columns (a unit's outputs) of M (N, b, a) rescaled to unit L2 norm."""
    if how == "none":
        return M
    dim = 2 if how == "row" else 1
    return M / torch.linalg.vector_norm(M, dim=dim, keepdim=True).clamp_min(torch.finfo(M.dtype).tiny)


def apply_rule(theta: torch.Tensor, M: torch.Tensor, pre: torch.Tensor, post: torch.Tensor,
               cfg: KcapConfig, which: str) -> torch.Tensor:
    """normalise(M + ΔM): theta (N, R), M (N, b, a), pre (N, a) or (N, P, a), post (N, b) or (N, P, b).

    Out of place, so it serves ES (under no_grad) and autograd alike.
    """
    block, pre, post = theta_block(theta, cfg, which), _pairs(pre), _pairs(post)
    if cfg.rule == "pool":
        delta = pool_delta(block, tuple(cfg.terms), M, pre, post)
    else:
        delta = mlp_delta(block, cfg.mlp_hidden, M, pre, post)
    return normalise(M + delta, cfg.normalise)
