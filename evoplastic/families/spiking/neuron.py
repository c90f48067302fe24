"""Leaky integrate-and-fire dynamics over batched per-member tensors, and surrogate spike functions.

A spike is the exact Heaviside step s = [v > ϑ]. Each surrogate is a smooth step F(u), u = v - ϑ,
whose derivative gives the pseudo-derivative ψ = γ F'(u) that e-prop's eligibility uses and that
the Adam path backpropagates through the step (Neftci, Mostafa & Zenke 2019). With ``smooth`` the
network emits F(u) itself instead of spikes: a differentiable network whose exact gradient is what
the surrogate gradient approximates (used by the tests' finite differences).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Fn = Callable[[torch.Tensor, float], torch.Tensor]


def _fast_sigmoid(u: torch.Tensor, k: float) -> torch.Tensor:
    return 0.5 * (1 + k * u / (1 + k * u.abs()))


def _fast_sigmoid_slope(u: torch.Tensor, k: float) -> torch.Tensor:
    return 0.5 * k / (1 + k * u.abs()) ** 2


def _sigmoid(u: torch.Tensor, k: float) -> torch.Tensor:
    return torch.sigmoid(k * u)


def _sigmoid_slope(u: torch.Tensor, k: float) -> torch.Tensor:
    s = torch.sigmoid(k * u)
    return k * s * (1 - s)


def _atan(u: torch.Tensor, k: float) -> torch.Tensor:
    return 0.5 + torch.atan(0.5 * math.pi * k * u) / math.pi


def _atan_slope(u: torch.Tensor, k: float) -> torch.Tensor:
    return 0.5 * k / (1 + (0.5 * math.pi * k * u) ** 2)


def _triangle(u: torch.Tensor, k: float) -> torch.Tensor:
    x = (k * u).clamp(-1, 1)
    return torch.where(x <= 0, 0.5 * (1 + x) ** 2, 1 - 0.5 * (1 - x) ** 2)


def _triangle_slope(u: torch.Tensor, k: float) -> torch.Tensor:
    return k * (1 - (k * u).abs()).clamp(min=0)


SURROGATES: dict[str, tuple[Fn, Fn]] = {
    "fast_sigmoid": (_fast_sigmoid, _fast_sigmoid_slope),
    "sigmoid": (_sigmoid, _sigmoid_slope),
    "atan": (_atan, _atan_slope),
    "triangle": (_triangle, _triangle_slope),
}
"""name -> (smooth step F(u; k), its derivative F'(u; k)); each F rises from 0 to 1 around u = 0."""


@dataclass(frozen=True)
class Surrogate:
    """The spike non-linearity: exact step forward, γ F' as its derivative (and as e-prop's ψ)."""

    name: str = "fast_sigmoid"
    slope: float = 5.0
    dampening: float = 0.3
    smooth: bool = False
    """Emit F(u) instead of spikes, with derivative F' (γ = 1): the smoothed network, for tests."""

    def step(self, u: torch.Tensor) -> torch.Tensor:
        return SURROGATES[self.name][0](u, self.slope)

    def pseudo_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """ψ(u) = γ F'(u): e-prop's pseudo-derivative of the spike w.r.t. the membrane potential."""
        gain = 1.0 if self.smooth else self.dampening
        return gain * SURROGATES[self.name][1](u, self.slope)

    def spike(self, u: torch.Tensor) -> torch.Tensor:
        """[u > 0] exactly; when autograd records, its derivative is ψ(u) (straight-through form H + G - G)."""
        if self.smooth:
            return self.step(u)
        hard = (u > 0).to(u.dtype)
        if not (torch.is_grad_enabled() and u.requires_grad):
            return hard
        soft = self.dampening * self.step(u)
        return hard + (soft - soft.detach())  # value exactly hard: x - x is 0 in floating point


@dataclass(frozen=True)
class LIF:
    """Constants of a layer of leaky integrate-and-fire neurons (one step of Δt per update)."""

    beta: float = 0.8
    threshold: float = 1.0
    reset: str = "subtract"
    refractory: int = 0


@dataclass
class LayerState:
    """One layer's state, (N, B, n): membrane v, last spikes s, refractory steps left r, post trace ȳ."""

    v: torch.Tensor
    s: torch.Tensor
    r: torch.Tensor
    trace: torch.Tensor

    @classmethod
    def rest(cls, shape: tuple[int, ...], like: torch.Tensor) -> LayerState:
        zeros = like.new_zeros(shape)
        return cls(zeros, zeros, zeros, zeros)


def lif_step(state: LayerState, current: torch.Tensor, lif: LIF, surrogate: Surrogate,
             spiking: bool = True) -> tuple[LayerState, torch.Tensor]:
    """Advance one step with input current I: returns the new state and ψ at the new potential.

    v_t = α v_{t-1} + I_t - ϑ s_{t-1} (subtract) or α v_{t-1} (1 - s_{t-1}) + I_t (zero);
    s_t = [v_t > ϑ] unless refractory; ψ_t = γ F'(v_t - ϑ), zero while refractory; ȳ_t = α ȳ_{t-1} + s_t.
    A non-spiking layer (the membrane read-out) only integrates: s = 0, ψ = 1.
    """
    if lif.reset == "subtract":
        v = lif.beta * state.v + current - lif.threshold * state.s
    else:
        v = lif.beta * state.v * (1 - state.s) + current
    if not spiking:
        zeros = torch.zeros_like(v)
        return LayerState(v, zeros, zeros, zeros), torch.ones_like(v)
    u = v - lif.threshold
    psi = surrogate.pseudo_derivative(u)
    s = surrogate.spike(u)
    r = state.r
    if lif.refractory:
        free = (state.r == 0).to(v.dtype)
        s, psi = s * free, psi * free
        r = (state.r - 1).clamp(min=0) + lif.refractory * s.detach()
    trace = lif.beta * state.trace + s
    return LayerState(v, s, r, trace), psi
