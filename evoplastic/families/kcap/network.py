"""The k-cap RNN of Balwani, Gupta & Shu: x_1 = a_k(M_in x_0), x_t = a_k(M_rec x_{t-1}), latent x_{T+1}, read-out M_out.

Every tensor carries the batch axis N (one network per (θ, task) pair); inputs are (N, B, n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from evoplastic.families.kcap.config import KcapConfig

Cap = Callable[[torch.Tensor, int], torch.Tensor]
"""A k-cap: (drives (..., m), k) -> activity (..., m); kcap, or a straight-through variant."""


def kcap(x: torch.Tensor, k: int) -> torch.Tensor:
    """1 at the k largest entries along the last dim, else 0; ties go to the lowest index.

    A stable descending sort keeps equal entries in index order, so the choice is deterministic
    on CPU and CUDA (torch.topk does not promise which of equal entries it returns).
    """
    order = torch.sort(x, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.zeros_like(x).scatter(-1, order, 1.0)


@dataclass
class KcapState:
    """The three matrices of N networks: M_in (N, m, n), M_rec (N, m, m), M_out (N, n, m)."""

    M_in: torch.Tensor
    M_rec: torch.Tensor
    M_out: torch.Tensor

    @property
    def n_pairs(self) -> int:
        return self.M_in.shape[0]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> KcapState:
        """The same state with fn applied to every matrix (moving, casting, slicing)."""
        return KcapState(fn(self.M_in), fn(self.M_rec), fn(self.M_out))

    def expand(self, copies: int) -> KcapState:
        """Tiled along the batch axis: pair p·T + t gets network t (no copy when copies == 1)."""
        if copies == 1:
            return self
        return self.map(lambda m: m.repeat(copies, 1, 1))

    def replace(self, **matrices: torch.Tensor) -> KcapState:
        """A new state with the named matrices swapped in (no tensor is modified)."""
        current = {"M_in": self.M_in, "M_rec": self.M_rec, "M_out": self.M_out}
        current.update(matrices)
        return KcapState(**current)

    def is_finite(self) -> torch.Tensor:
        """(N,) bool: every entry of every matrix of the pair is finite."""
        return torch.stack([torch.isfinite(m).flatten(1).all(1) for m in (self.M_in, self.M_rec, self.M_out)]).all(0)


def input_width(cfg: KcapConfig) -> int:
    """Columns of M_in: the n features, plus the constant unit when kcap.input_bias ≠ 0."""
    return cfg.n_features + (1 if cfg.input_bias else 0)


def with_bias(x: torch.Tensor, cfg: KcapConfig) -> torch.Tensor:
    """x (..., n) with the constant unit input_bias appended (..., n + 1); x itself when input_bias = 0."""
    if not cfg.input_bias:
        return x
    return torch.cat([x, torch.full_like(x[..., :1], cfg.input_bias)], -1)


def init_state(cfg: KcapConfig, n_tasks: int, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> KcapState:
    """n_tasks fresh networks: M_in ~ N(0, 1/n), M_rec ~ N(0, 1/m) entrywise (rows of norm ≈ 1), M_out = 0.

    M_out starts at zero because the inner loop fits it in closed form at the end of the stream.
    Drawn in float64 then cast, so float32 and float64 runs start from the same numbers. The bias
    column (input_bias ≠ 0) is drawn last, N(0, 1/n), so the other weights match the bias-free network's.
    """
    n, m = cfg.n_features, cfg.n_hidden
    m_in = torch.randn(n_tasks, m, n, generator=generator, dtype=torch.float64) / math.sqrt(n)
    m_rec = torch.randn(n_tasks, m, m, generator=generator, dtype=torch.float64) / math.sqrt(m)
    m_out = torch.zeros(n_tasks, n, m, dtype=torch.float64)
    if cfg.input_bias:
        m_in = torch.cat([m_in, torch.randn(n_tasks, m, 1, generator=generator, dtype=torch.float64) / math.sqrt(n)], 2)
    return KcapState(m_in, m_rec, m_out).map(lambda t: t.to(dtype))


def activity(state: KcapState, x: torch.Tensor, cfg: KcapConfig, cap: Cap = kcap) -> list[torch.Tensor]:
    """[x_0, x_1, ..., x_{T+1}] for inputs x (N, B, n): x_0 = x with the constant unit if any (the
    pre-activity M_in learns from), the rest (N, B, m) binary k-caps."""
    x = with_bias(x, cfg)
    xs = [x, cap(torch.matmul(x, state.M_in.transpose(1, 2)), cfg.cap)]
    for _ in range(cfg.recurrent_steps):
        xs.append(cap(torch.matmul(xs[-1], state.M_rec.transpose(1, 2)), cfg.cap))
    return xs


def encode(state: KcapState, x: torch.Tensor, cfg: KcapConfig, cap: Cap = kcap) -> torch.Tensor:
    """Latent x_{T+1} (N, B, m) of inputs x (N, B, n) after T recurrent steps."""
    return activity(state, x, cfg, cap)[-1]


def decode(state: KcapState, latent: torch.Tensor) -> torch.Tensor:
    """Read-out M_out latent: (N, B, m) -> reconstructed inputs (N, B, n)."""
    return torch.matmul(latent, state.M_out.transpose(1, 2))
