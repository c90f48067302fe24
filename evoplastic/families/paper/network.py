"""Activations with the derivatives the error pathway needs, and Xavier initialisation.

Each activation gives σ(z), σ'(z) for hidden errors, and σ' written through the
activation value, used for the synthetic input error e_0 = (B_1ᵀ e_1) ⊙ σ'(x), where the
pixels x are treated as if they were activations (paper: 1 - exp(-β x) for softplus).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from evoplastic.families.paper.config import FEEDBACK_MODES, NetworkConfig  # noqa: F401 — re-exported
from evoplastic.plugins import ACTIVATIONS as PLUGIN_ACTIVATIONS
from evoplastic.plugins import ActivationPlugin

Fn = Callable[[torch.Tensor], torch.Tensor]



@dataclass(frozen=True)
class Activation:
    """A hidden nonlinearity and the derivatives used in the error pathway.

    Equal (and hashed) by name and parameters, not by its functions: two make_activation calls
    for one config give equal keys, so compiled-step caches keyed by it are shared, not grown.
    """

    name: str
    forward: Fn = field(compare=False)
    derivative: Fn = field(compare=False)
    """σ'(z) used in e_{ℓ-1} = (B_ℓᵀ e_ℓ) ⊙ σ'(z_{ℓ-1}); a surrogate for step functions."""
    derivative_from_output: Fn = field(compare=False)
    """σ' expressed through y = σ(z); applied to the pixels for e_0."""
    twice_differentiable: bool
    """Whether the Adam outer loop can differentiate through the error pathway."""
    params: tuple[float, ...] = ()
    """The parameters the functions close over (β, slope, surrogate width), part of the identity."""
    noise: NoiseSource | None = field(default=None, compare=False)
    """Where a stochastic unit draws from (set per episode by seeded_noise); None for deterministic units."""


@dataclass
class NoiseSource:
    """The torch.Generator a stochastic unit draws from: the episode's, set only while it runs."""

    generator: torch.Generator | None = None

    def draw(self) -> torch.Generator:
        if self.generator is None:
            raise RuntimeError("a stochastic activation ran outside an episode that seeds it; pass run_episode a "
                               "generator (the paper family's Problem does)")
        return self.generator


@contextmanager
def seeded_noise(activation: Activation, generator: torch.Generator | None) -> Iterator[None]:
    """Let a stochastic activation draw from generator for the duration (nothing for deterministic ones)."""
    if activation.noise is None:
        yield
        return
    if generator is None:
        raise ValueError(f"activation {activation.name!r} is stochastic: the episode needs a seeded generator")
    previous, activation.noise.generator = activation.noise.generator, generator
    try:
        yield
    finally:
        activation.noise.generator = previous


def _softplus(beta: float) -> Activation:
    return Activation(
        "softplus",
        lambda z: F.softplus(z, beta=beta),
        lambda z: torch.sigmoid(beta * z),
        lambda y: 1.0 - torch.exp(-beta * y),
        True,
        (beta,),
    )


def _relu(_: NetworkConfig) -> Activation:
    return Activation("relu", torch.relu, lambda z: (z > 0).to(z.dtype), lambda y: (y > 0).to(y.dtype), False)


def _leaky_relu(cfg: NetworkConfig) -> Activation:
    s = cfg.negative_slope

    def slope(v: torch.Tensor) -> torch.Tensor:
        return torch.where(v > 0, torch.ones_like(v), torch.full_like(v, s))

    return Activation("leaky_relu", lambda z: F.leaky_relu(z, s), slope, slope, False, (s,))


def _tanh(_: NetworkConfig) -> Activation:
    return Activation("tanh", torch.tanh, lambda z: 1 - torch.tanh(z) ** 2, lambda y: 1 - y**2, True)


