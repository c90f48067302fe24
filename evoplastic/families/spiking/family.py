"""Spiking networks as a family: LIF layers learning online by e-prop, STDP and the paper's terms in trace form.

ES scores candidates with exact Heaviside spikes and no graph; Adam backpropagates through the
unrolled episode with the configured surrogate gradient (Neftci, Mostafa & Zenke 2019).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from evoplastic.core.evaluation import EvaluateSettings, Evaluation, Metric, RuleToScore, ScoredRule, check_options
from evoplastic.core.family import ThetaSpace
from evoplastic.families.paper.config import parse_class_ids
from evoplastic.families.paper.data import load_dataset
from evoplastic.families.paper.rulespec import format_classes
from evoplastic.families.paper.tasks import TaskSampler
from evoplastic.families.spiking.config import (
    TERMS,
    SpikingConfig,
    SpikingExperimentConfig,
    resolve_terms,
    theta_size,
    validate,
)
from evoplastic.families.spiking.evaluation import evaluate_rules
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
        """One coefficient per term (per layer when spiking.per_layer); Adam steps in the ES search units."""
        s = cfg.spiking
        terms = resolve_terms(s.terms)
        layers = len(s.dims) - 1 if s.per_layer else 1
        scales = tuple(TERM_SCALES[t] for t in terms) * layers
        return ThetaSpace(
            initial=initial_theta(cfg),
            scales=scales,
            labels=theta_labels(terms, len(s.dims) - 1, s.per_layer),
            formulas=tuple(TERM_FORMULAS[t] for t in terms) * layers,
            adam_scales=scales if cfg.adam.term_scaled else (),
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

    bench_members = {"cpu": (1, 8), "cuda": (1, 64, 512)}
    """Members N of its ``evoplastic bench`` rows: ten time steps per sample make an episode slow on a CPU."""

    def describe_workload(self, cfg: SpikingExperimentConfig) -> str:
        """One member-episode of cfg in words, for ``evoplastic bench``."""
        s, t = cfg.spiking, cfg.task
        return (f"LIF network {'-'.join(map(str, s.dims))}, {t.n_way * t.k_shot} online samples of {t.dataset} × "
                f"{s.steps} time steps ({s.input} input), terms {'+'.join(resolve_terms(s.terms))} "
                f"({self.theta_space(cfg).size} θ) once per sample with the {s.feedback} learning signal; "
                f"{s.readout} read-out on {t.n_way * t.n_query} query images; {cfg.dtype}")

    metrics = (Metric("accuracy", True, percent=True), Metric("loss", False, digits=4))

    def evaluate(self, cfg: SpikingExperimentConfig, rules: list[RuleToScore],
                 settings: EvaluateSettings) -> Evaluation:
        """The rules beside e-prop fa/bp/dfa and the rate network's fa/bp, on settings.tasks identical tasks.

        options: dataset, split, classes ('37-46'), n_way, k_shot, n_query (the task), input (current or
        bernoulli) and baseline_lr (0: tuned) change cfg for every row.
        """
        cfg = with_options(replace(cfg, seed=settings.seed, device=settings.device), settings.options)
        rows = score_rows(cfg, [(r.label, r.theta, r.config) for r in rules], settings.tasks, settings.baselines)
        scored = [ScoredRule(row.label, {m.name: row.per_task[m.name].numpy() for m in self.metrics}, row.theta)
                  for row in rows]
        t, s = cfg.task, cfg.spiking
        classes = format_classes(t.classes) if t.classes else "all"
        described = (f"{settings.tasks} fresh {t.n_way}-way tasks of {t.dataset} (classes {classes}, "
                     f"{t.k_shot} online samples per class, {s.steps} steps each, {s.input} input), seed="
                     f"{settings.seed}; mean ± 95 % CI over tasks; every row on identical tasks and initial W")
        return Evaluation(self.metrics, scored, described, np.zeros(settings.tasks, dtype=np.int64), (t.dataset,))

    def rule_from_run(self, label: str, cfg: SpikingExperimentConfig, theta: list[float]) -> RuleToScore:
        return RuleToScore(label, tuple(float(v) for v in theta), cfg)

    def parse_rule(self, text: str) -> RuleToScore | None:
        """'spiking:eprop=0.05,oja=1e-3' -> a rule of those terms (θ in term order) on the default network;
        None when text is not a spiking rule."""
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
        cfg = SpikingExperimentConfig(spiking=SpikingConfig(terms=terms))
        return RuleToScore(text, tuple(values[t] for t in terms), cfg)


TASK_OPTIONS = ("dataset", "split", "classes", "n_way", "k_shot", "n_query")
SPIKING_OPTIONS = ("input", "baseline_lr")


def with_options(cfg: SpikingExperimentConfig, options: dict[str, Any]) -> SpikingExperimentConfig:
    """cfg with evaluate's options applied (task keys and spiking.input/baseline_lr), checked."""
    check_options(options, TASK_OPTIONS + SPIKING_OPTIONS, "spiking")
    task = {k: v for k, v in options.items() if k in TASK_OPTIONS}
    if isinstance(task.get("classes"), str):
        task["classes"] = parse_class_ids(task["classes"], "classes")
    spiking = {k: v for k, v in options.items() if k in SPIKING_OPTIONS}
    cfg = replace(cfg, task=replace(cfg.task, **task), spiking=replace(cfg.spiking, **spiking))
    validate(cfg)
    return cfg


def score_rows(cfg: SpikingExperimentConfig, rules: list[tuple], n_tasks: int = 100,
               baselines: bool = True, progress=None) -> list:
    """evaluation.Row of each (label, θ, own config or None) and the baselines on n_tasks tasks keyed by cfg.seed."""
    return evaluate_rules(cfg, make_sampler(cfg), rules, n_tasks, baselines, progress)


FAMILY = SpikingFamily()
