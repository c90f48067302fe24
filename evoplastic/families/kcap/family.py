"""The k-cap RNN of seed 004 as a network family: its θ space, problem and rule description."""

from __future__ import annotations

from typing import Any

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.family import ThetaSpace
from evoplastic.families.kcap.evaluation import Evaluated, evaluate
from evoplastic.families.kcap.problem import KcapProblem
from evoplastic.families.kcap.rules import POOL, initial_theta, theta_labels, theta_scales, theta_size


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
            "cap": k.cap,
        }


    def evaluate(self, cfg: ExperimentConfig, rules: list[tuple], n_tasks: int, seed: int,
                 baselines: bool = True, autoencoders: bool = False, device: str = "cpu") -> Evaluated:
        """The rules, (label, θ) or (label, θ, their config), beside the untrained network, the raw input and
        (optionally) backprop autoencoders, all on cfg's tasks."""
        return evaluate(cfg, rules, n_tasks, seed, baselines, autoencoders, device)


FAMILY = KcapFamily()
