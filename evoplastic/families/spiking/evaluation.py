"""Spiking rules beside e-prop (fa, bp, dfa) and the rate network's fa/bp, all on identical fresh tasks.

Every row sees the same tasks, drawn in blocks from (seed, block) only, with the same initial W
(and, for Bernoulli input, the same input spikes); so rows are paired and scores stay per task.
The e-prop baselines use spiking.baseline_lr, or when it is 0 the best rate of LR_GRID on
separate tuning tasks (drawn from the same classes, never the scored tasks); the rate network's
fa/bp rows (the paper family's softplus network of the same widths: the price of spiking) are
tuned over RATE_GRID the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.inner import run_episode as rate_episode
from evoplastic.families.paper.network import init_network as rate_init
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.tasks import TaskBatch, TaskSampler
from evoplastic.families.spiking.config import FEEDBACK_MODES
from evoplastic.families.spiking.problem import SpikingBatch, SpikingProblem
from evoplastic.seeding import make_generator

PURPOSE = "evaluate"
"""Random-stream key of evaluation tasks, distinct from training's draws."""
TASK_BLOCK = 50
"""Tasks per draw; block b's tasks depend only on (seed, b)."""
LR_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Learning rates (θ_eprop) the e-prop baselines are tuned over when spiking.baseline_lr is 0."""
TUNE_TASKS = 20
"""Tuning tasks per baseline (purpose 'tune', disjoint draws from the scored ones)."""
RATE_GRID = (0.003, 0.006, 0.012, 0.025, 0.05, 0.1, 0.2)
"""θ_0 the rate network's fa/bp baselines are tuned over (the paper family's default is 0.012 on EMNIST)."""
RATE_MODES = ("fa", "bp")
METRICS = ("accuracy", "loss")
RULE_FIELDS = ("terms", "per_layer", "feedback")
"""Spiking fields that shape a rule, taken from each rule's own config; the rest (dynamics, data) come
from the evaluation's config, so every row sees the same network and tasks."""


@dataclass
class Row:
    """One row: its label, θ and per-task scores {metric: (T,) float64 on the CPU}."""

    label: str
    theta: tuple[float, ...]
    per_task: dict[str, torch.Tensor]


def rule_problem(cfg, sampler: TaskSampler, own=None, feedback: str | None = None,
                 terms: tuple[str, ...] | None = None) -> SpikingProblem:
    """The evaluation's problem with a rule's θ space (its terms, per_layer, feedback)."""
    spiking = cfg.spiking
    if own is not None:
        spiking = replace(spiking, **{key: getattr(own.spiking, key) for key in RULE_FIELDS})
    if terms is not None:
        spiking = replace(spiking, terms=terms, per_layer=False)
    return SpikingProblem(replace(cfg, spiking=spiking), sampler, feedback=feedback)


def scored(problem: SpikingProblem, theta: torch.Tensor, batch: SpikingBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, T) loss and accuracy of P θ rows on a batch whose W and B match the problem's feedback."""
    with torch.no_grad():
        return problem.scores(theta.to(problem.device, problem.dtype), batch)


def tune_baseline(cfg, sampler: TaskSampler, mode: str) -> float:
    """The e-prop learning rate of LR_GRID with the best mean accuracy (then loss) on TUNE_TASKS tasks."""
    if cfg.spiking.baseline_lr > 0:
        return cfg.spiking.baseline_lr
    problem = rule_problem(cfg, sampler, feedback=mode, terms=("eprop",))
    batch = problem.draw(f"baseline/{mode}", "tune", TUNE_TASKS)
    return best(LR_GRID, *scored(problem, torch.tensor(LR_GRID, dtype=torch.float64).view(-1, 1), batch))


