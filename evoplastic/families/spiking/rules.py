"""The spiking rule: the paper's terms in trace form, e-prop's eligibility and STDP pairs, as a low-rank update.

Every term but the decay is a sum of outer products, so one layer's update after a sample is
``W ← (1 - θ_decay) W - Uᵀ V`` with U (N, k, n_post), V (N, k, n_pre): the time-resolved terms give
one row per time step, the rate terms one row each. Signs follow the paper: ΔW = -Σ_r θ_r T_r
(θ_eprop > 0 descends the loss; classical STDP has θ_ltp < 0, θ_ltd > 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TERM_FORMULAS = {
    "eprop": "1/T sum_t (L_l * psi_l^t) xbar_{l-1}^t^T",
    "post_err": "y_l delta_{l-1}^T",
    "err_err": "delta_l delta_{l-1}^T",
    "decay": "W_l",
    "oja": "y_l y_{l-1}^T - y_l y_l^T W_l",
    "stdp_ltp": "1/T sum_t s_l^t xbar_{l-1}^t^T",
    "stdp_ltd": "1/T sum_t ybar_l^{t-1} s_{l-1}^t^T",
}
"""What each term T_r multiplies (per layer ℓ, after one sample of T steps)."""
TERM_SCALES = {"eprop": 0.05, "post_err": 1e-3, "err_err": 1e-2, "decay": 1e-3, "oja": 1e-3,
               "stdp_ltp": 1e-3, "stdp_ltd": 1e-3}
"""Units of θ per ES search unit for each term (O(1) search steps change learning visibly)."""


@dataclass
class SampleTrace:
    """One layer's record of one sample, the time axis second: (N, T, n)."""

    pre_trace: torch.Tensor
    """x̄_{ℓ-1}^t = α x̄^{t-1} + s_{ℓ-1}^t (the input itself for ℓ = 1)."""
    pre_spikes: torch.Tensor
    """s_{ℓ-1}^t."""
    psi: torch.Tensor
    """ψ_ℓ^t (ones for the membrane read-out)."""
    post_spikes: torch.Tensor
    """s_ℓ^t (zeros for the membrane read-out)."""
    post_trace_before: torch.Tensor
    """ȳ_ℓ^{t-1}: the post-synaptic trace before step t's spike."""


@dataclass
class LayerSignals:
    """One layer's per-sample vectors (N, n): learning signal, gated errors and activities."""

    signal: torch.Tensor
    """L_ℓ: the learning signal reaching layer ℓ (e_L at the output)."""
    post_error: torch.Tensor
    """δ_ℓ = L_ℓ ⊙ mean_t ψ_ℓ^t."""
    pre_error: torch.Tensor
    """δ_{ℓ-1} (δ_0 = the learning signal reaching the input, passed straight through)."""
    post_rate: torch.Tensor
    """y_ℓ: spike rate, or the softmax output at the read-out."""
    pre_rate: torch.Tensor
    """y_{ℓ-1}: spike rate (the mean input for ℓ = 1)."""


def rule_factors(theta: torch.Tensor, terms: tuple[str, ...], weight: torch.Tensor, trace: SampleTrace,
                 sig: LayerSignals) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(decay (N,) or None, U (N, k, n_post), V (N, k, n_pre)) with ΔW = -decay·W - Uᵀ V.

    theta (N, len(terms)) holds the coefficients of ``terms`` in order.
    """
    th = dict(zip(terms, theta.unbind(1)))
    steps = trace.psi.shape[1]
    rows_u, rows_v = [], []

    def add(coef: torch.Tensor, u: torch.Tensor, v: torch.Tensor, per_step: bool) -> None:
        scale = coef.view(-1, 1, 1) / steps if per_step else coef.view(-1, 1, 1)
        rows_u.append(scale * (u if per_step else u.unsqueeze(1)))
        rows_v.append(v if per_step else v.unsqueeze(1))

    if "eprop" in th:
        add(th["eprop"], sig.signal.unsqueeze(1) * trace.psi, trace.pre_trace, True)
    if "stdp_ltp" in th:
        add(th["stdp_ltp"], trace.post_spikes, trace.pre_trace, True)
    if "stdp_ltd" in th:
        add(th["stdp_ltd"], trace.post_trace_before, trace.pre_spikes, True)
    if "post_err" in th:
        add(th["post_err"], sig.post_rate, sig.pre_error, False)
    if "err_err" in th:
        add(th["err_err"], sig.post_error, sig.pre_error, False)
    if "oja" in th:
        back = torch.bmm(sig.post_rate.unsqueeze(1), weight).squeeze(1)  # Wᵀ y_ℓ
        add(th["oja"], sig.post_rate, sig.pre_rate - back, False)
    if not rows_u:  # only the decay
        rows_u.append(torch.zeros_like(sig.post_rate).unsqueeze(1))
        rows_v.append(torch.zeros_like(sig.pre_rate).unsqueeze(1))
    return th.get("decay"), torch.cat(rows_u, 1), torch.cat(rows_v, 1)


def apply_update(weight: torch.Tensor, decay: torch.Tensor | None, u: torch.Tensor, v: torch.Tensor,
                 inplace: bool) -> torch.Tensor:
    """(1 - decay)·W - Uᵀ V; in place when no graph is recorded."""
    if inplace:
        if decay is not None:
            weight.mul_((1 - decay).view(-1, 1, 1))
        return weight.baddbmm_(u.transpose(1, 2), v, alpha=-1)
    if decay is not None:
        weight = weight * (1 - decay).view(-1, 1, 1)
    return torch.baddbmm(weight, u.transpose(1, 2), v, alpha=-1)


def layer_theta(theta: torch.Tensor, layer: int, n_terms: int, per_layer: bool) -> torch.Tensor:
    """Layer ``layer``'s coefficients (N, R) of θ (N, R) shared or (N, L·R) layer-major."""
    return theta[:, layer * n_terms: (layer + 1) * n_terms] if per_layer else theta


def theta_labels(terms: tuple[str, ...], n_layers: int, per_layer: bool) -> tuple[str, ...]:
    """'eprop', … or, per layer, 'l1.eprop', 'l2.eprop', … (layer-major, as θ is laid out)."""
    if not per_layer:
        return terms
    return tuple(f"l{layer + 1}.{t}" for layer in range(n_layers) for t in terms)

