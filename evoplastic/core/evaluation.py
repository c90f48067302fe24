"""What a family's evaluation returns: named metrics per rule and per task, on identical (paired) tasks.

``Family.evaluate(cfg, rules, settings) -> Evaluation``; analysis and the Python API render tables and
plots from the metrics a family declares, never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evoplastic import stats


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    return stats.mean_ci95(torch.as_tensor(np.asarray(values, dtype=float)))


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    return stats.paired_difference(torch.as_tensor(a), torch.as_tensor(b))


@dataclass(frozen=True)
class Metric:
    """One score a family reports per task, e.g. Metric('accuracy', True, percent=True)."""

    name: str
    higher_is_better: bool
    percent: bool = False
    """Stored as a fraction, shown ×100 with a % sign."""
    digits: int = 2
    """Decimals when printed (after the ×100 of a percent)."""

    def format(self, value: float) -> str:
        return f"{100 * value if self.percent else value:.{self.digits}f}"


@dataclass(frozen=True)
class RuleToScore:
    """A rule to evaluate: a label, its coefficients in the family's units and the config they mean."""

    label: str
    theta: tuple[float, ...]
    config: Any


class UnknownSettingError(ValueError):
    """EvaluateSettings.options named a setting the family's evaluation does not take."""


def check_options(options: dict[str, Any], known: tuple[str, ...] | set[str], family: str) -> None:
    """An UnknownSettingError naming the options a family does not take and those it does."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnknownSettingError(f"unknown evaluation setting(s) {', '.join(unknown)} for the {family} family; "
                                  f"known: {', '.join(sorted(known)) or 'none'}")


@dataclass(frozen=True)
class EvaluateSettings:
    """How many fresh tasks and which seed (same seed ⇒ same tasks and initial weights), plus family options."""

    tasks: int = 100
    seed: int = 0
    device: str = "cpu"
    baselines: bool = True
    """Also score the family's reference rules (e.g. fa and bp) on the same tasks."""
    progress: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    """Family-specific settings (dataset, classes, … for the paper family); a family names unknown ones."""


@dataclass
class ScoredRule:
    """One row: a rule (or baseline) and its per-task values of each metric (T,)."""

    label: str
    per_task: dict[str, np.ndarray]
    theta: tuple[float, ...] = ()
    group: str = ""
    """A sub-population of tasks the row belongs to (e.g. a dataset); '' for all."""


@dataclass
class Evaluation:
    """Rows scored on identical tasks: the first row is the reference for paired differences."""

    metrics: tuple[Metric, ...]
    rows: list[ScoredRule]
    description: str = ""
    groups: np.ndarray | None = None
    """(T,) index into group_names of each task's sub-population (e.g. its dataset); None: one group."""
    group_names: tuple[str, ...] = ()
    """Names of the groups, for per-group tables (e.g. the datasets of k-cap's tasks)."""

    @property
    def per_task(self) -> dict[str, dict[str, np.ndarray]]:
        """Row label -> metric name -> values per task."""
        return {row.label: row.per_task for row in self.rows}

    @property
    def primary(self) -> Metric:
        """The metric paired differences are taken of (the first declared)."""
        return self.metrics[0]

    def table(self) -> Any:
        """A pandas DataFrame: one row per rule, each metric's mean and 95 % CI over tasks, and the paired
        difference of the primary metric to the first row (mean and CI)."""
        import pandas as pd

        records = []
        first = self.rows[0].per_task[self.primary.name] if self.rows else None
        for row in self.rows:
            record: dict[str, Any] = {"rule": row.label}
            for metric in self.metrics:
                values = _finite(row.per_task.get(metric.name))
                mean, ci = mean_ci95(values) if len(values) else (float("nan"), float("nan"))
                record[metric.name], record[f"{metric.name}_ci95"] = mean, ci
            record[f"delta_{self.primary.name}"], record[f"delta_{self.primary.name}_ci95"] = self._delta(row, first)
            record["tasks"] = len(row.per_task[self.primary.name])
            records.append(record)
        return pd.DataFrame.from_records(records).set_index("rule")

    def _delta(self, row: ScoredRule, first: np.ndarray | None) -> tuple[float, float]:
        if first is None or row is self.rows[0]:
            return 0.0, 0.0
        values = np.asarray(row.per_task[self.primary.name], dtype=float)
        ok = np.isfinite(values) & np.isfinite(first)
        return paired_difference(values[ok], np.asarray(first, dtype=float)[ok]) if ok.sum() > 1 else (np.nan, np.nan)

    def to_text(self) -> str:
        """A plain-text table as the CLI prints it: mean ± 95 % CI, paired Δ vs the first row."""
        head = ["rule", *(m.name + (" (%)" if m.percent else "") for m in self.metrics),
                f"Δ {self.primary.name} vs first (paired)"]
        table = self.table()
        lines = [head]
        for label, rec in table.iterrows():
            cells = [str(label)] + [f"{m.format(rec[m.name])} ± {m.format(rec[m.name + '_ci95'])}"
                                    for m in self.metrics]
            delta = (rec[f"delta_{self.primary.name}"], rec[f"delta_{self.primary.name}_ci95"])
            cells.append("—" if label == table.index[0] else f"{self.primary.format(delta[0])} ± "
                                                             f"{self.primary.format(delta[1])}")
            lines.append(cells)
        widths = [max(len(r[c]) for r in lines) for c in range(len(head))]
        text = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.description] if self.description else []) + text)

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "metrics": [m.name for m in self.metrics],
                "rows": [{"label": r.label, "theta": list(r.theta), "group": r.group,
                          "per_task": {k: np.asarray(v).tolist() for k, v in r.per_task.items()}} for r in self.rows],
                "groups": None if self.groups is None else np.asarray(self.groups).tolist(),
                "group_names": list(self.group_names)}


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values if values is not None else [], dtype=float)
    return array[np.isfinite(array)]
