"""Spiking networks as a family: LIF layers learning online by e-prop, STDP and the paper's terms in trace form.

ES scores candidates with exact Heaviside spikes and no graph; Adam backpropagates through the
unrolled episode with the configured surrogate gradient (Neftci, Mostafa & Zenke 2019).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from evoplastic.core.family import ThetaSpace
from evoplastic.families.paper.data import load_dataset
from evoplastic.families.paper.tasks import TaskSampler
from evoplastic.families.spiking.config import TERMS, SpikingExperimentConfig, resolve_terms, theta_size
from evoplastic.families.spiking.evaluation import METRICS, evaluate_rules
from evoplastic.families.spiking.problem import SpikingProblem
from evoplastic.families.spiking.rules import TERM_FORMULAS, TERM_SCALES, theta_labels

DEFAULT_THETA = {"eprop": 0.05}
"""The start of a run: e-prop at a rate that learns the digits tasks, every other term 0."""


def initial_theta(cfg: SpikingExperimentConfig) -> tuple[float, ...]:
    """rule.theta_init, or DEFAULT_THETA per term (repeated per layer)."""
    s = cfg.spiking
    if cfg.rule.theta_init:
        if len(cfg.rule.theta_init) != theta_size(s):
            raise ValueError(f"rule.theta_init has {len(cfg.rule.theta_init)} values but the spiking rule searches "
                             f"{theta_size(s)}; give one per coordinate, or none")
        return tuple(cfg.rule.theta_init)
    block = tuple(DEFAULT_THETA.get(t, 0.0) for t in resolve_terms(s.terms))
    return block * ((len(s.dims) - 1) if s.per_layer else 1)


def make_sampler(cfg: SpikingExperimentConfig) -> TaskSampler:
    t = cfg.task
    return TaskSampler(load_dataset(t.dataset, t.data_dir, t.split, t.download), t)


class SpikingFamily:
    """Leaky integrate-and-fire networks learning M-way image tasks online (e-prop's setting, the paper's tasks)."""

    name = "spiking"

    def theta_space(self, cfg: SpikingExperimentConfig) -> ThetaSpace:
        """One coefficient per term (per layer when spiking.per_layer); Adam scales relative to the first term's."""
        s = cfg.spiking
        terms = resolve_terms(s.terms)
        layers = len(s.dims) - 1 if s.per_layer else 1
        scales = tuple(TERM_SCALES[t] for t in terms) * layers
        return ThetaSpace(
            initial=initial_theta(cfg),
            scales=scales,
            labels=theta_labels(terms, len(s.dims) - 1, s.per_layer),
            formulas=tuple(TERM_FORMULAS[t] for t in terms) * layers,
            adam_scales=tuple(x / scales[0] for x in scales) if cfg.adam.term_scaled else (),
        )

    def build_problem(self, cfg: SpikingExperimentConfig, device: torch.device | None = None) -> SpikingProblem:
        return SpikingProblem(cfg, make_sampler(cfg), device)

    def describe(self, cfg: SpikingExperimentConfig) -> dict[str, Any]:
        s = cfg.spiking
        terms = resolve_terms(s.terms)
        return {
            "family": self.name,
            "terms": list(terms),
            "formulas": [TERM_FORMULAS[t] for t in terms],
            "per_layer": s.per_layer,
            "sign_convention": "paper: dW = -sum_r theta_r T_r, once per sample",
            "feedback": s.feedback,
            "neuron": {"model": "LIF", "beta": s.beta, "threshold": s.threshold, "reset": s.reset,
                       "refractory": s.refractory, "steps": s.steps, "input": s.input, "readout": s.readout},
            "surrogate": {"name": s.surrogate, "slope": s.slope, "dampening": s.dampening},
        }

    def evaluate_rows(self, cfg: SpikingExperimentConfig, rules: list[tuple], n_tasks: int = 100, seed: int = 0,
                      baselines: bool = True, device: str = "cpu", progress=None) -> list:
        """Rows (evaluation.Row) of each (label, θ, own config or None) and the baselines on n_tasks fresh tasks."""
        cfg = replace(cfg, seed=seed, device=device)
        return evaluate_rules(cfg, make_sampler(cfg), rules, n_tasks, baselines, progress)

    def parse_rule(self, text: str) -> tuple[str, tuple[str, ...], tuple[float, ...]] | None:
        """'spiking:eprop=0.05,oja=1e-3' -> (label, terms in θ order, θ); None when text is not a spiking rule."""
        prefix, colon, body = text.partition(":")
        if not colon or prefix.strip().lower() != self.name:
            return None
        values = {}
        for part in body.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or key not in TERMS:
                raise ValueError(f"spiking rule {text!r}: write spiking:TERM=VALUE,… with terms among "
                                 f"{', '.join(TERMS)}")
            values[key] = float(value)
        terms = tuple(t for t in TERMS if t in values)
        return text, terms, tuple(values[t] for t in terms)

    metrics_names = METRICS


FAMILY = SpikingFamily()
