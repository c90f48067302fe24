"""The unsupervised inner loop: N = P·T k-cap RNNs learn from their task's stream, one sample at a time.

Per sample, one forward pass gives x_0..x_{T+1}; M_in learns from the pair (x_0, x_1) and M_rec
from the T pairs (x_t, x_{t+1}), t = 1..T, both with the weights before the sample. After the
stream the read-out M_out is fit in closed form (ridge least squares from the latents of the
stream to its inputs). One out-of-place code path: no graph under no_grad (ES), the full
meta-gradient under autograd (no in-place edits, no detach).
"""

from __future__ import annotations

import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.network import KcapState, activity, encode, input_width
from evoplastic.families.kcap.rules import apply_rule, theta_size


def tile(x: torch.Tensor, copies: int) -> torch.Tensor:
    """Repeat along the batch axis: pair p·T + t gets row t (no copy when copies == 1)."""
    return x if copies == 1 else x.repeat(copies, *([1] * (x.dim() - 1)))


def fit_linear(features: torch.Tensor, targets: torch.Tensor, ridge: float,
               bias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge least squares per pair: argmin_W (1/B)‖F W + c - Y‖² + λ‖W‖² (c unpenalised, 0 unless bias).

    features (N, B, F), targets (N, B, O) -> W (N, F, O), c (N, 1, O). Solves the F×F normal
    equations, or the B×B dual ones when B < F (the same minimiser).
    """
    f_mean = features.mean(1, keepdim=True) if bias else features.new_zeros(())
    y_mean = targets.mean(1, keepdim=True) if bias else targets.new_zeros(())
    f, y = features - f_mean, targets - y_mean
    n, width = f.shape[1], f.shape[2]
    if n < width:  # W = Fᵀ (F Fᵀ / B + λ I)^-1 Y / B
        gram = torch.matmul(f, f.transpose(1, 2)) / n + ridge * torch.eye(n, dtype=f.dtype, device=f.device)
        weight = torch.matmul(f.transpose(1, 2), torch.linalg.solve(gram, y)) / n
    else:  # W = (Fᵀ F / B + λ I)^-1 Fᵀ Y / B
        gram = torch.matmul(f.transpose(1, 2), f) / n + ridge * torch.eye(width, dtype=f.dtype, device=f.device)
        weight = torch.linalg.solve(gram, torch.matmul(f.transpose(1, 2), y) / n)
    offset = y_mean - torch.matmul(f_mean, weight) if bias else torch.zeros_like(y[:, :1])
    return weight, offset


def with_readout(state: KcapState, unlabelled: torch.Tensor, cfg: KcapConfig) -> KcapState:
    """The state with M_out (N, n, m) the ridge fit (no bias) from latents of unlabelled (N, S, n) to them."""
    weight, _ = fit_linear(encode(state, unlabelled, cfg), unlabelled, cfg.readout_ridge)
    return state.replace(M_out=weight.transpose(1, 2))


def learn_step(theta: torch.Tensor, state: KcapState, x: torch.Tensor, cfg: KcapConfig) -> KcapState:
    """Present one sample x (N, n) per pair and update the plastic matrices by the rule θ (N, R)."""
    xs = [a.squeeze(1) for a in activity(state, x.unsqueeze(1), cfg)]
    updated = {}
    if "M_in" in cfg.plastic:
        updated["M_in"] = apply_rule(theta, state.M_in, xs[0], xs[1], cfg, "M_in")
    if "M_rec" in cfg.plastic and cfg.recurrent_steps > 0:
        pre, post = torch.stack(xs[1:-1], 1), torch.stack(xs[2:], 1)  # (N, T, m) pairs (x_t, x_{t+1})
        updated["M_rec"] = apply_rule(theta, state.M_rec, pre, post, cfg, "M_rec")
    return state.replace(**updated)


def check_shapes(theta: torch.Tensor, unlabelled: torch.Tensor, init: KcapState, cfg: KcapConfig) -> int:
    """Pairs per task (N / T), or a ValueError saying which shape is off."""
    r = theta_size(cfg)
    if theta.dim() != 2 or theta.shape[1] != r:
        raise ValueError(f"theta must be (N, {r}) for this kcap rule, got {tuple(theta.shape)}")
    n_tasks = unlabelled.shape[0]
    if init.n_pairs != n_tasks:
        raise ValueError(f"init holds {init.n_pairs} networks but there are {n_tasks} tasks")
    if theta.shape[0] % n_tasks:
        raise ValueError(f"N={theta.shape[0]} pairs must be a multiple of the {n_tasks} tasks")
    if unlabelled.shape[2] != cfg.n_features or init.M_in.shape[2] != input_width(cfg):
        raise ValueError(f"inputs have {unlabelled.shape[2]} features and M_in takes {init.M_in.shape[2]} but "
                         f"kcap.n_features={cfg.n_features}, kcap.input_bias={cfg.input_bias}; sample tasks and "
                         f"init with the same config")
    return theta.shape[0] // n_tasks


def learn(theta: torch.Tensor, unlabelled: torch.Tensor, init: KcapState, cfg: KcapConfig) -> KcapState:
    """Adapted networks of N = P·T pairs after streaming their task's unlabelled samples once.

    theta (N, R); unlabelled (T, S, n) and init (T networks) are per task, pair n uses task
    n mod T (θ repeated with repeat_interleave, tasks tiled). Returns the N states with M_out fit.
    """
    copies = check_shapes(theta, unlabelled, init, cfg)
    state = init.expand(copies)
    for step in range(unlabelled.shape[1]):
        state = learn_step(theta, state, tile(unlabelled[:, step], copies), cfg)
    return with_readout(state, tile(unlabelled, copies), cfg)
