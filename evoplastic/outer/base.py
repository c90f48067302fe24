"""The interface the training loop sees: one step of an outer optimiser over θ.

ES asks for a population's losses, Adam for one candidate's differentiable loss; both
get the same ``evaluate`` callable and the loop does not branch on which one it has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.fitness import Evaluation
from evoplastic.families.paper.rules import DEFAULT_TERM_SCALE, default_theta, resolve_terms

Evaluate = Callable[[torch.Tensor], Evaluation]
"""Maps (P, R) candidates θ in paper units to their Evaluation on the current step's tasks."""


class OuterLoop(Protocol):
    """One outer optimiser; its state_dict is the whole checkpoint of the search."""

    needs_grad: bool

    def step(self, evaluate: Evaluate) -> dict[str, Any]:
        """Run one generation/episode; return metrics keyed 'group/name'."""

    def center(self) -> torch.Tensor:
        """The current best estimate of θ, (R,) float64 in paper units."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def initial_theta(cfg: ExperimentConfig) -> torch.Tensor:
    """θ at the start of a run: the config's theta_init or the paper's (θ_0 = 1e-3)."""
    terms = resolve_terms(cfg.rule.terms)
    return torch.tensor(cfg.rule.theta_init or default_theta(terms), dtype=torch.float64)


def term_scales(cfg: ExperimentConfig, relative: bool = False) -> torch.Tensor:
    """Paper units per search unit of each searched term, (R,) float64; relative: θ_0's is 1."""
    scale = cfg.es.term_scale or DEFAULT_TERM_SCALE
    unit = scale[0] if relative else 1.0
    return torch.tensor([scale[t] / unit for t in resolve_terms(cfg.rule.terms)], dtype=torch.float64)


def make_outer(cfg: ExperimentConfig) -> OuterLoop:
    """The configured outer loop, starting from the initial θ."""
    if cfg.outer == "adam":
        from evoplastic.outer.adam import AdamLoop

        return AdamLoop(cfg)
    from evoplastic.outer.es import EvolutionLoop

    return EvolutionLoop(cfg)
