"""A spiking network's per-episode state: forward weights W_ℓ and feedback B_ℓ (fa) or D_ℓ (dfa).

Redrawn every episode from the episode's generator, as the paper redraws W and B; no biases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from evoplastic.families.spiking.config import SpikingConfig


def xavier(fan_out: int, fan_in: int, n: int, generator: torch.Generator, gain: float,
           dtype: torch.dtype) -> torch.Tensor:
    """n Xavier-uniform matrices (n, fan_out, fan_in) times gain, drawn in float64 then cast."""
    bound = gain * (6.0 / (fan_in + fan_out)) ** 0.5
    u = torch.rand(n, fan_out, fan_in, generator=generator, dtype=torch.float64)
    return ((2 * u - 1) * bound).to(dtype)


@dataclass
class SpikingInit:
    """Initial W_ℓ (T, n_ℓ, n_{ℓ-1}) of T episodes and their fixed feedback (None for bp).

    fa: B_ℓ shaped like W_ℓ carries δ_ℓ to layer ℓ-1; dfa: D_ℓ (T, n_L, n_{ℓ-1}) carries δ_L.
    """

    weights: list[torch.Tensor]
    feedback: list[torch.Tensor] | None
    direct: bool = False

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> SpikingInit:
        return SpikingInit([fn(w) for w in self.weights],
                           None if self.feedback is None else [fn(b) for b in self.feedback], self.direct)


def init_network(cfg: SpikingConfig, n: int, generator: torch.Generator, dtype: torch.dtype,
                 feedback: str | None = None) -> SpikingInit:
    """Fresh W (and B or D) for n episodes; ``feedback`` overrides cfg.feedback (the baselines' modes).

    W is always drawn first, so an fa, bp and dfa network of one episode share their initial W.
    """
    mode = feedback or cfg.feedback
    dims = cfg.dims
    weights = [xavier(o, i, n, generator, cfg.weight_gain, dtype) for i, o in zip(dims[:-1], dims[1:])]
    if mode == "bp":
        return SpikingInit(weights, None)
    if mode == "dfa":
        return SpikingInit(weights, [xavier(dims[-1], i, n, generator, 1.0, dtype) for i in dims[:-1]], True)
    return SpikingInit(weights, [xavier(o, i, n, generator, 1.0, dtype) for i, o in zip(dims[:-1], dims[1:])])
