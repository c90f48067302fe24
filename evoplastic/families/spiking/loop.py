"""The spiking inner loop: N (θ, task) pairs learn their tasks online at once, then are scored.

Each sample is presented for ``steps`` time steps from rest; the rule then updates every layer
once, from eligibility accumulated over the sample's steps. One function serves both outer loops:
with no graph recorded for θ (ES) spikes are exact steps and weights change in place; when θ
requires grad (Adam) weights change out of place and the spike's derivative is the surrogate.
Pair n uses task n mod T; every tensor has the pair axis first, then a sample axis B.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evoplastic.families.spiking.config import SpikingConfig
from evoplastic.families.spiking.network import SpikingInit
from evoplastic.families.spiking.neuron import LIF, LayerState, Surrogate, lif_step
from evoplastic.families.spiking.rules import LayerSignals, SampleTrace, apply_update, layer_theta, rule_factors


@dataclass(frozen=True)
class SpikingModel:
    """Everything the dynamics depend on besides the weights."""

    lif: LIF
    surrogate: Surrogate
    steps: int = 10
    readout: str = "membrane"
    readout_scale: float = 1.0

    @classmethod
    def from_config(cls, s: SpikingConfig, smooth: bool = False) -> SpikingModel:
        return cls(LIF(s.beta, s.threshold, s.reset, s.refractory),
                   Surrogate(s.surrogate, s.slope, s.dampening, smooth), s.steps, s.readout, s.readout_scale)


@dataclass
class SpikingTasks:
    """T tasks: train stream (T, S, D), query set (T, Q, D), labels, and their input spikes when Bernoulli.

    Spikes are (T, S or Q, steps, D) booleans drawn once per task, so every member sees the same ones.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    train_spikes: torch.Tensor | None = None
    query_spikes: torch.Tensor | None = None

    @property
    def n_tasks(self) -> int:
        return self.train_x.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> SpikingTasks:
        """Images in dtype on device; labels and spikes keep their types."""
        spikes = (None if t is None else t.to(device) for t in (self.train_spikes, self.query_spikes))
        return SpikingTasks(self.train_x.to(device, dtype), self.train_y.to(device), self.query_x.to(device, dtype),
                            self.query_y.to(device), *spikes)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> SpikingTasks:
        opt = (None if t is None else fn(t) for t in (self.train_spikes, self.query_spikes))
        return SpikingTasks(fn(self.train_x), fn(self.train_y), fn(self.query_x), fn(self.query_y), *opt)


@dataclass
class EpisodeResult:
    """Per-pair query cross-entropy and accuracy (N,) and the adapted weights."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    weights: list[torch.Tensor]


def tile(x: torch.Tensor, copies: int) -> torch.Tensor:
    """Repeat along the pair axis (pair n gets row n mod T); no copy when copies == 1."""
    return x if copies == 1 else x.repeat(copies, *([1] * (x.dim() - 1)))


def input_at(x: torch.Tensor, spikes: torch.Tensor | None, t: int) -> torch.Tensor:
    """Layer 0's activity at step t: the constant current x (N, B, D), or that step's spikes."""
    return x if spikes is None else spikes[:, :, t].to(x.dtype)


def present(weights: list[torch.Tensor], x: torch.Tensor, spikes: torch.Tensor | None, model: SpikingModel,
            record: bool = False) -> tuple[torch.Tensor, list[SampleTrace]]:
    """Run B samples per pair for model.steps steps from rest: logits (N, B, n_L) and, if record, each
    layer's SampleTrace (time axis 2: (N, B, T, n)). x (N, B, D); spikes (N, B, T, D) or None."""
    n_layers = len(weights)
    spiking = [True] * (n_layers - 1) + [model.readout == "count"]
    states = [LayerState.rest((*x.shape[:2], w.shape[1]), x) for w in weights]
    pre_traces = [torch.zeros_like(x)] + [None] * (n_layers - 1)
    rec: list[dict[str, list[torch.Tensor]]] = [{k: [] for k in ("xbar", "spre", "psi", "s", "ybar")}
                                                for _ in weights]
    readout = 0
    for t in range(model.steps):
        below = input_at(x, spikes, t)
        for layer, w in enumerate(weights):
            old = states[layer]
            new, psi = lif_step(old, torch.matmul(below, w.transpose(1, 2)), model.lif, model.surrogate,
                                spiking[layer])
            if record:
                trace = pre_traces[layer]
                trace = model.lif.beta * trace + below if trace is not None else below
                pre_traces[layer] = trace
                r = rec[layer]
                r["xbar"].append(trace), r["spre"].append(below), r["psi"].append(psi)
                r["s"].append(new.s), r["ybar"].append(old.trace)
            states[layer] = new
            below = new.s
        top = states[-1]
        readout = readout + (top.s if spiking[-1] else top.v)
    logits = model.readout_scale * readout / model.steps
    traces = [SampleTrace(*(torch.stack(r[k], 2) for k in ("xbar", "spre", "psi", "s", "ybar"))) for r in rec
              ] if record else []
    return logits, traces


