"""The seam between the shared machinery and a network family: what a family must provide.

A family is one inner-loop system (the paper's feed-forward network, the k-cap RNN, …). The
outer loops, the fitness reduction, MPI, the run record and analysis only see these
protocols, never a family's internals (learned_optimization's Task/TaskFamily, made typed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from evoplastic.core.evaluation import EvaluateSettings, Evaluation, Metric, RuleToScore


@dataclass(frozen=True)
class ThetaSpace:
    """The searched coefficients of a family's rule: start, ES scales and how to print them."""

    initial: tuple[float, ...]
    """θ at the start of a run, in the family's units (R values)."""
    scales: tuple[float, ...]
    """Units of θ per ES search unit, one per coordinate: ES searches θ / scale so O(1) steps fit."""
    labels: tuple[str, ...]
    """A short name per coordinate, e.g. 'θ_2' or 'in.hebb', for tables and plots."""
    formulas: tuple[str, ...] = ()
    """What each coordinate multiplies, for theta.json and reports (may be empty)."""
    adam_scales: tuple[float, ...] = ()
    """Per-coordinate step scales for a scaled Adam loop; empty: plain coordinates (all 1)."""
    no_gradient_reason: str = ""
    """Why the Adam loop cannot differentiate the meta-loss for this config (and what to use); empty if it can."""
    units: str = ""
    """What a θ value means, for plot axes (e.g. 'paper units, ΔW = -Σ θ_r T_r'); empty: the sign convention."""
    note: str = ""
    """A sentence above a table of θ values (units, conventions, differences from published code)."""
    reference: tuple[tuple[str, str], ...] = ()
    """(label, formula) rows a θ table lists even where this rule does not search them (e.g. a whole pool)."""

    def __post_init__(self) -> None:
        n = len(self.initial)
        for name in ("scales", "labels"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ThetaSpace.{name} has {len(getattr(self, name))} entries for {n} coordinates")

    @property
    def size(self) -> int:
        return len(self.initial)

    def initial_tensor(self) -> torch.Tensor:
        return torch.tensor(self.initial, dtype=torch.float64)

    def scale_tensor(self) -> torch.Tensor:
        return torch.tensor(self.scales, dtype=torch.float64)

    def adam_scale_tensor(self) -> torch.Tensor:
        return torch.tensor(self.adam_scales or (1.0,) * self.size, dtype=torch.float64)


class Batch(Protocol):
    """The T tasks (and initial states) of one step; a family's own dataclass."""

    @property
    def n_tasks(self) -> int: ...

    def subset(self, part: slice) -> Batch:
        """Tasks ``part`` as fresh tensors, so that a block's scores never depend on where it sat."""


class Problem(Protocol):
    """A family's scoring of candidate rules on seeded tasks; the fitness reduction is shared."""

    device: torch.device
    dtype: torch.dtype

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> Batch:
        """The T tasks of a step, rebuilt identically in any process from (seed, purpose, step)."""

    def scores(self, theta: torch.Tensor, batch: Batch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, T) meta-loss and accuracy of P candidates θ (P, R) on each task; differentiable iff θ
        requires grad. chunk: members per inner-loop call (0: the family's choice)."""

    def diagnostics(self, theta: torch.Tensor, step: int | str) -> dict[str, Any]:
        """Extra periodic measurements of the centre θ (R,), keyed 'eval/…' (may be empty)."""

    def run_notes(self) -> dict[str, Any]:
        """What the run record (meta.json) should keep about how this process computed."""


class Family(Protocol):
    """One network family: its θ space, config checks, problem and the words that describe its rules."""

    name: str

    def theta_space(self, cfg: Any) -> ThetaSpace:
        """The searched coordinates for this config (rule.theta_init overrides the start), and
        whether the Adam loop can differentiate its meta-loss."""

    def build_problem(self, cfg: Any, device: torch.device | None = None) -> Problem:
        """Load the family's data and make its Problem on device (default: the config's)."""

    def describe(self, cfg: Any) -> dict[str, Any]:
        """What theta.json should say about the rule besides θ (terms, formulas, activation, …)."""

    metrics: tuple[Metric, ...]
    """What evaluate scores per task; the first is the one paired differences and plots use."""

    def evaluate(self, cfg: Any, rules: list[RuleToScore], settings: EvaluateSettings) -> Evaluation:
        """The rules (and, with settings.baselines, the family's reference rules) on identical fresh tasks."""

    def rule_from_run(self, label: str, cfg: Any, theta: list[float]) -> RuleToScore:
        """A finished run's θ as a rule to evaluate (its config made fit for evaluation)."""

    def parse_rule(self, text: str) -> RuleToScore | None:
        """A rule written as text in this family's syntax (e.g. 'bio:0.013,-0.054,-0.0065'); None if not its syntax."""


class Benchmarked(Protocol):
    """What a family may add so that ``evoplastic bench`` describes and sizes its rows; both are optional (the
    suite then names the config's θ size and times a default set of member counts)."""

    bench_members: Mapping[str, tuple[int, ...]]
    """Members N of its no-grad rows per device kind ('cpu', 'cuda'), smallest first."""

    def describe_workload(self, cfg: Any) -> str:
        """One sentence: what one member-episode of cfg computes (network, samples, time steps, rule, read-out)."""