def rate_scores(cfg, batch: SpikingBatch, mode: str, block: str,
                thetas: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, T) scores of the paper family's softplus network of the same widths (fa or bp, θ_0 = each of thetas)
    on the batch's images, initial W from (seed, block)."""
    t = batch.tasks
    tasks = TaskBatch(t.train_x, t.train_y, t.query_x, t.query_y, torch.zeros(t.n_tasks, 1, dtype=torch.long))
    net = NetworkConfig(dims=cfg.spiking.dims, feedback=mode)
    init = rate_init(net, t.n_tasks, make_generator(cfg.seed, PURPOSE, "rate-init", block), t.train_x.dtype)
    theta = torch.tensor(thetas, dtype=t.train_x.dtype).repeat_interleave(t.n_tasks).view(-1, 1)
    with torch.no_grad():
        result = rate_episode(theta, (0,), tasks, init, make_activation(net))
    return result.loss.view(len(thetas), -1), result.accuracy.view(len(thetas), -1)


def best(grid: tuple[float, ...], loss: torch.Tensor, acc: torch.Tensor) -> float:
    """The grid value of the best mean accuracy, ties broken by the lower mean loss (P, T scores)."""
    key = [(-float(a), float(n)) for a, n in zip(acc.double().mean(1), loss.double().nan_to_num(1e9).mean(1))]
    return grid[min(range(len(grid)), key=key.__getitem__)]


def tune_rate(cfg, sampler: TaskSampler, mode: str) -> float:
    """The rate network's θ_0 of RATE_GRID that scores best on the tuning tasks."""
    batch = rule_problem(cfg, sampler, feedback="bp").draw(f"rate/{mode}", "tune", TUNE_TASKS)
    return best(RATE_GRID, *rate_scores(cfg, batch, mode, f"tune/{mode}", RATE_GRID))


def evaluate_rules(cfg, sampler: TaskSampler, rules: list[tuple], n_tasks: int, baselines: bool = True,
                   progress=None) -> list[Row]:
    """Rows for each (label, θ, own config or None) and, with baselines, e-prop fa/bp/dfa and the rate net's fa/bp.

    cfg.seed keys the tasks: block b is drawn under (seed, 'evaluate', b) whatever else is scored.
    """
    if n_tasks < 1:
        raise ValueError(f"--tasks must be ≥ 1, got {n_tasks}")
    problems = [(label, torch.tensor(theta, dtype=torch.float64).view(1, -1), rule_problem(cfg, sampler, own))
                for label, theta, own in rules]
    lrs = {mode: tune_baseline(cfg, sampler, mode) for mode in FEEDBACK_MODES} if baselines else {}
    eprop = [(f"e-prop {mode} (lr {lr:g})", torch.tensor([[lr]], dtype=torch.float64),
              rule_problem(cfg, sampler, feedback=mode, terms=("eprop",))) for mode, lr in lrs.items()]
    labels = [label for label, _, _ in problems + eprop]
    rate = {mode: tune_rate(cfg, sampler, mode) for mode in RATE_MODES} if baselines else {}
    labels += [f"rate network {mode} (θ_0 {theta:g})" for mode, theta in rate.items()]
    thetas = [tuple(theta.view(-1).tolist()) for _, theta, _ in problems + eprop]
    thetas += [(theta,) for theta in rate.values()]
    scores: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in labels]
    for block, start in enumerate(range(0, n_tasks, TASK_BLOCK)):
        count = min(TASK_BLOCK, n_tasks - start)
        batches: dict[str, SpikingBatch] = {}
        for i, (_, theta, problem) in enumerate(problems + eprop):
            if problem.feedback not in batches:  # one draw per feedback mode: same tasks, W and spikes
                batches[problem.feedback] = problem.draw(block, PURPOSE, count)
            loss, acc = scored(problem, theta, batches[problem.feedback])
            scores[i].append((loss[0], acc[0]))
        if baselines:
            some = next(iter(batches.values()))
            for j, (mode, theta) in enumerate(rate.items()):
                loss, acc = rate_scores(cfg, some, mode, str(block), (theta,))
                scores[len(problems) + len(eprop) + j].append((loss[0], acc[0]))
        if progress is not None:
            progress(count)
    return [Row(label, theta, {"accuracy": torch.cat([s[1] for s in rows]).double().cpu(),
                               "loss": torch.cat([s[0] for s in rows]).double().cpu()})
            for label, theta, rows in zip(labels, thetas, scores)]
