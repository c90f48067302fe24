"""Evolution strategies over θ (evotorch): no graph, the whole population in one call.

The search runs in scaled coordinates c = θ / scale (the family's ThetaSpace) so that O(1)
steps suit every coordinate; θ is reported in the family's units. evotorch is imported lazily (it pulls
in ray at import time): only ``outer.select`` imports this module, so the CLI starts instantly.
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings
from typing import Any

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from evotorch import Problem, algorithms

from evoplastic.config import ESConfig, ExperimentConfig
from evoplastic.core.family import ThetaSpace
from evoplastic.outer.base import Evaluate

logging.getLogger("evotorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)


class ThetaProblem(Problem):
    """Candidates are scaled θ coordinates; a per-step hook maps θ (paper units) to Evaluation."""

    def __init__(self, n_coords: int, scale: torch.Tensor, seed: int) -> None:
        super().__init__("min", solution_length=n_coords, dtype=torch.float64, seed=seed, initial_bounds=(-1.0, 1.0))
        self.scale = scale
        self.hook: Evaluate | None = None
        self.last: tuple[torch.Tensor, Any] | None = None

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["hook"], state["last"] = None, None  # closures over data and communicators stay out
        return state

    def _evaluate_batch(self, batch: Any) -> None:
        coords = batch.values.clone().as_subclass(torch.Tensor)
        theta = coords[:, : len(self.scale)] * self.scale
        evaluation = self.hook(theta)
        batch.set_evals(evaluation.fitness.detach().to(torch.float64).cpu())
        self.last = (theta, evaluation)


def _make_searcher(es: ESConfig, problem: Any, center: torch.Tensor) -> Any:
    """The configured evotorch algorithm, centred on the initial θ coordinates."""
    common = dict(popsize=es.population_size, stdev_init=es.stdev_init, center_init=center)
    if es.algorithm == "cmaes":
        return algorithms.CMAES(problem, separable=es.separable, **common)
    if es.algorithm == "pgpe":
        optimizer_config = {"max_speed": es.max_speed or 2 * es.center_lr} if es.optimizer == "clipup" else {}
        if es.population_size % 2:
            raise ValueError(f"PGPE samples symmetric pairs: es.population_size must be even, got {es.population_size}")
        return algorithms.PGPE(problem, center_learning_rate=es.center_lr, stdev_learning_rate=es.stdev_lr,
                               optimizer=es.optimizer, optimizer_config=optimizer_config, **common)
    if es.algorithm in ("snes", "xnes"):
        cls = algorithms.SNES if es.algorithm == "snes" else algorithms.XNES
        return cls(problem, stdev_learning_rate=es.stdev_lr, **common)
    return algorithms.CEM(problem, parenthood_ratio=es.parenthood_ratio, **common)


class EvolutionLoop:
    """One generation per step: sample a population, score it with no graph, update."""

    needs_grad = False

    def __init__(self, cfg: ExperimentConfig, space: ThetaSpace):
        self.scale = space.scale_tensor()
        center = space.initial_tensor() / self.scale
        if cfg.es.algorithm == "cmaes" and len(center) == 1:
            # evotorch's CMAES cannot start in 1-D: add an ignored dummy coordinate
            center = torch.cat([center, center.new_zeros(1)])
        self.problem = ThetaProblem(len(center), self.scale, cfg.seed)
        self.searcher = _make_searcher(cfg.es, self.problem, center)

    def center(self) -> torch.Tensor:
        coords = torch.as_tensor(self.searcher.status["center"]).as_subclass(torch.Tensor)
        return coords[: len(self.scale)].double() * self.scale

    def step(self, evaluate: Evaluate) -> dict[str, Any]:
        start = time.perf_counter()
        self.problem.hook = evaluate
        self.searcher.step()
        theta, ev = self.problem.last
        self.problem.hook, self.problem.last = None, None
        ok = ~ev.diverged
        fit = ev.fitness.detach().double().cpu()
        finite = fit[ok.cpu()] if ok.any() else fit
        best = int(torch.argmin(fit))
        return {
            "fitness/best": float(fit[best]),
            "fitness/mean": float(finite.mean()),
            "fitness/median": float(finite.median()),
            "fitness/members": fit.tolist(),
            "train/loss": float(ev.loss.detach()[ok].mean()) if ok.any() else float("nan"),
            "train/accuracy": float(ev.accuracy[ok].mean()) if ok.any() else float("nan"),
            "train/best_accuracy": float(ev.accuracy[best]),
            "theta/center": self.center().tolist(),
            "theta/best": theta[best].tolist(),
            "es/diverged": int(ev.diverged.sum()),
            "es/stdev": float(torch.as_tensor(self._spread()).double().mean()),
            "time/step_seconds": time.perf_counter() - start,
            "budget/episodes": len(fit) * ev.n_tasks,
        }

    def _spread(self) -> Any:
        status = self.searcher.status
        return status["stdev"] if "stdev" in status else status["stepsize"]

    def state_dict(self) -> dict[str, Any]:
        return {"searcher": pickle.dumps(self.searcher)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.searcher = pickle.loads(state["searcher"])
        self.problem = self.searcher.problem