def _sigmoid(_: NetworkConfig) -> Activation:
    def deriv(z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(z)
        return s * (1 - s)

    return Activation("sigmoid", torch.sigmoid, deriv, lambda y: y * (1 - y), True)


def _hardtanh(_: NetworkConfig) -> Activation:
    def inside(v: torch.Tensor) -> torch.Tensor:
        return (v.abs() < 1).to(v.dtype)

    return Activation("hardtanh", F.hardtanh, inside, inside, False)


def _heaviside(cfg: NetworkConfig) -> Activation:
    """Step σ(z) = [z > 0]; σ' is the fast-sigmoid surrogate 1/(1+|z|/w)^2; e_0 uses σ' = 1."""
    w = cfg.surrogate_width
    return Activation(
        "heaviside",
        lambda z: (z > 0).to(z.dtype),
        lambda z: 1.0 / (1.0 + z.abs() / w) ** 2,
        torch.ones_like,  # the step cannot be inverted: pass the input error straight through
        False,
        (w,),
    )


ACTIVATIONS: dict[str, Callable[[NetworkConfig], Activation]] = {
    "softplus": lambda cfg: _softplus(cfg.beta),
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "hardtanh": _hardtanh,
    "heaviside": _heaviside,
}


def make_activation(cfg: NetworkConfig) -> Activation:
    """The configured hidden activation: a built-in, or a registered or 'module:attr' plug-in."""
    if cfg.activation in ACTIVATIONS:
        return ACTIVATIONS[cfg.activation](cfg)
    if ":" not in cfg.activation and cfg.activation not in PLUGIN_ACTIVATIONS.names():
        raise ValueError(f"unknown activation {cfg.activation!r}; choose one of: "
                         f"{', '.join([*ACTIVATIONS, *PLUGIN_ACTIVATIONS.names()])}")
    return _plugin_activation(PLUGIN_ACTIVATIONS.get(cfg.activation))


def _plugin_activation(plugin: ActivationPlugin) -> Activation:
    """A registered unit: σ' through its value when it gives one, else errors pass straight through (σ' = 1)."""
    noise = NoiseSource() if plugin.stochastic else None
    value = (lambda z: plugin.value(z, noise.draw())) if noise is not None else plugin.value
    slope = plugin.derivative_from_output
    if slope is None:
        return Activation(plugin.name, value, torch.ones_like, torch.ones_like, False, noise=noise)
    return Activation(plugin.name, value, lambda z: slope(value(z)), slope, True, noise=noise)


def n_weights(dims: tuple[int, ...]) -> int:
    """Plastic weights of one network (the W_ℓ of every layer)."""
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def xavier_uniform(
    dims: tuple[int, ...], n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """n independent Xavier-uniform weight stacks: layer ℓ has shape (n, dims[ℓ], dims[ℓ-1])."""
    layers = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        u = torch.rand(n, fan_out, fan_in, generator=generator, dtype=torch.float64)
        layers.append(((2 * u - 1) * bound).to(dtype))
    return layers


@dataclass
class NetworkState:
    """Initial forward weights and feedback weights of T episodes (feedback None for bp)."""

    weights: list[torch.Tensor]
    feedback: list[torch.Tensor] | None
    direct: bool = False
    """dfa: feedback[ℓ] is D_ℓ (T, n_L, n_{ℓ-1}) and carries the output error e_L to layer ℓ-1."""

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> NetworkState:
        """The same state with fn applied to every W and B (moving, slicing), the mode kept."""
        return NetworkState([fn(w) for w in self.weights],
                            None if self.feedback is None else [fn(b) for b in self.feedback], self.direct)


def direct_feedback(
    dims: tuple[int, ...], n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """n Xavier-uniform DFA stacks: D_ℓ has shape (n, dims[-1], dims[ℓ-1]), output to layer ℓ-1."""
    layers = []
    for fan_in in dims[:-1]:
        bound = (6.0 / (fan_in + dims[-1])) ** 0.5
        u = torch.rand(n, dims[-1], fan_in, generator=generator, dtype=torch.float64)
        layers.append(((2 * u - 1) * bound).to(dtype))
    return layers


def init_network(cfg: NetworkConfig, n: int, generator: torch.Generator, dtype: torch.dtype) -> NetworkState:
    """Fresh W (and, for fa/dfa, independent B or D) per episode, as the paper re-draws them."""
    weights = xavier_uniform(cfg.dims, n, generator, dtype)
    if cfg.feedback == "dfa":
        return NetworkState(weights, direct_feedback(cfg.dims, n, generator, dtype), direct=True)
    feedback = xavier_uniform(cfg.dims, n, generator, dtype) if cfg.feedback == "fa" else None
    return NetworkState(weights, feedback)
