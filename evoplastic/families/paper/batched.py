"""Batched matrix-vector products and rank-k updates that stay fast on CPU.

Measured on CPU (docs/performance.md): ``bmm`` with the vector on the right, (N, o, i) @ (N, i, 1),
is ~15x slower than the same product written with the vector on the left, (N, 1, i) @ (N, i, o)ᵀ,
and a batch of one goes fastest through the 2-D kernels. A matrix shared by a group of rows
(the fixed feedback B of one task) is applied to all of them in one matrix-matrix product.
"""

from __future__ import annotations

import torch


def matvec(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """w v for w (N, o, i), v (N, i) -> (N, o)."""
    if w.shape[0] == 1:
        return torch.mv(w[0], v[0]).unsqueeze(0)
    return torch.bmm(v.unsqueeze(1), w.transpose(1, 2)).squeeze(1)


def vecmat(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """wᵀ v for v (N, o), w (T, o, i) with T dividing N -> (N, i); row n uses w[n mod T].

    T = N is the ordinary batched product; T < N shares each matrix between the N/T rows
    that use it (pairs p·T + t of one task), one matrix-matrix product per matrix.
    """
    n, t = v.shape[0], w.shape[0]
    if n == 1:
        return torch.mv(w[0].t(), v[0]).unsqueeze(0)
    if t == n:
        return torch.bmm(v.unsqueeze(1), w).squeeze(1)
    if t == 1:
        return v @ w[0]
    grouped = v.reshape(n // t, t, v.shape[1]).transpose(0, 1)  # (T, N/T, o)
    return torch.bmm(grouped, w).transpose(0, 1).reshape(n, w.shape[2])


def low_rank_step(
    w: torch.Tensor, keep: torch.Tensor | None, left: torch.Tensor, right: torch.Tensor, inplace: bool
) -> torch.Tensor:
    """keep·w - left rightᵀ for keep (N,) or None, left (N, o, k), right (N, i, k).

    In place on w when ``inplace`` (no graph); a new tensor otherwise (autograd).
    """
    if w.shape[0] == 1:
        flat = w[0]
        if inplace:
            if keep is not None:
                flat.mul_(keep[0])
            flat.addmm_(left[0], right[0].t(), alpha=-1)
            return w
        if keep is not None:
            flat = flat * keep[0]
        return torch.addmm(flat, left[0], right[0].t(), alpha=-1).unsqueeze(0)
    if inplace:
        if keep is not None:
            w.mul_(keep.view(-1, 1, 1))
        return w.baddbmm_(left, right.transpose(1, 2), alpha=-1)
    if keep is not None:
        w = w * keep.view(-1, 1, 1)
    return torch.baddbmm(w, left, right.transpose(1, 2), alpha=-1)
