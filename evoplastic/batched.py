"""Batched matrix-vector products and rank-k updates that stay fast for a batch of one.

On CPU, ``bmm`` with a gemv shape is many times slower than ``mv`` on the same data, so
a batch of one network (the Adam loop, member chunks of one) goes through the 2-D kernels.
"""

from __future__ import annotations

import torch


def matvec(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """w v for w (N, o, i), v (N, i) -> (N, o)."""
    if w.shape[0] == 1:
        return torch.mv(w[0], v[0]).unsqueeze(0)
    return torch.matmul(w, v.unsqueeze(2)).squeeze(2)


def vecmat(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """wᵀ v for v (N, o), w (N, o, i) -> (N, i)."""
    if w.shape[0] == 1:
        return torch.mv(w[0].t(), v[0]).unsqueeze(0)
    return torch.matmul(v.unsqueeze(1), w).squeeze(1)


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
