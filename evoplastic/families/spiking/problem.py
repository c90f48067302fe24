"""The spiking problem: score θ by the query cross-entropy of LIF networks that learned T tasks online.

Every candidate of a step sees the same T tasks, initial W and B, and (Bernoulli input) the same
input spikes: all drawn from (run seed, purpose, step), so any process rebuilds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evoplastic.core.fitness import resolve_device
from evoplastic.families.paper.tasks import TaskSampler
from evoplastic.families.spiking.config import resolve_terms
from evoplastic.families.spiking.loop import SpikingModel, SpikingTasks, present, run_episode
from evoplastic.families.spiking.network import SpikingInit, init_network
from evoplastic.seeding import make_generator

DIAGNOSTIC_TASKS = 4
"""Fresh tasks the periodic firing-rate diagnostics are measured on."""


@dataclass
class SpikingBatch:
    """The T tasks of a step (with their input spikes) and their initial networks."""

    tasks: SpikingTasks
    init: SpikingInit

    @property
    def n_tasks(self) -> int:
        return self.tasks.n_tasks

    def subset(self, part: slice) -> SpikingBatch:
        """Tasks ``part`` as fresh tensors, so a block never depends on where it sat in the full batch."""
        return SpikingBatch(self.tasks.map(lambda t: t[part].clone()), self.init.map(lambda t: t[part].clone()))


def bernoulli_spikes(x: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(…, steps, D) booleans, spike with probability x (…, D) ∈ [0, 1] at every step, drawn in float64."""
    u = torch.rand(*x.shape[:-1], steps, x.shape[-1], generator=generator, dtype=torch.float64)
    return u < x.double().unsqueeze(-2)


def check_compatible(cfg: Any, sampler: TaskSampler) -> None:
    """The network must take the dataset's pixels and have an output for every label."""
    dims, task = cfg.spiking.dims, cfg.task
    pixels = sampler.dataset.n_features
    if dims[0] != pixels:
        raise ValueError(f"{sampler.dataset.name} images have {pixels} pixels but spiking.dims starts with "
                         f"{dims[0]}; set spiking.dims[0] = {pixels}")
    top = task.n_way - 1 if task.relabel else max(sampler.classes)
    if top >= dims[-1]:
        raise ValueError(f"label {top} of {sampler.dataset.name} does not fit {dims[-1]} output units; set "
                         f"spiking.dims[-1] ≥ {top + 1} or task.relabel=true")


class SpikingProblem:
    """Scores candidate θ (P, R) of the spiking family on the tasks of a step."""

    def __init__(self, cfg: Any, sampler: TaskSampler, device: torch.device | None = None,
                 feedback: str | None = None):
        check_compatible(cfg, sampler)
        self.cfg, self.spiking, self.sampler = cfg, cfg.spiking, sampler
        self.feedback = feedback or cfg.spiking.feedback
        """The learning-signal pathway of this problem's networks (the baselines override it)."""
        self.terms = resolve_terms(cfg.spiking.terms)
        self.model = SpikingModel.from_config(cfg.spiking)
        self.device = device or resolve_device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> SpikingBatch:
        """The T tasks, initial networks and input spikes of a step, rebuilt identically anywhere."""
        seed, s = self.cfg.seed, self.spiking
        tb = self.sampler.sample(n_tasks, make_generator(seed, purpose, "tasks", step))
        init = init_network(s, n_tasks, make_generator(seed, purpose, "init", step), self.dtype, self.feedback)
        train_spikes = query_spikes = None
        if s.input == "bernoulli":
            generator = make_generator(seed, purpose, "spikes", step)
            train_spikes = bernoulli_spikes(tb.train_x, s.steps, generator)
            query_spikes = bernoulli_spikes(tb.query_x, s.steps, generator)
        tasks = SpikingTasks(tb.train_x, tb.train_y, tb.query_x, tb.query_y, train_spikes, query_spikes)
        return SpikingBatch(tasks.to(self.device, self.dtype), init.map(lambda t: t.to(self.device)))

    def scores(self, theta: torch.Tensor, batch: SpikingBatch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Query loss and accuracy (P, T) of P candidates on each task, chunk members per call (0: all)."""
        chunk = min(chunk or theta.shape[0], theta.shape[0])
        losses, accs = [], []
        for start in range(0, theta.shape[0], chunk):
            pairs = theta[start: start + chunk].repeat_interleave(batch.n_tasks, 0)  # pair p·T + t
            result = run_episode(pairs, self.terms, self.spiking.per_layer, batch.tasks, batch.init, self.model)
            losses.append(result.loss.view(-1, batch.n_tasks))
            accs.append(result.accuracy.view(-1, batch.n_tasks))
        return torch.cat(losses), torch.cat(accs)

    def diagnostics(self, theta: torch.Tensor, step: int | str) -> dict[str, list[float]]:
        """Mean firing rate (spikes per step) of each hidden layer on query images, after learning with θ (R,)."""
        batch = self.draw(step, "diagnostics", DIAGNOSTIC_TASKS)
        pairs = theta.to(self.device, self.dtype).unsqueeze(0).repeat(batch.n_tasks, 1)
        with torch.no_grad():
            result = run_episode(pairs, self.terms, self.spiking.per_layer, batch.tasks, batch.init, self.model)
            _, traces = present(result.weights, batch.tasks.query_x, batch.tasks.query_spikes, self.model,
                                record=True)
        return {"eval/firing_rate": [float(tr.post_spikes.mean()) for tr in traces[:-1]]}

    def run_notes(self) -> dict[str, str]:
        """Which spikes the scores used and, for the Adam loop, which gradient it followed."""
        s = self.spiking
        if self.cfg.outer == "adam":
            gradient = (f"surrogate gradient: exact Heaviside spikes forward, d s/d v = {s.dampening} * "
                        f"{s.surrogate}'(v - threshold) with slope {s.slope} backward")
        else:
            gradient = "none (ES): exact Heaviside spikes, no graph"
        return {"spikes": "exact Heaviside", "meta_gradient": gradient}
