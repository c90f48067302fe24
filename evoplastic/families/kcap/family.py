"""The k-cap RNN (Balwani, Gupta & Shu) as a network family: its θ space, problem, evaluation and rule text."""

from __future__ import annotations

from typing import Any

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.evaluation import EvaluateSettings, Evaluation, Metric, RuleToScore, ScoredRule, check_options
from evoplastic.core.family import ThetaSpace
from evoplastic.families.kcap.config import KcapExperimentConfig
from evoplastic.families.kcap.evaluation import Evaluated, evaluate
from evoplastic.families.kcap.problem import KcapProblem
from evoplastic.families.kcap.rules import POOL, initial_theta, theta_labels, theta_scales, theta_size
from evoplastic.families.kcap.rulespec import is_rule_spec
from evoplastic.families.kcap.rulespec import parse_rule as parse_coefficients


def _formula(label: str) -> str:
    """The pool formula behind a θ label such as 'hebb' or 'M_rec/oja'; '' for MLP weights."""
    term = POOL.get(label.rpartition("/")[2])
    return term.formula if term else ""


class KcapFamily:
    """Balwani, Gupta & Shu: an RNN with a k-cap activation learning without labels by a local rule."""

    name = "kcap"

    @staticmethod
    def _check_theta_init(cfg: ExperimentConfig) -> None:
        """rule.theta_init needs one value per coordinate of this rule (the config schema cannot count them)."""
        if cfg.rule.theta_init and len(cfg.rule.theta_init) != theta_size(cfg.kcap):
            labels = theta_labels(cfg.kcap)
            shown = ", ".join(labels[:8]) + (", …" if len(labels) > 8 else "")
            raise ValueError(f"rule.theta_init has {len(cfg.rule.theta_init)} values but this kcap rule searches "
                             f"{theta_size(cfg.kcap)} ({shown}); give one value per coordinate, or none for the "
                             f"default start")

    def theta_space(self, cfg: ExperimentConfig) -> ThetaSpace:
        """The pool's coefficients (or the MLP's weights), per matrix when kcap.per_matrix."""
        self._check_theta_init(cfg)
        labels = tuple(theta_labels(cfg.kcap))
        start = cfg.rule.theta_init or tuple(initial_theta(cfg.kcap, torch.float64).tolist())
        return ThetaSpace(initial=tuple(start), scales=tuple(theta_scales(cfg.kcap, torch.float64).tolist()),
                          labels=labels, formulas=tuple(_formula(label) for label in labels))

    def build_problem(self, cfg: ExperimentConfig, device: torch.device | None = None) -> KcapProblem:
        return KcapProblem(cfg, device)

    def describe(self, cfg: ExperimentConfig) -> dict[str, Any]:
        k = cfg.kcap
        return {
            "family": self.name,
            "rule": k.rule,
            "terms": list(k.terms) if k.rule == "pool" else [],
            "formulas": [_formula(t) for t in k.terms] if k.rule == "pool" else [],
            "sign_convention": "kcap: dM = +sum_r theta_r T_r",
            "per_matrix": k.per_matrix,
            "plastic": list(k.plastic),
            "normalise": k.normalise,
            "objective": k.objective,
            "n_hidden": k.n_hidden,
            "input_bias": k.input_bias,
            "cap": k.cap,
        }

    bench_members = {"cpu": (1, 16, 64), "cuda": (1, 512, 8192)}
    """Members N of its ``evoplastic bench`` rows: small episodes, so the batch pays off only at large N."""

    def describe_workload(self, cfg: ExperimentConfig) -> str:
        """One member-episode of cfg in words, for ``evoplastic bench``."""
        k = cfg.kcap
        return (f"m={k.n_hidden} units, k={k.cap} active, S={k.n_unlabelled} unlabelled samples streamed once, "
                f"T={k.recurrent_steps} recurrent steps, n={k.n_features} inputs; {k.rule} rule "
                f"({theta_size(k)} θ) on {'+'.join(k.plastic)}, {k.normalise} normalisation; scored by the ridge "
                f"probe ({k.labels_per_class} labels per class) and read-out on {2 * k.n_query} query points"
                f"{'' if k.objective == 'emd' else ', no EMD'} (objective {k.objective}); {cfg.dtype}")

    metrics = (Metric("probe_accuracy", True, percent=True), Metric("probe_loss", False, digits=4),
               Metric("ae_mse", False, digits=4), Metric("emd", False, digits=4))

    def evaluate(self, cfg: ExperimentConfig, rules: list[RuleToScore], settings: EvaluateSettings) -> Evaluation:
        """The rules beside the untrained network, the raw input and (options autoencoders=True) backprop
        autoencoders, all on cfg's tasks; settings.tasks per dataset."""
        check_options(settings.options, ("autoencoders", "controls"), self.name)
        evaluated = self.evaluate_rows(cfg, [(r.label, torch.tensor(r.theta, dtype=torch.float64), r.config)
                                             for r in rules], settings.tasks, settings.seed, settings.baselines,
                                       bool(settings.options.get("autoencoders")), settings.device,
                                       bool(settings.options.get("controls")))
        thetas = {r.label: tuple(r.theta) for r in rules}
        rows = [ScoredRule(label, {m.name: values[m.name].numpy() for m in self.metrics}, thetas.get(label, ()))
                for label, values in evaluated.rows]
        described = (f"{settings.tasks} fresh tasks per dataset ({', '.join(evaluated.group_names)}), "
                     f"seed={settings.seed}; mean ± 95 % CI over tasks; rows on identical tasks")
        return Evaluation(self.metrics, rows, described, evaluated.groups.numpy(), tuple(evaluated.group_names))

    def evaluate_rows(self, cfg: ExperimentConfig, rules: list[tuple], n_tasks: int, seed: int,
                      baselines: bool = True, autoencoders: bool = False, device: str = "cpu",
                      controls: bool = False) -> Evaluated:
        """The rules, (label, θ) or (label, θ, their config), per dataset group (the evaluate command's tables);
        controls adds the untuned start rule and θ = 0."""
        return evaluate(cfg, rules, n_tasks, seed, baselines, autoencoders, device, controls)

    def rule_from_run(self, label: str, cfg: ExperimentConfig, theta: list[float]) -> RuleToScore:
        return RuleToScore(label, tuple(float(v) for v in theta), cfg)

    def parse_rule(self, text: str) -> RuleToScore | None:
        """kcap:NAME=VALUE,… (e.g. kcap:hebb=0.01 or kcap:in.hebb=0.01,rec.pre=-0.02); None for other text."""
        if not is_rule_spec(text):
            return None
        label, theta, kcap = parse_coefficients(text)
        return RuleToScore(label, theta, KcapExperimentConfig(name=label, kcap=kcap))


FAMILY = KcapFamily()
