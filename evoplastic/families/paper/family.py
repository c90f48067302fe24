"""The paper's system as a network family: its θ space, data, problem and rule description."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.evaluation import EvaluateSettings, Evaluation, RuleToScore
from evoplastic.core.family import ThetaSpace
from evoplastic.families.paper import evaluation, rulespec
from evoplastic.families.paper.config import check_differentiable, mixture_entry
from evoplastic.families.paper.data import load_dataset
from evoplastic.families.paper.problem import PaperProblem
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.tasks import MixtureSampler, TaskSampler
from evoplastic.families.paper.terms import VOCAB_FORMULAS, VOCAB_SCALE

THETA_UNITS = "paper units, ΔW = -Σ θ_r T_r"
THETA_NOTE = ("Paper units and sign convention, ΔW = -Σ_r θ_r T_r; '—': term not searched. The authors' public "
              "code flips the sign of Oja's term: its θ_9 is minus ours.")
POOL = RuleSpace(tuple(range(10)), 1)
"""The paper's ten shared terms: the rows of a θ table of shared rules, searched or not."""


class PaperFamily:
    """Shervani-Tabar & Rosenbaum: a feed-forward network learning M-way image tasks online."""

    name = "paper"

    def theta_space(self, cfg: ExperimentConfig) -> ThetaSpace:
        """The searched coefficients in paper units, ES scales per coordinate, Adam scales relative to θ_0's."""
        space = RuleSpace.from_config(cfg)
        scales = space.scales(cfg.es.term_scale)
        theta_0_scale = (cfg.es.term_scale or VOCAB_SCALE)[0]
        try:
            check_differentiable(cfg.network)
            reason = ""
        except ValueError as err:
            reason = str(err)
        return ThetaSpace(
            initial=space.initial(cfg.rule.theta_init),
            scales=scales,
            labels=space.labels(),
            formulas=space.formulas(),
            # relative to θ_0's scale, so that θ_0, θ_2 and θ_9 keep the paper's step size
            adam_scales=tuple(s / theta_0_scale for s in scales) if cfg.adam.term_scaled else (),
            no_gradient_reason=reason,
            units=THETA_UNITS,
            note=THETA_NOTE,
            reference=() if space.per_layer else tuple(zip(POOL.labels(), POOL.formulas())),
        )

    def build_problem(self, cfg: ExperimentConfig, device: torch.device | None = None) -> PaperProblem:
        """Load the dataset and make the problem of an experiment."""
        t = cfg.task
        samplers = [TaskSampler(load_dataset(name, t.data_dir, t.split, t.download, t.pixel_scale),
                                replace(t, classes=classes) if classes else t)
                    for name, classes in map(mixture_entry, t.mixture or (t.dataset,))]
        sampler = MixtureSampler(samplers, t.mixture_weights) if t.mixture else samplers[0]
        return PaperProblem(cfg, sampler, device)

    def describe(self, cfg: ExperimentConfig) -> dict[str, Any]:
        space = RuleSpace.from_config(cfg)
        return {
            "family": self.name,
            "terms": list(space.terms),
            "formulas": [VOCAB_FORMULAS[t] for t in space.terms],
            **space.describe(),
            "sign_convention": "paper: dW = -sum_r theta_r T_r",
            "activation": cfg.network.activation,
            "feedback": cfg.network.feedback,
        }

    bench_members = {"cpu": (1, 8), "cuda": (1, 256, 2048)}
    """Members N of its rows when ``evoplastic bench --families`` times it through its Problem."""

    def describe_workload(self, cfg: ExperimentConfig) -> str:
        """One member-episode of cfg in words, for ``evoplastic bench``."""
        n, t = cfg.network, cfg.task
        return (f"{n.activation} network {'-'.join(map(str, n.dims))}, {t.n_way * t.k_shot} online samples of "
                f"{t.dataset}, rule {cfg.rule.terms} ({RuleSpace.from_config(cfg).size} θ), {n.feedback} "
                f"feedback; {t.n_way * t.n_query} query images; {cfg.dtype}")

    metrics = evaluation.METRICS

    def evaluate(self, cfg: ExperimentConfig, rules: list[RuleToScore], settings: EvaluateSettings) -> Evaluation:
        return evaluation.evaluate(rules, settings)

    def rule_from_run(self, label: str, cfg: ExperimentConfig, theta: list[float]) -> rulespec.Rule:
        """The run's rule (a RuleToScore that also knows its rule space)."""
        return rulespec.rule_from_run(label, cfg, theta)

    def parse_rule(self, text: str) -> rulespec.Rule | None:
        """NAME:θ,… such as bio:0.013,-0.054,-0.0065 or 0,2,9:…; None for text of another form."""
        name = text.partition(":")[0]
        if ":" not in text or not rulespec.names_terms(name):
            return None
        return rulespec.parse_rule(text)


FAMILY = PaperFamily()
