"""The inner loop (paper Alg. 1): N (θ, task) pairs learn online at once, then are scored.

One function serves both outer loops. It never sets the grad mode: when θ requires grad
under autograd, weights are updated out of place so the meta-gradient flows through the
whole episode; otherwise they are updated in place, keeping no graph (ES), or, with
``compiled=True``, by the fused torch.compile'd step of evoplastic.families.paper.fused (same result).
Shapes: N pairs, layer ℓ weights (N, n_ℓ, n_{ℓ-1}); every tensor has the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from evoplastic.families.paper import fused
from evoplastic.families.paper.batched import low_rank_step, matvec, vecmat
from evoplastic.families.paper.network import Activation, NetworkState, seeded_noise
from evoplastic.families.paper.rules import feedback_update, low_rank_update, of_layer, split_theta
from evoplastic.families.paper.space import RuleSpace, as_space, plugin_term
from evoplastic.families.paper.tasks import TaskBatch
from evoplastic.plugins import TermContext


@dataclass
class EpisodeResult:
    """Per-pair query cross-entropy and accuracy (N,), the adapted weights, and the adapted feedback
    (per pair) when it was plastic (else None: the initial B still holds)."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    weights: list[torch.Tensor]
    feedback: list[torch.Tensor] | None = None


@dataclass
class StepTrace:
    """One online step's forward/backward quantities, per layer (index 0 is the input)."""

    activations: list[torch.Tensor]
    drives: list[torch.Tensor]
    errors: list[torch.Tensor]


def tile(x: torch.Tensor, copies: int) -> torch.Tensor:
    """Repeat along the batch axis (member n gets row n mod T); no copy when copies == 1."""
    return x if copies == 1 else x.repeat(copies, *([1] * (x.dim() - 1)))


def forward(weights: list[torch.Tensor], x: torch.Tensor, activation: Activation) -> tuple[list, list]:
    """Activations y_0..y_L (y_L = softmax) and drives z_1..z_L for inputs x (N, D)."""
    ys, zs = [x], []
    for layer, w in enumerate(weights):
        z = matvec(w, ys[-1])
        zs.append(z)
        last = layer == len(weights) - 1
        ys.append(torch.softmax(z, 1) if last else activation.forward(z))
    return ys, zs


def backward_errors(
    feedback: list[torch.Tensor],
    zs: list[torch.Tensor],
    output: torch.Tensor,
    target: torch.Tensor,
    activation: Activation,
    input_derivative: torch.Tensor,
    direct: bool = False,
) -> list[torch.Tensor]:
    """Errors e_0..e_L: e_L = softmax - onehot, e_{ℓ-1} = (B_ℓᵀ e_ℓ) ⊙ σ'(z_{ℓ-1}).

    feedback[ℓ] is (N, o, i), or (T, o, i) shared by the pairs n of task n mod T; input_derivative
    is σ' written through the pixels, for the synthetic error e_0. direct (dfa): feedback[ℓ] is
    D_ℓ (·, n_L, n_{ℓ-1}) and e_{ℓ-1} = (D_ℓᵀ e_L) ⊙ σ'(z_{ℓ-1}).
    """
    errors = [output - target]
    for layer in range(len(feedback) - 1, -1, -1):
        back = vecmat(errors[-1] if direct else errors[0], feedback[layer])
        slope = activation.derivative(zs[layer - 1]) if layer > 0 else input_derivative
        errors.insert(0, back * slope)
    return errors


def online_step(
    weights: list[torch.Tensor],
    feedback: list[torch.Tensor] | None,
    x: torch.Tensor,
    target: torch.Tensor,
    activation: Activation,
    input_derivative: torch.Tensor,
    direct: bool = False,
) -> StepTrace:
    """Forward one sample per pair and propagate errors (bp when feedback is None; dfa when direct)."""
    ys, zs = forward(weights, x, activation)
    errors = backward_errors(feedback if feedback is not None else weights, zs, ys[-1], target,
                             activation, input_derivative, direct)
    return StepTrace(ys, zs, errors)


def records_graph(theta: torch.Tensor) -> bool:
    """Whether autograd is recording θ's graph, which the in-place and compiled paths must not break."""
    return torch.is_grad_enabled() and theta.requires_grad


@dataclass(frozen=True)
class PluginCoefficients:
    """Registered plug-in terms (TermPlugin) and their coefficients (N, K), one shared per term."""

    terms: tuple[Any, ...]
    theta: torch.Tensor


