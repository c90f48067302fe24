"""The paper family's evaluation: rules scored on the same fresh tasks and initial weights, with fa/bp baselines.

Every rule, baselines included, sees identical tasks (drawn from the seed only), so rows are paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from evoplastic.core.evaluation import EvaluateSettings, Evaluation, Metric, RuleToScore, ScoredRule, check_options
from evoplastic.core.fitness import FitnessFunction, score_in_blocks
from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import Dataset
from evoplastic.families.paper.problem import PaperProblem
from evoplastic.families.paper.rulespec import (
    BASELINE_THETA,
    PURPOSE,
    TASK_BLOCK,
    Rule,
    baseline_rules,
    evaluation_config,
    format_classes,
    held_out_classes,
    load_eval_dataset,
    parse_classes,
    task_config,
)
from evoplastic.families.paper.tasks import TaskSampler
from evoplastic.families.paper.transforms import Transform, transformed
from evoplastic.stats import mean_ci95

METRICS = (Metric("accuracy", True, percent=True), Metric("loss", False, digits=4))
"""Query accuracy (fraction) and cross-entropy per task."""

OPTIONS = ("dataset", "split", "classes", "n_way", "k_shot", "n_query", "relabel", "fa_theta", "bp_theta",
           "transform")
"""EvaluateSettings.options the paper family reads (the evaluate command's flags of the same names)."""


@dataclass
class RuleEvaluation:
    """Per-task query accuracy and cross-entropy (T,) of one rule."""

    rule: Rule
    task_accuracy: torch.Tensor
    task_loss: torch.Tensor

    @property
    def accuracy(self) -> float:
        return mean_ci95(self.task_accuracy)[0]

    @property
    def accuracy_ci95(self) -> float:
        return mean_ci95(self.task_accuracy)[1]

    @property
    def loss(self) -> float:
        return float(self.task_loss.double().mean())

    def difference(self, other: RuleEvaluation) -> tuple[float, float]:
        """Paired accuracy difference self - other over the same tasks: mean and 95 % CI."""
        return mean_ci95(self.task_accuracy - other.task_accuracy)

    def to_json(self) -> dict[str, Any]:
        cfg = self.rule.config
        return {"label": self.rule.label, "terms": list(self.rule.terms), "theta": list(self.rule.theta),
                "labels": list(self.rule.space.labels()), "feedback": cfg.network.feedback,
                "activation": cfg.network.activation, "dims": list(cfg.network.dims), "accuracy": self.accuracy,
                "accuracy_ci95": self.accuracy_ci95, "loss": self.loss,
                "task_accuracy": self.task_accuracy.tolist(), "task_loss": self.task_loss.tolist()}


def evaluate_rules(rules: list[Rule], dataset: Dataset, task: TaskConfig, n_tasks: int = 100, seed: int = 0,
                   device: str = "cpu", progress: bool = True) -> list[RuleEvaluation]:
    """Mean query accuracy of each rule on the same n_tasks tasks and initial weights (per seed).

    Builds on FitnessFunction: one θ (P = 1) per rule, tasks drawn in blocks of TASK_BLOCK.
    """
    if n_tasks < 1:
        raise ValueError(f"--tasks must be ≥ 1, got {n_tasks}")
    try:
        sampler = TaskSampler(dataset, task)
    except ValueError as err:
        raise ValueError(f"cannot draw evaluation tasks: {err}") from None
    configs = [evaluation_config(rule, task, dataset, seed, device) for rule in rules]
    scorers = [FitnessFunction(PaperProblem(cfg, sampler), cfg) for cfg in configs]
    bar = tqdm(total=n_tasks * len(rules), desc="evaluate", unit="task", disable=not progress, leave=False)
    results = []
    for rule, fitness in zip(rules, scorers):
        bar.set_postfix_str(rule.label[-30:])
        theta = torch.tensor(rule.theta, dtype=torch.float64)
        acc, loss = score_in_blocks(fitness, theta, n_tasks, TASK_BLOCK, lambda block, _: block, PURPOSE, bar.update)
        results.append(RuleEvaluation(rule, acc, loss))
    bar.close()
    return results


def evaluate(rules: list[RuleToScore], settings: EvaluateSettings) -> Evaluation:
    """The rules (and fa/bp baselines) on settings.tasks fresh tasks of a dataset (default: the first rule's,
    held-out classes when it trained on a subset); one Evaluation row per rule."""
    check_options(settings.options, OPTIONS, "paper")
    opt = settings.options
    own = [Rule(r.label, tuple(r.theta), r.config) for r in rules]
    rows = own + (baseline_rules(own[0], opt.get("fa_theta", BASELINE_THETA["fa"]),
                                 opt.get("bp_theta", BASELINE_THETA["bp"])) if settings.baselines else [])
    dataset = load_eval_dataset(own[0], opt.get("dataset"), opt.get("split"))
    if opt.get("transform"):
        dataset = transformed(dataset, opt["transform"])
    classes = opt.get("classes")
    classes = parse_classes(classes) if isinstance(classes, str) else tuple(classes or ()) or \
        held_out_classes(own, dataset)
    task = task_config(own[0], dataset, classes, opt.get("split"), n_way=opt.get("n_way"),
                       k_shot=opt.get("k_shot"), n_query=opt.get("n_query"), relabel=opt.get("relabel"))
    results = evaluate_rules(rows, dataset, task, settings.tasks, settings.seed, settings.device, settings.progress)
    scored = [ScoredRule(r.rule.label, {"accuracy": r.task_accuracy.double().numpy(),
                                        "loss": r.task_loss.double().numpy()}, tuple(r.rule.theta)) for r in results]
    stress = f" through {Transform.parse(opt['transform'])}" if opt.get("transform") else ""
    description = (f"{settings.tasks} tasks of {task.dataset}{stress} ({task.split}), classes "
                   f"{format_classes(task.classes)}: {task.n_way}-way, {task.k_shot} online samples and "
                   f"{task.n_query} query images per class, seed={settings.seed}; mean ± 95 % CI over tasks, rows "
                   f"on identical tasks")
    return Evaluation(METRICS, scored, description)