def feedback_product(delta: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Mᵀ δ for δ (N, o), M (G, o, i) with G dividing N (row n uses M[n mod G]) -> (N, i)."""
    n, g = delta.shape[0], matrix.shape[0]
    if g == n:
        return torch.bmm(delta.unsqueeze(1), matrix).squeeze(1)
    grouped = delta.reshape(n // g, g, delta.shape[1]).transpose(0, 1)  # (G, N/G, o)
    return torch.bmm(grouped, matrix).transpose(0, 1).reshape(n, matrix.shape[2])


def layer_signals(weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, direct: bool,
                  traces: list[SampleTrace], output: torch.Tensor, target: torch.Tensor) -> list[LayerSignals]:
    """Learning signals and gated errors of one sample (B = 1), top-down.

    L_L = softmax - onehot; δ_j = L_j ⊙ mean_t ψ_j^t; L_{j-1} = B_jᵀ δ_j (fa), W_jᵀ δ_j (bp), D_jᵀ δ_L (dfa);
    δ_0 = L_0 (the input is passed straight through). Rates y_j = mean_t s_j^t, y_L = softmax.
    """
    n_layers = len(weights)
    matrices = weights if feedback is None else feedback
    psi_mean = [tr.psi[:, 0].mean(1) for tr in traces]  # ψ̄ of populations 1..L
    signal = [None] * (n_layers + 1)
    delta = [None] * (n_layers + 1)
    signal[n_layers] = output - target
    delta[n_layers] = signal[n_layers] * psi_mean[-1]
    for j in range(n_layers, 0, -1):
        signal[j - 1] = feedback_product(delta[n_layers] if direct else delta[j], matrices[j - 1])
        delta[j - 1] = signal[j - 1] * psi_mean[j - 2] if j > 1 else signal[0]
    rates = [traces[0].pre_spikes[:, 0].mean(1)] + [tr.post_spikes[:, 0].mean(1) for tr in traces[:-1]] + [output]
    return [LayerSignals(signal[i + 1], delta[i + 1], delta[i], rates[i + 1], rates[i]) for i in range(n_layers)]


def records_graph(theta: torch.Tensor) -> bool:
    """Whether autograd records θ's graph (then weights change out of place)."""
    return torch.is_grad_enabled() and theta.requires_grad


def learn_sample(weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, direct: bool,
                 theta: torch.Tensor, terms: tuple[str, ...], per_layer: bool, x: torch.Tensor,
                 spikes: torch.Tensor | None, target: torch.Tensor, model: SpikingModel) -> list[torch.Tensor]:
    """Present one sample per pair (x (N, 1, D)), then update every layer once; returns the new weights."""
    logits, traces = present(weights, x, spikes, model, record=True)
    output = torch.softmax(logits[:, 0], 1)
    signals = layer_signals(weights, feedback, direct, traces, output, target)
    inplace = not records_graph(theta)
    updated = []
    for layer, w in enumerate(weights):
        tr = traces[layer]
        squeezed = SampleTrace(*(getattr(tr, k)[:, 0] for k in ("pre_trace", "pre_spikes", "psi", "post_spikes",
                                                                 "post_trace_before")))
        coef = layer_theta(theta, layer, len(terms), per_layer)
        decay, u, v = rule_factors(coef, terms, w, squeezed, signals[layer])
        updated.append(apply_update(w, decay, u, v, inplace))
    return updated


def query_scores(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, spikes: torch.Tensor | None,
                 model: SpikingModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy (N,) of query samples x (N, Q, D) with labels y (N, Q)."""
    logits, _ = present(weights, x, spikes, model)
    loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)
    accuracy = (logits.argmax(2) == y).to(logits.dtype).mean(1)
    return loss, accuracy


def run_episode(theta: torch.Tensor, terms: tuple[str, ...], per_layer: bool, tasks: SpikingTasks,
                init: SpikingInit, model: SpikingModel) -> EpisodeResult:
    """Train N = P·T fresh networks online on their tasks with rule θ (N, R); score on the query sets."""
    n, n_tasks = theta.shape[0], tasks.n_tasks
    if n % n_tasks:
        raise ValueError(f"N={n} pairs must be a multiple of the {n_tasks} tasks")
    width = len(terms) * (len(init.weights) if per_layer else 1)
    if theta.dim() != 2 or theta.shape[1] != width:
        raise ValueError(f"theta must be (N, {width}) for terms {list(terms)}, got {tuple(theta.shape)}")
    copies = n // n_tasks
    n_out = init.weights[-1].shape[1]
    targets = F.one_hot(tasks.train_y, n_out).to(theta.dtype)
    weights = [tile(w, copies).clone() for w in init.weights]
    for step in range(tasks.train_x.shape[1]):
        x = tile(tasks.train_x[:, step: step + 1], copies)
        spikes = None if tasks.train_spikes is None else tile(tasks.train_spikes[:, step: step + 1], copies)
        weights = learn_sample(weights, init.feedback, init.direct, theta, terms, per_layer, x, spikes,
                               tile(targets[:, step], copies), model)
    query_spikes = None if tasks.query_spikes is None else tile(tasks.query_spikes, copies)
    loss, accuracy = query_scores(weights, tile(tasks.query_x, copies), tile(tasks.query_y, copies), query_spikes,
                                  model)
    return EpisodeResult(loss, accuracy, weights)
