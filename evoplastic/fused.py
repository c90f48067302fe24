"""The compiled no-grad inner loop: one fused graph per online step, for the members of one task.

Same episode as the plain loop of ``evoplastic.inner`` (tests/test_fused.py checks it), arranged
for speed (docs/performance.md):

- the update of step t-1 stays pending as (keep, L, R), W_t = keep·W_{t-1} - Lᵀ R, and is folded
  into step t's products, W_t v = keep·(W_{t-1} v) - Lᵀ(R v): the products read W_{t-1}, then
  W_t is written over it once, decay T3 included (no fresh buffer, no separate decay pass);
- the pairs of one task share its fixed feedback B, so the error pass is one (c, o) @ (o, i)
  product per layer instead of c matrix-vector products;
- torch.compile fuses each layer's products, nonlinearities and factor arithmetic into a few
  loops; c members per call (COMPILED_CHUNK on CPU) keep their weights in cache.

Compiled once per (rule terms, activation) and input shapes; if compilation or a compiled
call fails, ``learn`` warns once and returns None so that the caller runs the plain loop.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

from evoplastic.batched import vecmat
from evoplastic.network import Activation, NetworkState
from evoplastic.rules import low_rank_update, needs_backprojection, update_rank

COMPILED_CHUNK = 8
"""Members of one task per compiled call on CPU: their weights (0.7 MiB each on the paper
network) stay in the last-level cache, which 16 or 32 members overflow (docs/performance.md)."""

_COMPILED: dict[tuple, Callable] = {}
"""Compiled step per (terms, activation); torch.compile specialises it on the input shapes."""
_FAILED: set[tuple] = set()
"""Keys whose compilation failed once: they use the plain loop without trying again."""


def pending_times(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                  v: torch.Tensor) -> torch.Tensor:
    """W_t v for W_t = keep·w - leftᵀ right: w (c, o, i), keep (c,), left (c, k, o), right (c, k, i), v (c, i)."""
    return keep[:, None] * (w * v[:, None, :]).sum(2) - (left * (right * v[:, None, :]).sum(2, keepdim=True)).sum(1)


def pending_times_transposed(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                             v: torch.Tensor) -> torch.Tensor:
    """W_tᵀ v for v (c, o) -> (c, i), W_t as in pending_times."""
    return keep[:, None] * (w * v[:, :, None]).sum(1) - (right * (left * v[:, None, :]).sum(2, keepdim=True)).sum(1)


def pending_weights(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """W_t = keep·w - Σ_k left_k ⊗ right_k, written as k outer products so that it fuses into one loop."""
    out = keep[:, None, None] * w
    for k in range(left.shape[1]):
        out = out - left[:, k, :, None] * right[:, k, None, :]
    return out


def fused_step(
    weights: list[torch.Tensor],
    feedback: list[torch.Tensor] | None,
    left: list[torch.Tensor],
    right: list[torch.Tensor],
    keep: torch.Tensor,
    theta_full: torch.Tensor,
    x: torch.Tensor,
    target: torch.Tensor,
    slope: torch.Tensor,
    terms: tuple[int, ...],
    activation: Activation,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One online step of c pairs on one task; weights hold W_{t-1} and become W_t in place.

    weights[ℓ] (c, o, i); feedback[ℓ] (1, o, i) shared, or None for bp (B = W_t); left[ℓ]
    (c, k, o), right[ℓ] (c, k, i) and keep (c,) the pending update of the previous step;
    theta_full (c, 10); x, slope (1, D) and target (1, n_out) this step's sample.
    Returns this step's factors (left, right), pending for the next step.
    """
    n, last, uses_back = weights[0].shape[0], len(weights) - 1, needs_backprojection(terms)
    ys, zs, backs = [x.expand(n, -1)], [], []
    for layer, w in enumerate(weights):
        z = pending_times(w, keep, left[layer], right[layer], ys[-1])
        y = torch.softmax(z, 1) if layer == last else activation.forward(z)
        backs.append(pending_times_transposed(w, keep, left[layer], right[layer], y) if uses_back else None)
        zs.append(z)
        ys.append(y)
    errors = [ys[-1] - target.expand(n, -1)]
    for layer in range(last, -1, -1):
        if feedback is None:
            back = pending_times_transposed(weights[layer], keep, left[layer], right[layer], errors[0])
        else:
            back = vecmat(errors[0], feedback[layer])
        slopes = activation.derivative(zs[layer - 1]) if layer > 0 else slope.expand(n, -1)
        errors.insert(0, back * slopes)
    new_left, new_right = [], []
    for layer, w in enumerate(weights):
        _, u, v = low_rank_update(theta_full, terms, w, pre=ys[layer], post=ys[layer + 1], pre_error=errors[layer],
                                  post_error=errors[layer + 1], post_drive=zs[layer], back=backs[layer],
                                  column_dim=1)
        new_left.append(u)
        new_right.append(v)
    for layer, w in enumerate(weights):  # after every read of W_{t-1}
        w.copy_(pending_weights(w, keep, left[layer], right[layer]))
    return new_left, new_right


