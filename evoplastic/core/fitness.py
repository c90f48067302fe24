"""Meta-loss of candidate rules, shared by every family: mean task loss over T common tasks + λ‖θ‖₁.

Every candidate of a step sees the same T tasks and initial states (common random numbers),
drawn by the family's Problem from (run seed, step) so that any process rebuilds them. Here:
the L1 term, NaN-safety and the reduction of a (P, T) score matrix to what an outer loop ranks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evoplastic.core.family import Batch, Problem

DIVERGED_FITNESS = 1e6
"""Finite worst value given to a candidate whose episode produced NaN/inf."""
MEMORY_FRACTION = 0.5
"""Share of the free memory one inner-loop call may fill when es.member_chunk is 0."""


@dataclass
class Evaluation:
    """Scores of P candidates; fitness is what the outer loop minimises."""

    loss: torch.Tensor
    """(P,) mean meta-loss over the T tasks (NaN/inf when diverged)."""
    accuracy: torch.Tensor
    """(P,) mean query accuracy over the T tasks."""
    fitness: torch.Tensor
    """(P,) objective (config objective.reduce of the task scores) + λ‖θ‖₁, with DIVERGED_FITNESS for
    diverged candidates when sanitised."""
    diverged: torch.Tensor
    """(P,) bool: the candidate's loss was not finite."""
    task_loss: torch.Tensor | None = None
    """(P, T) meta-loss of each candidate on each task."""
    task_accuracy: torch.Tensor | None = None
    """(P, T) query accuracy of each candidate on each task."""

    @property
    def n_tasks(self) -> int:
        """Tasks each candidate was scored on (inner-loop episodes per candidate)."""
        return 1 if self.task_loss is None else self.task_loss.shape[1]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an unavailable CUDA device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device


def free_memory(device: torch.device) -> int | None:
    """Bytes free on the GPU, or available RAM (Linux MemAvailable) on CPU; None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return int(re.search(r"MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def members_that_fit(free_bytes: int | None, pair_bytes: int, n_tasks: int) -> int:
    """Members (each with n_tasks pairs) per call within MEMORY_FRACTION of free_bytes; 0: no limit known."""
    if free_bytes is None:
        return 0
    return max(1, math.floor(MEMORY_FRACTION * free_bytes / (pair_bytes * n_tasks)))


def reduce_tasks(task_loss: torch.Tensor, task_accuracy: torch.Tensor, objective: Any) -> torch.Tensor:
    """(P,) meta-objective of (P, T) task scores: mean loss, mean error, CVaR of the loss, or mean + κ·std.

    A candidate with any non-finite task loss gets a non-finite objective (it diverged), whatever
    the reduction; CVaR averages the ⌈q·T⌉ largest losses.
    """
    if objective.reduce == "mean":
        return task_loss.mean(1)
    finite = torch.isfinite(task_loss).all(1)
    if objective.reduce == "error":
        value = 1 - task_accuracy.to(task_loss.dtype).mean(1)
    elif objective.reduce == "cvar":
        worst = max(1, math.ceil(objective.cvar_fraction * task_loss.shape[1]))
        value = task_loss.topk(worst, dim=1).values.mean(1)
    else:
        spread = task_loss.std(1) if task_loss.shape[1] > 1 else torch.zeros_like(task_loss[:, 0])
        value = task_loss.mean(1) + objective.std_weight * spread
    return torch.where(finite, value, torch.full_like(value, float("nan")))


def sanitise(loss: torch.Tensor, penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fitness with non-finite entries replaced by DIVERGED_FITNESS, and the diverged mask."""
    fitness = loss + penalty
    diverged = ~torch.isfinite(fitness)
    return torch.where(diverged, torch.full_like(fitness, DIVERGED_FITNESS), fitness), diverged


class FitnessFunction:
    """Scores candidate θ (P, R) on the tasks of a step: the family's Problem, then the shared reduction."""

    def __init__(self, problem: Problem, cfg: Any):
        self.problem = problem
        self.cfg = cfg
        self.device, self.dtype = problem.device, problem.dtype

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> Batch:
        return self.problem.draw(step, purpose, n_tasks)

    def scores(self, theta: torch.Tensor, batch: Batch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.problem.scores(theta, batch, chunk)

    def diagnostics(self, theta: torch.Tensor, step: int | str) -> dict[str, Any]:
        return self.problem.diagnostics(theta, step)

    def run_notes(self) -> dict[str, Any]:
        return self.problem.run_notes()

    def __call__(self, theta: torch.Tensor, step: int | str, purpose: str = "train", n_tasks: int = 0) -> Evaluation:
        """Evaluate (P, R) candidates on step's tasks; differentiable iff θ requires grad."""
        theta = theta.to(self.device, self.dtype)
        batch = self.problem.draw(step, purpose, n_tasks or self.cfg.tasks_per_step)
        task_loss, task_acc = self.problem.scores(theta, batch, self.cfg.es.member_chunk)
        return self.evaluation(theta, task_loss, task_acc)

    def evaluation(self, theta: torch.Tensor, task_loss: torch.Tensor, task_acc: torch.Tensor) -> Evaluation:
        """Reduce (P, T) scores to an Evaluation: the objective's task reduction + λ‖θ‖₁, sanitised unless
        differentiable; loss and accuracy stay task means (what the logs and tables report)."""
        loss, acc = task_loss.mean(1), task_acc.detach().mean(1)
        objective = reduce_tasks(task_loss, task_acc, self.cfg.objective)
        penalty = self.cfg.rule.l1 * theta.abs().sum(1)
        if theta.requires_grad and torch.is_grad_enabled():
            fitness = objective + penalty
            diverged = ~torch.isfinite(fitness.detach())
        else:
            fitness, diverged = sanitise(objective, penalty)
        return Evaluation(loss, acc, fitness, diverged, task_loss.detach(), task_acc.detach())


def score_in_blocks(score: Callable[..., Evaluation], theta: torch.Tensor, n_tasks: int, block_size: int,
                    key: Callable[[int, int], int | str], purpose: str,
                    on_block: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task accuracy and loss (T,) float64 on the CPU of one θ (R,) on n_tasks fresh tasks.

    Tasks are drawn block_size at a time (bounding memory), block b's under key(b, first task),
    so a block's tasks never depend on how many others were asked for; score is a FitnessFunction
    or its MPI wrapper, (θ (P, R), step key, purpose, n_tasks) -> Evaluation.
    """
    accs, losses = [], []
    for block, start in enumerate(range(0, n_tasks, block_size)):
        count = min(block_size, n_tasks - start)
        with torch.no_grad():
            ev = score(theta.unsqueeze(0), key(block, start), purpose, count)
        accs.append(ev.task_accuracy.reshape(-1).cpu().double())
        losses.append(ev.task_loss.reshape(-1).cpu().double())
        if on_block is not None:
            on_block(count)
    return torch.cat(accs), torch.cat(losses)
