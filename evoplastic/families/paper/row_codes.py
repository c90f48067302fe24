"""What the single-pass row kernels (Triton on GPU, C++ on CPU) compute per row: the row-weight codes and
the closed forms of the activations, with the check that a network's activation matches one of them."""

from __future__ import annotations

import torch

from evoplastic.families.paper.network import Activation

ACT_NONE, ACT_GIVEN, ACT_SOFTMAX = 0, 1, 2
"""Row weights a for u = Σ_r a_r row_r: none (no u), read from memory, softmax of z."""
ACT_CODES = {"softplus": 3, "relu": 4, "leaky_relu": 5, "tanh": 6, "sigmoid": 7, "hardtanh": 8, "heaviside": 9}
"""σ(z_r) computed in the kernel, per network.ACTIVATIONS name."""
SOFTPLUS_THRESHOLD = 20.0
"""βz above which softplus returns z (torch.nn.functional.softplus's default)."""


def forward_row_weights(layer: int, last: int, uses_back: bool, kernel_act: tuple[int, float]) -> tuple[int, float]:
    """(ACT code, parameter) of a layer's forward pass: when the rule needs u = W_tᵀ y, σ(z) computed in the
    pass (the output layer's softmax), else no row weights."""
    if not uses_back:
        return ACT_NONE, 0.0
    return (ACT_SOFTMAX, 0.0) if layer == last else kernel_act

def kernel_activation(activation: Activation, step: str) -> tuple[int, float]:
    """(ACT code, parameter) of a network.ACTIVATIONS activation; ValueError for one whose forward
    differs from the kernel's closed form (checked in float64 on [-4, 4]). step names the kernel in errors."""
    if activation.name not in ACT_CODES:
        raise ValueError(f"the {step} has no kernel form of activation {activation.name!r}")
    code = ACT_CODES[activation.name]
    param = float(activation.params[0]) if activation.name in ("softplus", "leaky_relu") else 0.0  # β, slope
    probe = torch.linspace(-4, 4, 161, dtype=torch.float64)
    want, got = activation.forward(probe), reference_forward(code, param, probe)
    if not torch.allclose(got, want, rtol=1e-9, atol=1e-12):
        raise ValueError(f"activation {activation.name!r} differs from the {step}'s closed form "
                         f"(parameter {param:g}) by up to {float((got - want).abs().max()):.3g}")
    return code, param


def reference_forward(code: int, param: float, z: torch.Tensor) -> torch.Tensor:
    """The kernels' σ for an ACT code, written in torch (what kernel_activation checks)."""
    if code == 3:
        return torch.where(param * z > SOFTPLUS_THRESHOLD, z, torch.nn.functional.softplus(param * z) / param)
    forms = {4: torch.relu, 5: lambda v: torch.where(v > 0, v, v * param), 6: torch.tanh, 7: torch.sigmoid,
             8: lambda v: v.clamp(-1, 1), 9: lambda v: (v > 0).to(v.dtype)}
    return forms[code](z)