def plugin_columns(extra: PluginCoefficients, ctx: TermContext) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(U columns, V columns) of Σ_k θ_k T_k for the plug-in terms, from each term's (q, p) factors."""
    left, right = [], []
    for k, term in enumerate(extra.terms):
        for q, p in term.factors(ctx):
            left.append(extra.theta[:, k, None] * q)
            right.append(p)
    return left, right


def apply_rule(
    weights: list[torch.Tensor], theta_full: torch.Tensor, terms: tuple[int, ...], trace: StepTrace,
    extra: PluginCoefficients | None = None,
) -> list[torch.Tensor]:
    """W_ℓ ← (1-θ_3) W_ℓ - U Vᵀ for every layer, from the same step's trace (plug-in terms add columns).

    theta_full (N, V) shared by the layers, or (N, L, V) one row per layer. In place when no graph
    is being recorded for θ; out of place otherwise.
    """
    inplace = not records_graph(theta_full) and (extra is None or not records_graph(extra.theta))
    updated = []
    for layer, w in enumerate(weights):
        decay, left, right = low_rank_update(
            of_layer(theta_full, layer, theta_full.dim() == 3), terms, w,
            pre=trace.activations[layer], post=trace.activations[layer + 1],
            pre_error=trace.errors[layer], post_error=trace.errors[layer + 1],
            post_drive=trace.drives[layer],
        )
        if extra is not None:
            ctx = TermContext(trace.activations[layer], trace.activations[layer + 1], trace.errors[layer],
                              trace.errors[layer + 1], trace.drives[layer], w)
            more_left, more_right = plugin_columns(extra, ctx)
            left = torch.cat([left, torch.stack(more_left, 2)], 2)
            right = torch.cat([right, torch.stack(more_right, 2)], 2)
        keep = None if decay is None else 1 - decay
        w = low_rank_step(w, keep, left, right, inplace)
        updated.append(w)
    return updated


def apply_feedback_rule(feedback: list[torch.Tensor], phi: torch.Tensor, trace: StepTrace,
                        direct: bool = False) -> list[torch.Tensor]:
    """B_ℓ ← (1-φ_decay) B_ℓ - U Vᵀ for every layer's per-pair feedback (N, o, i), phi (N, L, 4).

    fa: post-synaptic quantities of layer ℓ; dfa (direct): of the output layer, whose error D_ℓ carries.
    In place when no graph is being recorded for φ; out of place otherwise.
    """
    inplace = not records_graph(phi)
    updated = []
    for layer, b in enumerate(feedback):
        post = -1 if direct else layer + 1
        decay, left, right = feedback_update(phi[:, layer], b, trace.activations[layer], trace.errors[layer],
                                             trace.activations[post], trace.errors[post])
        updated.append(low_rank_step(b, 1 - decay, left, right, inplace))
    return updated


