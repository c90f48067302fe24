"""Rules and the paper's baselines scored on identical fresh tasks: what ``evoplastic evaluate`` shows for k-cap runs.

Every row — each rule, the untrained k-cap RNN, the raw 10-D input and (optionally) the backprop
RNN and MLP autoencoders — sees the same tasks, drawn in blocks from (seed, block) only, so rows
are paired; scores stay per task (T,) for confidence intervals and per-dataset tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.families.kcap.baselines import AutoencoderConfig, autoencoder_scores, untrained_scores
from evoplastic.families.kcap.config import DATASETS
from evoplastic.families.kcap.metrics import raw_scores
from evoplastic.families.kcap.problem import KcapBatch, KcapProblem
from evoplastic.families.kcap.rulespec import parse_rule
from evoplastic.seeding import make_generator

PURPOSE = "evaluate"
"""Random-stream key of evaluation tasks, distinct from training's train/eval/final draws."""
TASK_BLOCK = 50
"""Tasks per draw; block b's tasks depend only on (seed, b)."""
METRICS = ("probe_accuracy", "probe_loss", "ae_mse", "emd")
"""Scores every row reports (NaN where a row has none, e.g. the raw input's read-out MSE)."""
AUTOENCODERS = {"backprop RNN autoencoder (tanh)": AutoencoderConfig(kind="rnn"),
                "backprop MLP autoencoder (tanh)": AutoencoderConfig(kind="mlp")}
"""The paper's Fig. 2 comparison: same widths and depth, smooth activation, Adam on the task's stream."""


@dataclass
class Evaluated:
    """Per-task scores of every row on the same T tasks, and which dataset each task came from."""

    rows: list[tuple[str, dict[str, torch.Tensor]]]
    """(label, {metric: (T,) float64}) in display order."""
    groups: torch.Tensor
    """(T,) dataset index of each task."""
    group_names: tuple[str, ...]


RULE_FIELDS = ("rule", "terms", "per_matrix", "plastic", "normalise", "mlp_hidden")
"""KcapConfig fields that shape a rule's θ, taken from each rule's own config; data and network
fields come from the evaluation's config, so every rule sees the same tasks and initial networks."""


def _rule_problem(problem: KcapProblem, own: ExperimentConfig | None) -> KcapProblem:
    """The evaluation's problem with a rule's own θ space (pool or MLP, terms, blocks, normalisation)."""
    if own is None:
        return problem
    kcap = replace(problem.kcap, **{key: getattr(own.kcap, key) for key in RULE_FIELDS})
    return KcapProblem(replace(problem.cfg, kcap=kcap), problem.device)


CONTROLS = ("kcap:hebb=0.01", "kcap:hebb=0")
"""Control rules a table shows with controls=True: the untuned start every search begins from
(hebb 0.01, the rest 0) and θ = 0 (row normalisation only); learned rules are judged against the first."""


def control_rules(cfg: ExperimentConfig, rules: list[tuple]) -> list[tuple]:
    """The CONTROLS as (label, θ, config) rules in cfg's network, except those already among rules."""
    present = {rule[0] for rule in rules}
    out = []
    for spec in CONTROLS:
        if spec not in present:
            label, theta, kcap = parse_rule(spec, cfg.kcap)
            out.append((label, torch.tensor(theta, dtype=torch.float64), replace(cfg, kcap=kcap)))
    return out


def _block_rows(problem: KcapProblem, batch: KcapBatch, rules: list[tuple], baselines: bool,
                autoencoders: bool, block: str, controls: bool = False) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Every row's scores on one block of tasks."""
    cfg, tasks = problem.kcap, batch.tasks
    score = lambda chosen: [(label, _rule_problem(problem, own[0] if own else None).pair_scores(
        theta.view(1, -1).to(problem.device, problem.dtype), batch)) for label, theta, *own in chosen]
    rows = score(rules)
    if baselines:
        with torch.no_grad():
            rows.append(("untrained k-cap RNN", untrained_scores(tasks, batch.init, cfg)))
            rows.append(("raw 10-D input", raw_scores(tasks, cfg)))
    if controls:
        rows += score(control_rules(problem.cfg, rules))
    if autoencoders:
        for label, ae in AUTOENCODERS.items():
            generator = make_generator(problem.cfg.seed, PURPOSE, "autoencoder", label, block)
            rows.append((label, {k: v.detach() for k, v in autoencoder_scores(tasks, cfg, ae, generator).items()}))
    return rows


def evaluate(cfg: ExperimentConfig, rules: list[tuple], n_tasks: int = 100, seed: int = 0,
             baselines: bool = True, autoencoders: bool = False, device: str = "cpu",
             controls: bool = False) -> Evaluated:
    """Scores (T,) of each (label, θ (R,)[, its config]) rule and the baselines on n_tasks tasks of each dataset.

    With controls, the control rules (CONTROLS: the untuned start and θ = 0, those not among the rules)
    follow the baselines.

    Tasks of dataset d, block b depend only on (seed, d, b): adding a dataset or a row changes no other cell.
    """
    if n_tasks < 1:
        raise ValueError(f"--tasks must be ≥ 1, got {n_tasks}")

    blocks, groups = [], []
    for name in cfg.kcap.datasets:
        one = replace(cfg, seed=seed, device=device, kcap=replace(cfg.kcap, datasets=(name,)))
        problem = KcapProblem(one)
        for block, start in enumerate(range(0, n_tasks, TASK_BLOCK)):
            batch = problem.draw(f"{name}/{block}", PURPOSE, min(TASK_BLOCK, n_tasks - start))
            blocks.append(_block_rows(problem, batch, rules, baselines, autoencoders, f"{name}/{block}", controls))
            groups.append(torch.full((batch.n_tasks,), DATASETS.index(name), dtype=torch.long))
    rows = []
    for i, (label, _) in enumerate(blocks[0]):
        per_task = {m: torch.cat([_metric(b[i][1], m) for b in blocks]) for m in METRICS}
        rows.append((label, per_task))
    return Evaluated(rows, torch.cat(groups), DATASETS)


def _metric(scores: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """One metric (T,) as float64 on the CPU; NaN when the row has no such score."""
    if name in scores:
        return scores[name].detach().double().cpu()
    return torch.full((len(next(iter(scores.values()))),), float("nan"), dtype=torch.float64)
