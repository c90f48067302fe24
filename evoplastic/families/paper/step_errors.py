"""The error pass and the rule's low-rank factors after one compiled step's forward pass.

Shared by the compiled steps (Inductor's fused_step, the Triton row pass, the C++ CPU pass), which differ
only in how they read and write W; kept apart from them so that none imports another.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from evoplastic.families.paper.batched import vecmat
from evoplastic.families.paper.network import Activation
from evoplastic.families.paper.rules import low_rank_update, of_layer


def errors_and_factors(
    weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, ys: list[torch.Tensor], zs: list[torch.Tensor],
    backs: list[torch.Tensor | None], theta_full: torch.Tensor, target: torch.Tensor, slope: torch.Tensor,
    terms: tuple[int, ...], activation: Activation, direct: bool, bp_back: Callable,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The error pass and the rule's factors (left, right) per layer, after a step's forward pass.

    Shared by the Inductor step (fused_step) and the Triton step; only how bp's B_tᵀ e is read
    from W differs, so it comes as bp_back(layer, e) (used when feedback is None).
    """
    n, last = ys[0].shape[0], len(weights) - 1
    errors = [ys[-1] - target.expand(n, -1)]
    for layer in range(last, -1, -1):
        if feedback is None:
            back = bp_back(layer, errors[0])
        else:
            back = vecmat(errors[-1] if direct else errors[0], feedback[layer])
        slopes = activation.derivative(zs[layer - 1]) if layer > 0 else slope.expand(n, -1)
        errors.insert(0, back * slopes)
    new_left, new_right = [], []
    for layer, w in enumerate(weights):
        theta = of_layer(theta_full, layer, theta_full.dim() == 3)
        _, u, v = low_rank_update(theta, terms, w, pre=ys[layer], post=ys[layer + 1], pre_error=errors[layer],
                                  post_error=errors[layer + 1], post_drive=zs[layer], back=backs[layer],
                                  column_dim=1)
        new_left.append(u)
        new_right.append(v)
    return new_left, new_right
