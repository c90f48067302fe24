"""Tables of per-task scores: mean ± 95 % CI per row and metric, per group (dataset) and overall.

Renders what a family's evaluation returns (rows of per-task metrics on identical tasks), so it
knows nothing about any family; the first row is the reference for paired differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evoplastic.core.evaluation import Evaluation
from evoplastic.stats import mean_ci95, paired_difference

PERCENT = {"probe_accuracy", "probe_error", "accuracy"}
"""Metrics shown in percent."""


def _cell(values: torch.Tensor, percent: bool) -> str:
    values = values[torch.isfinite(values)]
    if not len(values):
        return "—"
    mean, ci = mean_ci95(values) if len(values) > 1 else (float(values[0]), float("nan"))
    scale = 100 if percent else 1
    return f"{scale * mean:.2f} ± {scale * ci:.2f}" if percent else f"{mean:.4f} ± {ci:.4f}"


def markdown_table(rows: list[tuple[str, dict[str, torch.Tensor]]], metrics: tuple[str, ...],
                   mask: torch.Tensor | None = None, reference_metric: str = "") -> str:
    """One markdown table: a row per entry, mean ± 95 % CI per metric, paired Δ of reference_metric (default:
    the first metric) vs row 1."""
    reference_metric = reference_metric or metrics[0]
    header = ["row", *metrics, f"Δ {reference_metric} vs row 1 (paired)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = rows[0][1][reference_metric]
    for i, (label, scores) in enumerate(rows):
        pick = (lambda t: t[mask]) if mask is not None else (lambda t: t)
        cells = [_cell(pick(scores[m]), m in PERCENT) for m in metrics]
        if i == 0:
            diff = "—"
        else:
            ok = torch.isfinite(pick(scores[reference_metric])) & torch.isfinite(pick(first))
            mean, ci = paired_difference(pick(scores[reference_metric])[ok], pick(first)[ok])
            scale = 100 if reference_metric in PERCENT else 1
            diff = f"{scale * mean:+.2f} ± {scale * ci:.2f}"
        lines.append("| " + " | ".join([label, *cells, diff]) + " |")
    return "\n".join(lines)


@dataclass
class GroupedRows:
    """Rows (label, {metric: (T,) float64}) with each task's group, as the grouped tables take them."""

    rows: list[tuple[str, dict[str, torch.Tensor]]]
    groups: torch.Tensor
    group_names: tuple[str, ...]


def grouped_rows(evaluation: Evaluation, fallback_group: str = "all") -> GroupedRows:
    """An Evaluation's rows as tensors per metric and its tasks' groups (one group, fallback_group, if it has none)."""
    rows = [(row.label, {name: torch.as_tensor(np.asarray(values, dtype=float)) for name, values in
                         row.per_task.items()}) for row in evaluation.rows]
    n_tasks = len(evaluation.rows[0].per_task[evaluation.primary.name]) if evaluation.rows else 0
    if evaluation.groups is None:
        return GroupedRows(rows, torch.zeros(n_tasks, dtype=torch.long), (fallback_group,))
    return GroupedRows(rows, torch.as_tensor(np.asarray(evaluation.groups), dtype=torch.long),
                       tuple(evaluation.group_names))


def grouped_tables(evaluated: Any, metrics: tuple[str, ...]) -> str:
    """A table per group with tasks in it (e.g. per dataset), then one over all tasks."""
    parts = []
    for index, name in enumerate(evaluated.group_names):
        mask = evaluated.groups == index
        if mask.any():
            parts.append(f"**{name}** ({int(mask.sum())} tasks)\n\n" + markdown_table(evaluated.rows, metrics, mask))
    if len(parts) > 1:
        parts.append(f"**all** ({len(evaluated.groups)} tasks)\n\n" + markdown_table(evaluated.rows, metrics))
    return "\n\n".join(parts)


def rows_to_json(evaluated: Any) -> dict[str, Any]:
    """Per-task scores of every row, for --json."""
    return {"groups": evaluated.groups.tolist(), "group_names": list(evaluated.group_names),
            "rows": [{"label": label, **{k: v.tolist() for k, v in scores.items()}}
                     for label, scores in evaluated.rows]}