def learn_sample(
    weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, theta_full: torch.Tensor,
    phi: torch.Tensor | None, terms: tuple[int, ...], x: torch.Tensor, target: torch.Tensor,
    activation: Activation, input_slope: torch.Tensor, direct: bool = False,
    extra: PluginCoefficients | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """One online sample per pair: forward, errors through the current feedback, the rule on W (with plug-in
    terms when extra is given) and, when phi is given (plastic feedback), the feedback rule on B. Returns the
    new (weights, feedback)."""
    trace = online_step(weights, feedback, x, target, activation, input_slope, direct)
    weights = apply_rule(weights, theta_full, terms, trace, extra)
    if phi is not None:
        feedback = apply_feedback_rule(feedback, phi, trace, direct)
    return weights, feedback


def query_scores(
    weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, activation: Activation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy (N,) of query images x (N, Q, D) with labels y (N, Q)."""
    h = x
    for layer, w in enumerate(weights):
        h = torch.matmul(h, w.transpose(1, 2))
        if layer < len(weights) - 1:
            h = activation.forward(h)
    loss = F.cross_entropy(h.transpose(1, 2), y, reduction="none").mean(1)
    accuracy = (h.argmax(2) == y).to(h.dtype).mean(1)
    return loss, accuracy


def _check_shapes(theta: torch.Tensor, space: RuleSpace, tasks: TaskBatch, init: NetworkState) -> int:
    n, n_tasks = theta.shape[0], tasks.n_tasks  # its width was checked by split_theta
    if space.n_layers != len(init.weights):
        raise ValueError(f"the rule has {space.n_layers} layers of coefficients, the network {len(init.weights)}")
    if space.feedback_terms and init.feedback is None:
        raise ValueError("plastic feedback (rule.feedback_terms) needs a feedback matrix: network.feedback fa or "
                         "dfa, not bp (whose B is W itself)")
    if n % n_tasks:
        raise ValueError(f"N={n} pairs must be a multiple of the {n_tasks} tasks")
    if init.weights[0].shape[0] != n_tasks:
        raise ValueError(f"initial weights hold {init.weights[0].shape[0]} episodes, tasks {n_tasks}")
    if tasks.train_x.shape[2] != init.weights[0].shape[2]:
        raise ValueError(
            f"images have {tasks.train_x.shape[2]} pixels but network.dims starts with "
            f"{init.weights[0].shape[2]}; set network.dims[0] = {tasks.train_x.shape[2]}"
        )
    n_out = init.weights[-1].shape[1]
    top = int(max(tasks.train_y.max(), tasks.query_y.max()))
    if top >= n_out:
        raise ValueError(
            f"label {top} does not fit {n_out} output units; widen network.dims[-1] to ≥ {top + 1} "
            f"or set task.relabel=true"
        )
    return n // n_tasks


def run_episode(
    theta: torch.Tensor,
    terms: tuple[int, ...] | RuleSpace,
    tasks: TaskBatch,
    init: NetworkState,
    activation: Activation,
    compiled: bool | fused.FusedOptions = False,
    generator: torch.Generator | None = None,
) -> EpisodeResult:
    """Train N = P·T fresh networks online on their tasks with rule θ; score on query sets.

    theta (N, R) holds the searched coefficients of ``terms``: a shared rule of those terms (R of them),
    or a RuleSpace (per-layer coefficients, generated terms, plastic feedback). Pair n uses task n mod
    T and that task's initial W (and B). Feedback mode is bp when ``init.feedback`` is None.
    compiled: when no graph is recorded for θ, learn with the fused, torch.compile'd step of
    evoplastic.families.paper.fused (same result up to rounding, several times faster on CPU), with default
    options for True or as the given FusedOptions say (CUDA graphs, 16-bit weights); the plain
    loop runs if compilation is unavailable, a graph is being recorded or the space has generated
    terms or plastic feedback (the fused step covers the paper's terms, shared or per layer; per
    layer, with the Inductor step and no CUDA graph). generator: what a stochastic activation draws from.
    """
    with seeded_noise(activation, generator):
        return _run_episode(theta, terms, tasks, init, activation, compiled)


def _run_episode(theta: torch.Tensor, terms: tuple[int, ...] | RuleSpace, tasks: TaskBatch, init: NetworkState,
                 activation: Activation, compiled: bool | fused.FusedOptions) -> EpisodeResult:
    space = as_space(terms, len(init.weights))
    space.check_width(theta.shape[1])
    fusable, extra = space.fusable, None
    if space.plugin_terms:  # the last K coordinates; the built-in machinery reads the rest
        k = len(space.plugin_terms)
        extra = PluginCoefficients(tuple(plugin_term(name) for name in space.plugin_terms), theta[:, -k:])
        theta, space = theta[:, :-k], space.base()
    theta_full, phi = split_theta(space, theta)
    copies = _check_shapes(theta, space, tasks, init)
    n_out = init.weights[-1].shape[1]
    targets = F.one_hot(tasks.train_y, n_out).to(theta.dtype)
    input_slopes = activation.derivative_from_output(tasks.train_x)
    weights, feedback = None, init.feedback
    if compiled and not records_graph(theta) and fusable:
        options = compiled if isinstance(compiled, fused.FusedOptions) else fused.FusedOptions()
        if space.per_layer:  # per-layer coefficients: the Inductor or C++ step, without CUDA graphs
            options = replace(options, kernel="cpp" if options.kernel == "cpp" else "inductor", cuda_graph=False)
        weights = fused.learn(theta_full, space.terms, tasks.train_x, targets, input_slopes, init, activation,
                              options)
    if weights is None:
        weights = [tile(w, copies).clone() for w in init.weights]
        if phi is not None:  # each pair's B learns on its own
            feedback = [tile(b, copies).clone() for b in init.feedback]
        for step in range(tasks.train_x.shape[1]):  # tile one step at a time: memory stays ~N × weights
            weights, feedback = learn_sample(weights, feedback, theta_full, phi, space.terms,
                                             tile(tasks.train_x[:, step], copies), tile(targets[:, step], copies),
                                             activation, tile(input_slopes[:, step], copies), init.direct, extra)
    loss, accuracy = query_scores(weights, tile(tasks.query_x, copies), tile(tasks.query_y, copies), activation)
    return EpisodeResult(loss, accuracy, weights, feedback if phi is not None else None)