def _compiled_step(terms: tuple[int, ...], activation: Activation) -> Callable:
    """fused_step for this rule and activation under torch.compile (compiled at its first call)."""
    key = (terms, activation)
    if key not in _COMPILED:
        def step(*args: torch.Tensor | list[torch.Tensor] | None) -> tuple[list, list]:
            return fused_step(*args, terms=terms, activation=activation)  # a closure guards faster than a partial

        _COMPILED[key] = torch.compile(step, fullgraph=True, dynamic=False)
    return _COMPILED[key]


def _recompile_limit() -> dict:
    """Dynamo's per-function recompile budget (8), raised: each (terms, activation, shapes) is one entry."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return {name: max(getattr(config, name), 256)}


def default_chunk(device: torch.device) -> int:
    """Pairs per compiled call: COMPILED_CHUNK on CPU; on a GPU all pairs of a task (0), for parallelism."""
    return COMPILED_CHUNK if device.type == "cpu" else 0


def _learn_chunk(step: Callable, theta_full: torch.Tensor, keep: torch.Tensor, init_weights: list[torch.Tensor],
                 feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor,
                 slope: torch.Tensor, rank: int) -> list[torch.Tensor]:
    """Adapted weights (c, o, i) of c pairs on one task, from that task's W (o, i) and B (1, o, i)."""
    c = theta_full.shape[0]
    weights = [w.expand(c, -1, -1).clone() for w in init_weights]
    left = [w.new_zeros(c, rank, w.shape[1]) for w in weights]
    right = [w.new_zeros(c, rank, w.shape[2]) for w in weights]
    no_decay = torch.ones_like(keep)
    for s in range(x.shape[0]):
        left, right = step(weights, feedback, left, right, keep if s else no_decay, theta_full,
                           x[s: s + 1], target[s: s + 1], slope[s: s + 1])
    final_keep = keep if x.shape[0] else no_decay
    for w, u, v in zip(weights, left, right):
        w.mul_(final_keep.view(-1, 1, 1)).baddbmm_(u.transpose(1, 2), v, alpha=-1)
    return weights


def _learn_chunks(step: Callable, theta_full: torch.Tensor, rank: int, keep: torch.Tensor, train_x: torch.Tensor,
                  targets: torch.Tensor, input_slopes: torch.Tensor, init: NetworkState,
                  chunk: int) -> list[torch.Tensor]:
    """Every pair's adapted weights (N, o, i), learning task by task in chunks of its pairs."""
    n, n_tasks = theta_full.shape[0], train_x.shape[0]
    out = [w.new_empty(n, *w.shape[1:]) for w in init.weights]
    for task in range(n_tasks):
        pairs = torch.arange(task, n, n_tasks, device=theta_full.device)
        feedback = None if init.feedback is None else [b[task: task + 1] for b in init.feedback]
        for start in range(0, len(pairs), chunk):
            idx = pairs[start: start + chunk]
            adapted = _learn_chunk(step, theta_full[idx], keep[idx], [w[task] for w in init.weights], feedback,
                                   train_x[task], targets[task], input_slopes[task], rank)
            for o, w in zip(out, adapted):
                o[idx] = w
    return out


def learn(
    theta_full: torch.Tensor,
    terms: tuple[int, ...],
    train_x: torch.Tensor,
    targets: torch.Tensor,
    input_slopes: torch.Tensor,
    init: NetworkState,
    activation: Activation,
    chunk: int | None = None,
    eager: bool = False,
) -> list[torch.Tensor] | None:
    """Weights (N, o, i) of N = P·T pairs after the online phase, or None if compilation is unavailable.

    theta_full (N, 10): pair n learns task n mod T; train_x, input_slopes (T, S, D), targets
    (T, S, n_out). Runs under no_grad (no graph is wanted here). chunk: pairs of one task per
    compiled call, None for default_chunk, 0 for all of them. eager: run fused_step uncompiled
    (tests and debugging; without a compiler the plain loop is the faster one).
    """
    key = (terms, activation)
    copies = theta_full.shape[0] // train_x.shape[0]
    chunk = default_chunk(theta_full.device) if chunk is None else chunk
    chunk = min(chunk or copies, copies)
    keep = 1 - theta_full[:, 3] if 3 in terms else torch.ones_like(theta_full[:, 0])
    args = (theta_full, update_rank(terms), keep, train_x, targets, input_slopes, init, chunk)
    if eager:
        with torch.no_grad():
            return _learn_chunks(functools.partial(fused_step, terms=terms, activation=activation), *args)
    if key in _FAILED:
        return None
    try:
        with torch.no_grad(), torch._dynamo.config.patch(**_recompile_limit()):
            return _learn_chunks(_compiled_step(terms, activation), *args)
    except Exception as err:  # noqa: BLE001 — whatever the compiler raises, the plain loop does the work
        _FAILED.add(key)
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        warnings.warn(f"compiled inner loop unavailable for terms {list(terms)} with {activation.name} ({reason}); "
                      "using the eager loop", RuntimeWarning, stacklevel=3)
        return None
