"""Compare runs side by side: report.md and PNGs in one directory.

Final θ per coordinate (named by each run's θ space), the settings the runs' family describes,
accuracy/loss against step, wall-clock seconds and inner-loop episodes spent, θ trajectories,
alignment angles (when the runs logged them), and every run's rule scored on the same held-out
tasks, one seed: identical tasks and initial weights for all. The paper family's rules go
through evaluate.py's functions; a family with its own ``evaluate`` (k-cap) scores them itself.
All runs of a report belong to one family.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoplastic.analysis import evaluate
from evoplastic.analysis.evaluate import Rule, RuleEvaluation
from evoplastic.analysis.report import family_settings, sign_convention, smooth, training_curve, writing_output
from evoplastic.analysis.tables import grouped_rows, grouped_tables
from evoplastic.config import ExperimentConfig
from evoplastic.core.evaluation import EvaluateSettings, RuleToScore, UnknownSettingError
from evoplastic.families import get_family, theta_space
from evoplastic.stats import mean_ci95_seeds

X_AXES = (("step", "step"), ("time/elapsed", "wall-clock seconds"), ("budget/episodes_total", "inner-loop episodes"))
"""Metric key and axis label of each x axis of the learning curves."""
MAX_PANELS = 12
"""θ trajectory panels at most: rules with more coordinates (MLP weights) show the largest final ones."""
EVAL_TASK_OPTIONS = ("eval_dataset", "eval_split", "eval_classes", "eval_n_way")
"""Held-out options that choose the tasks, handed to a family's evaluation without 'eval_' (it may refuse them)."""


@dataclass
class RunRecord:
    """One run: its directory, resolved config, metrics and final rule."""

    label: str
    path: Path
    config: ExperimentConfig
    records: list[dict[str, Any]]
    theta: tuple[float, ...]
    """Final θ (theta.json), else the last logged centre."""
    labels: tuple[str, ...]
    """Name of each θ coordinate, from the run's θ space (paper 'θ_2', k-cap 'hebb' or 'M_in/oja')."""
    formulas: tuple[str, ...]
    """What each coordinate multiplies ('' where the family does not say)."""
    final: dict[str, Any]
    """theta.json's contents ({} for an unfinished run)."""
    rule: Rule | None = None
    """The paper family's Rule for analysis.evaluate; None for a family with its own evaluation."""

    @property
    def family(self) -> str:
        return self.config.family

    def last(self, key: str, default: Any = float("nan")) -> Any:
        values = [r[key] for r in self.records if key in r]
        return values[-1] if values else default


def _final_theta(path: Path, final: dict[str, Any], records: list[dict[str, Any]]) -> tuple[float, ...]:
    """theta.json's θ, else the last logged centre (an unfinished run)."""
    if "theta" in final:
        return tuple(float(v) for v in final["theta"])
    rows = [r for r in records if "theta/center" in r]
    if not rows:
        raise ValueError(f"{path} has no theta.json and no logged θ yet: nothing to compare")
    print(f"note: {path} has no theta.json; using the centre θ of step {rows[-1]['step']}", file=sys.stderr)
    return tuple(float(v) for v in rows[-1]["theta/center"])


def _check_one_family(opened: list[tuple[Path, Any]]) -> None:
    """Runs of different families have different θ, tasks and scores: they do not share a report."""
    families: dict[str, list[str]] = {}
    for path, run in opened:
        families.setdefault(run.config().family, []).append(path.name)
    if len(families) > 1:
        listing = "; ".join(f"{name}: {', '.join(names)}" for name, names in families.items())
        raise ValueError(f"compare puts runs of one network family in a report, got {listing}; "
                         f"compare each family's runs separately")


def load_runs(paths: list[str | Path]) -> list[RunRecord]:
    """Open run directories of one family; labels are config names, made unique with the directory name."""
    from evoplastic.run.rundir import RunDir

    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a run directory; give directories under runs/")
    opened = [(path, RunDir.open(path)) for path in map(Path, paths)]
    _check_one_family(opened)
    runs = []
    for path, run in opened:
        cfg, records = run.config(), run.metrics()
        final = run.read_json("theta.json") if (path / "theta.json").is_file() else {}
        space = theta_space(cfg)
        theta = _final_theta(path, final, records)
        rule = get_family(cfg.family).rule_from_run(path.name, cfg, list(theta))
        if len(theta) != space.size:
            raise ValueError(f"{path}: θ has {len(theta)} values but its config searches {space.size} "
                             f"({', '.join(space.labels)})")
        formulas = space.formulas or ("",) * space.size
        runs.append(RunRecord(path.name, path, cfg, records, theta, space.labels, formulas, final, rule))
    names = [r.config.name for r in runs]
    for r in runs:
        r.label = r.config.name if names.count(r.config.name) == 1 else r.path.name
        r.rule = r.rule and replace(r.rule, label=r.label)
    return runs


def _xy(records: list[dict[str, Any]], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r[x_key], r[y_key]) for r in records if r.get(x_key) is not None and r.get(y_key) is not None]
    if not rows:
        return np.array([]), np.array([])
    x, y = zip(*rows)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    _plt().close(fig)
    return out


def coordinates(runs: list[RunRecord]) -> list[tuple[str, str]]:
    """(label, formula) of each row of the θ table: the rows the runs' θ spaces list as their reference
    (the paper family's whole ten-term pool for a shared rule, searched or not), then every other coordinate
    some run searched (generated terms, per-layer θ_r@W2, feedback φ_hebb), in first-seen order."""
    seen: dict[str, str] = {}
    for run in runs:
        seen.update((label, formula) for label, formula in theta_space(run.config).reference if label not in seen)
    for run in runs:
        for label, formula in zip(run.labels, run.formulas):
            seen.setdefault(label, formula)
    # shared coordinates first, then per-layer ones (θ_r@W2), then a feedback rule's (φ); stable otherwise
    return sorted(seen.items(), key=lambda item: (item[0].startswith("φ"), "@" in item[0]))


def searched(runs: list[RunRecord]) -> list[str]:
    """Labels some run searched, in the θ table's order."""
    found = {label for run in runs for label in run.labels}
    return [label for label, _ in coordinates(runs) if label in found]


def theta_units(runs: list[RunRecord]) -> str:
    """Units of the θ axes: the family's note, else its sign convention."""
    return theta_space(runs[0].config).units or sign_convention(runs[0].config)


def plot_theta_bars(runs: list[RunRecord], out: Path) -> Path:
    """Final θ per searched coordinate, runs as grouped bars, symmetric-log axis (the family's sign convention)."""
    plt = _plt()
    labels = searched(runs)
    fig, ax = plt.subplots(figsize=(min(18, max(5, 1.2 * len(labels) + 2)), 3.8))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        values = dict(zip(run.labels, run.theta))
        xs = [j + (i - (len(runs) - 1) / 2) * width for j, label in enumerate(labels) if label in values]
        ax.bar(xs, [values[label] for label in labels if label in values], width, label=run.label, color=f"C{i}")
    ax.set_xticks(range(len(labels)), labels, **({"rotation": 90, "fontsize": 7} if len(labels) > 10 else {}))
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(f"final θ ({theta_units(runs)})")
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_learning(runs: list[RunRecord], out: Path) -> Path:
    """Accuracy and loss (rows) against step, seconds and episodes (columns); moving averages."""
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), squeeze=False)
    for row, (metric, name) in enumerate((("accuracy", "query accuracy"), ("loss", "query loss"))):
        for col, (x_key, x_label) in enumerate(X_AXES):
            ax = axes[row, col]
            for i, run in enumerate(runs):
                x, y, _ = training_curve(run.records, metric, x_key, run.config.rule.l1)
                if len(x):
                    ax.plot(x, smooth(y, metric), color=f"C{i}", label=run.label)
                x, y = _xy(run.records, x_key, f"eval/{metric}")
                if len(x):
                    ax.plot(x, y, "o--", color=f"C{i}", ms=3, lw=0.8)
            ax.set_xlabel(x_label)
            ax.set_ylabel(name)
            ax.set_yscale("log" if metric == "loss" else "linear")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("lines: training tasks; accuracy: moving average (ES: population mean); loss, log axis: moving "
                 "median (ES: population median of loss + λ‖θ‖₁); dashed markers: centre θ on fresh tasks", fontsize=9)
    return _save(fig, out)


def trajectory_labels(runs: list[RunRecord]) -> list[str]:
    """Coordinates that get a panel: all searched ones, or MAX_PANELS taken in turn from each run's largest
    final |θ| (so that a 4-term pool beside a 41-weight MLP keeps its panels)."""
    labels = searched(runs)
    if len(labels) <= MAX_PANELS:
        return labels
    ranked = [[label for _, label in sorted(zip(map(abs, run.theta), run.labels), reverse=True)] for run in runs]
    keep: list[str] = []
    for position in range(max(map(len, ranked))):
        for order in ranked:
            if position < len(order) and order[position] not in keep and len(keep) < MAX_PANELS:
                keep.append(order[position])
    return [label for label in labels if label in keep]


def plot_trajectories(runs: list[RunRecord], out: Path) -> Path:
    """Each θ coordinate of each run's centre against inner-loop episodes spent, one panel per coordinate (symlog)."""
    plt = _plt()
    labels, formulas = trajectory_labels(runs), dict(coordinates(runs))
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for k, label in enumerate(labels):
        ax = axes[k // cols, k % cols]
        for i, run in enumerate(runs):
            if label not in run.labels:
                continue
            index = run.labels.index(label)
            rows_ = [r for r in run.records if "theta/center" in r and "budget/episodes_total" in r]
            ax.plot([r["budget/episodes_total"] for r in rows_], [r["theta/center"][index] for r in rows_],
                    color=f"C{i}", label=run.label)
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{label}: {formulas[label]}" if formulas.get(label) else label, fontsize=9)
        ax.set_xlabel("inner-loop episodes")
    for k in range(len(labels), rows * cols):
        axes[k // cols, k % cols].axis("off")
    handles = {line.get_label(): line for ax in axes.flat for line in ax.get_lines() if line.get_label()[:1] != "_"}
    axes[0, 0].legend(handles.values(), handles.keys(), fontsize=8)
    if len(labels) < len(searched(runs)):
        fig.suptitle(f"{len(labels)} of {len(searched(runs))} coordinates: each run's largest final |θ| in turn",
                     fontsize=9)
    return _save(fig, out)


def per_layer_values(run: RunRecord) -> dict[str, list[float]]:
    """A per-layer run's final θ by term: 'θ_2' -> [θ_2@W1, …, θ_2@WL], 'φ_hebb' -> [φ_hebb@B1, …]."""
    values: dict[str, list[float]] = {}
    for label, value in zip(run.labels, run.theta):
        values.setdefault(label.split("@")[0], []).append(value)
    return values


def _plot_layer_band(ax, seeds: torch.Tensor, color: str, label: str) -> None:
    """One setting's (S, L) per-layer values: mean line with a 95 % CI band (none for one seed), seeds as points."""
    layers = np.arange(1, seeds.shape[1] + 1)
    summary = [mean_ci95_seeds(seeds[:, j]) for j in range(seeds.shape[1])]
    mean, ci = np.array([m for m, _ in summary]), np.nan_to_num([c for _, c in summary])
    ax.plot(layers, mean, "o-", color=color, label=label)
    ax.fill_between(layers, mean - ci, mean + ci, color=color, alpha=0.2)
    ax.plot(np.tile(layers, len(seeds)), seeds.flatten().numpy(), ".", color=color, alpha=0.3)


def plot_theta_per_layer(runs: list[RunRecord], out: Path) -> Path | None:
    """Final θ against layer W1..WL for runs with rule.per_layer, one panel per term; each setting (its seeds
    together, as in seed_groups) a line of the mean over seeds with a 95 % CI band, every seed a faint
    point. None (nothing written) when no run has per-layer coefficients."""
    per_layer = [run for run in runs if any("@" in label for label in run.labels)]
    if not per_layer:
        return None
    groups: dict[ExperimentConfig, list[RunRecord]] = {}
    for run in per_layer:
        groups.setdefault(setting(run.config), []).append(run)
    terms = list(dict.fromkeys(term for run in per_layer for term in per_layer_values(run)))
    n_layers = max(len(values) for run in per_layer for values in per_layer_values(run).values())
    cols = min(3, len(terms))
    rows = -(-len(terms) // cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for i, group in enumerate(groups.values()):
        name = re.sub(r"_seed\d+$", "", group[0].config.name) if len(group) > 1 else group[0].label
        values = [per_layer_values(run) for run in group]
        for ax, term in zip(axes.flat, terms):
            seeds = torch.tensor([v[term] for v in values if term in v], dtype=torch.float64)
            if len(seeds):
                _plot_layer_band(ax, seeds, f"C{i}", f"{name} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    for ax, term in zip(axes.flat, terms):
        matrix = "B" if term.startswith("φ") else "W"
        ax.set_xticks(range(1, n_layers + 1), [f"{matrix}{j}" for j in range(1, n_layers + 1)])
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(term, fontsize=9)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    axes[0, 0].set_ylabel(f"final θ ({theta_units(runs)})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("per-layer θ: mean over seeds ± 95 % CI (band), seeds as points", fontsize=9)
    return _save(fig, out)


def plot_alignment(runs: list[RunRecord], out: Path) -> Path | None:
    """Alignment angle per hidden layer against episodes, one panel per layer; None if never logged."""
    logged = [(i, run) for i, run in enumerate(runs) if any("eval/alignment" in r for r in run.records)]
    if not logged:
        return None
    plt = _plt()
    layers = max(len(r["eval/alignment"]) for _, run in logged for r in run.records if "eval/alignment" in r)
    fig, axes = plt.subplots(1, max(1, layers), figsize=(3.6 * max(1, layers), 3.2), squeeze=False)
    for layer in range(layers):
        ax = axes[0, layer]
        for i, run in logged:
            rows = [r for r in run.records if "eval/alignment" in r and len(r["eval/alignment"]) > layer]
            ax.plot([r.get("budget/episodes_total", r["step"]) for r in rows],
                    [math.nan if r["eval/alignment"][layer] is None else r["eval/alignment"][layer] for r in rows],
                    "o-", ms=3, color=f"C{i}", label=run.label)
        ax.set_title(f"e_{layer + 1}", fontsize=9)
        ax.set_xlabel("inner-loop episodes")
    axes[0, 0].set_ylabel("angle to backprop error (°)")
    axes[0, 0].legend(fontsize=8)
    return _save(fig, out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def data_columns(cfg: ExperimentConfig) -> dict[str, str]:
    """Where a run's tasks come from: its family section's datasets (k-cap), else task.dataset and classes."""
    section = getattr(cfg, cfg.family, None)
    if section is not None and hasattr(section, "datasets"):
        return {"datasets": ", ".join(section.datasets)}
    if getattr(cfg, "task", None) is None:  # a family without image tasks describes itself in the settings
        return {}
    classes = evaluate.format_classes(cfg.task.classes) if cfg.task.classes else "all"
    return {"dataset": f"`{cfg.task.dataset}`", "classes": classes}


def runs_table(runs: list[RunRecord]) -> str:
    """A row per run: outer loop, rule, λ, the family's settings (describe), data, budget, accuracies."""
    settings = [{**family_settings(run.config), **data_columns(run.config)} for run in runs]
    columns = list(dict.fromkeys(key for s in settings for key in s))
    rows = []
    for run, setting in zip(runs, settings):
        cfg, final = run.config, run.final
        acc = (f"{100 * final['final/accuracy']:.2f} % ± {100 * final['final/accuracy_ci95']:.2f} "
               f"({final.get('final/tasks', '?')} tasks)" if "final/accuracy" in final else "—")
        described = get_family(cfg.family).describe(cfg)
        rule = described["rule"] if "rule" in described else getattr(cfg.rule, "terms", "")
        rows.append([run.label, f"`{run.path}`", cfg.outer if cfg.outer == "adam" else f"es/{cfg.es.algorithm}",
                     str(rule), f"{cfg.rule.l1:g}", *(setting.get(key, "—") for key in columns),
                     str(len(run.records)), f"{run.last('budget/episodes_total', 0):g}",
                     f"{run.last('time/elapsed'):.4g}", f"{mean_last(run.records, 'time/step_seconds', 10**9):.3g}",
                     f"{100 * mean_last(run.records, 'train/accuracy', 100):.1f} %", acc])
    return _table(["run", "directory", "outer", "rule", "λ", *columns,
                   "steps", "episodes", "seconds", "s/step", "train acc., last 100 steps",
                   "final accuracy (theta.json)"], rows)


def mean_last(records: list[dict[str, Any]], key: str, count: int) -> float:
    """Mean of ``key`` over the last ``count`` records that have it (ES: population mean)."""
    values = [r[key] for r in records if r.get(key) is not None][-count:]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def theta_table(runs: list[RunRecord]) -> str:
    """θ coordinates as rows (see coordinates), runs as columns; '—' where a run did not search one."""
    rows = []
    for label, formula in coordinates(runs):
        cells = []
        for run in runs:
            values = dict(zip(run.labels, run.theta))
            cells.append(f"{values[label]:.6g}" if label in values else "—")
        rows.append([label, f"`{formula}`" if formula else "—", *cells])
    return _table(["term", "T_r", *(run.label for run in runs)], rows)


def theta_note(runs: list[RunRecord]) -> str:
    """What the θ table's numbers mean: the family's note, else its sign convention."""
    return theta_space(runs[0].config).note or (f"Sign convention `{sign_convention(runs[0].config)}`; '—': not "
                                                 f"searched by that run.")


def evaluation_table(results: list[RuleEvaluation]) -> str:
    rows = []
    for i, r in enumerate(results):
        diff = "—" if i == 0 else "{:+.2f} ± {:.2f}".format(*(100 * v for v in r.difference(results[0])))
        rows.append([r.rule.label, r.rule.config.network.feedback,
                     " ".join(f"{label}={v:.6g}" for label, v in zip(r.rule.space.labels(), r.rule.theta)),
                     f"{100 * r.accuracy:.2f} % ± {100 * r.accuracy_ci95:.2f}", diff, f"{r.loss:.4f}"])
    return _table(["rule", "feedback", "θ", "query accuracy (95 % CI)", f"Δ vs {results[0].rule.label} (paired)",
                   "loss"], rows)


def setting(cfg: ExperimentConfig) -> ExperimentConfig:
    """The experiment a config describes, with what does not define it reset: name, seed and the
    speed-only device, es.compile, es.cuda_graph and es.member_chunk. Runs with equal settings
    are seeds of one experiment; configs are frozen dataclasses, so a setting is a dict key."""
    speed_only = {key: False for key in ("compile", "cuda_graph") if hasattr(cfg.es, key)}
    es = replace(cfg.es, member_chunk=0, **speed_only)
    return replace(cfg, name="", seed=0, device="cpu", es=es)


def seed_groups(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """Runs grouped by setting, in first-seen order; only groups of two or more seeds."""
    groups: dict[ExperimentConfig, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(setting(run.config), []).append(run)
    return [group for group in groups.values() if len(group) > 1]


def _spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """mean ± sd (min to max) of values × scale."""
    v = [scale * x for x in values]
    number = lambda x: f"{x:.{digits}f}"
    return f"{number(statistics.mean(v))} ± {number(statistics.stdev(v))} ({number(min(v))} to {number(max(v))})"


def seeds_table(runs: list[RunRecord], accuracy: dict[str, float], metric: str = "accuracy") -> str | None:
    """Mean ± sd over seeds of the held-out accuracy (run label -> mean over tasks) and of each θ coordinate,
    per setting; None without repeats."""
    groups = [[run for run in group if run.label in accuracy] for group in seed_groups(runs)]
    rows = []
    for group in filter(lambda g: len(g) > 1, groups):
        cfg, labels = group[0].config, group[0].labels
        outer = "Adam" if cfg.outer == "adam" else f"ES ({cfg.es.algorithm})"
        values = [[run.theta[i] for run in group] for i in range(len(labels))]
        shown = [f"{label} {_spread(v, digits=4)}" for label, v in zip(labels, values)
                 if len(labels) <= 3 or abs(statistics.mean(v)) > 1e-3]
        theta = ", ".join(shown[:MAX_PANELS]) + (f", … ({len(shown) - MAX_PANELS} more)" if len(shown) > MAX_PANELS
                                                 else "")
        rows.append([re.sub(r"_seed\d+$", "", cfg.name), outer, str(len(group)),
                     ", ".join(str(run.config.seed) for run in group),
                     _spread([accuracy[run.label] for run in group], 100), theta])
    if not rows:
        return None
    return _table(["setting", "outer", "seeds", "seed values", f"held-out {metric} %: mean ± sd (min to max)",
                   "θ over seeds (more than 3 coordinates: those whose mean exceeds 1e-3 in size)"], rows)


def _seeds_section(runs: list[RunRecord], accuracy: dict[str, float], metric: str = "accuracy") -> str:
    seeds = seeds_table(runs, accuracy, metric)
    return ("\n\n### Across seeds\n\nRuns that differ only in seed, name or speed options (device, es.compile, "
            "es.cuda_graph, es.member_chunk), on the same held-out tasks:\n\n" + seeds) if seeds else ""


def held_out_evaluation(runs: list[RunRecord], args: argparse.Namespace) -> tuple[str, list[RuleEvaluation]]:
    """Every run's rule (and optional baselines) on the same tasks; runs whose network cannot take them are noted."""
    rules = [run.rule for run in runs]
    dataset = evaluate.load_eval_dataset(rules[0], args.eval_dataset, args.eval_split)
    if args.eval_classes:
        classes = evaluate.parse_classes(args.eval_classes)
    else:
        classes = evaluate.held_out_classes(rules, dataset)
    task = evaluate.task_config(rules[0], dataset, classes, args.eval_split, n_way=args.eval_n_way)
    usable, notes = [], []
    for rule in rules + (evaluate.baseline_rules(rules[0]) if args.baselines else []):
        try:
            evaluate.evaluation_config(rule, task, dataset, args.eval_seed, args.device)
            usable.append(rule)
        except ValueError as err:
            notes.append(f"- skipped: {err}")
    results = evaluate.evaluate_rules(usable, dataset, task, args.eval_tasks, args.eval_seed, args.device,
                             not args.no_progress) if usable else []
    text = evaluate.describe_tasks(task, args.eval_tasks, args.eval_seed) + ".\n\n"
    text += (evaluation_table(results) if results else "No run could be evaluated on these tasks.")
    text += _seeds_section(runs, {r.rule.label: r.accuracy for r in results})
    return text + ("\n\n" + "\n".join(notes) if notes else ""), results


def _same_scores(a: list[tuple[str, dict[str, torch.Tensor]]], b: list[tuple[str, dict[str, torch.Tensor]]]) -> bool:
    """Whether two lists of evaluation rows hold the same labels and per-task scores (NaN equal to NaN)."""
    return [label for label, _ in a] == [label for label, _ in b] and all(
        scores_a.keys() == scores_b.keys() and all(torch.allclose(scores_a[k], scores_b[k], rtol=1e-6, atol=1e-9,
                                                                  equal_nan=True) for k in scores_a)
        for (_, scores_a), (_, scores_b) in zip(a, b))


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The --eval-* task options given, as EvaluateSettings.options (dataset, split, classes, n_way)."""
    return {name.removeprefix("eval_"): getattr(args, name) for name in EVAL_TASK_OPTIONS
            if getattr(args, name, None) is not None}


def family_held_out(runs: list[RunRecord], args: argparse.Namespace) -> tuple[str, Any]:
    """Every run's rule through its family's evaluation (Family.evaluate), on the tasks of one seed, with its
    baselines, in a table per task group (e.g. k-cap's datasets).

    Each run is scored under its own config (the first run's dtype), baselines included; a run whose
    baseline rows differ from the first's saw other tasks or initial networks (other task settings)
    and is left out with a note, so that every row of the table is paired.
    """
    family = get_family(runs[0].family)
    settings = EvaluateSettings(args.eval_tasks, args.eval_seed, args.device, True, False, family_options(args))
    reference, first, rows, notes = None, None, [], []
    for run in runs:
        cfg = replace(run.config, dtype=runs[0].config.dtype)
        try:
            evaluation = family.evaluate(cfg, [RuleToScore(run.label, tuple(run.theta), cfg)], settings)
            scored = grouped_rows(evaluation)
        except UnknownSettingError:
            raise
        except ValueError as err:
            notes.append(f"- skipped: {run.label}: {err}")
            continue
        if reference is None:
            reference, first = scored, evaluation
        elif not (torch.equal(scored.groups, reference.groups) and _same_scores(scored.rows[1:], reference.rows[1:])):
            notes.append(f"- skipped: {run.label}: its tasks or initial networks differ from {rows[0][0]}'s (other "
                         f"task or network settings), so its scores would not be paired; compare it separately")
            continue
        rows.append(scored.rows[0])
    if reference is None:
        return "No run could be evaluated.\n\n" + "\n".join(notes), None
    evaluated = replace(reference, rows=rows + (reference.rows[1:] if args.baselines else []))
    metrics, primary = tuple(m.name for m in first.metrics), first.primary
    text = (f"Through the {runs[0].family} family's evaluation, each run under its own config: {first.description}. "
            f"Every row on the same tasks and initial networks (Δ paired against the first row).\n\n"
            + grouped_tables(evaluated, metrics))
    if primary.percent:
        mean = {label: float(scores[primary.name].nanmean()) for label, scores in rows}
        text += _seeds_section(runs, mean, primary.name.replace("_", " "))
    return text + ("\n\n" + "\n".join(notes) if notes else ""), evaluated


def held_out_section(runs: list[RunRecord], args: argparse.Namespace) -> str:
    """The held-out table: the image-task table for rules that know their rule space (the paper family's), else
    the family's evaluation in a table per task group; a family that does not take an --eval-* option says so."""
    if all(hasattr(run.rule, "space") for run in runs):
        return held_out_evaluation(runs, args)[0]
    try:
        return family_held_out(runs, args)[0]
    except UnknownSettingError as err:
        given = ", ".join(f"--eval-{name.replace('_', '-')}" for name in family_options(args))
        raise ValueError(f"{given}: {err} (drop the option)") from None


def write_report(runs: list[RunRecord], out: Path, args: argparse.Namespace) -> Path:
    """report.md and its PNGs in ``out``; returns report.md's path. Bad inputs fail before anything is written."""
    held_out = None
    if args.eval_tasks > 0:
        held_out = held_out_section(runs, args)
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"# Comparison of {len(runs)} runs\n",
                f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `evoplastic compare "
                f"{' '.join(str(r.path) for r in runs)}`.\n", "## Runs\n", runs_table(runs) + "\n",
                "## Final θ\n", theta_note(runs) + "\n", theta_table(runs) + "\n"]
    plot_theta_bars(runs, out / "theta.png")
    plot_learning(runs, out / "learning.png")
    plot_trajectories(runs, out / "theta_trajectories.png")
    sections += ["![final θ per term](theta.png)\n", "## Learning curves\n",
                 "Query accuracy and loss against outer steps, wall-clock seconds and inner-loop episodes "
                 "spent (the fair budget between ES and Adam). Lines: moving average on the training tasks "
                 "(ES: mean over the population, Adam: its one candidate); dashed markers: the centre θ on fresh "
                 "tasks, the comparable measure.\n", "![learning curves](learning.png)\n",
                 "## θ trajectories\n", "![θ trajectories](theta_trajectories.png)\n"]
    if plot_theta_per_layer(runs, out / "theta_per_layer.png"):
        sections += ["## θ per layer\n", "Runs with one coefficient per term and layer (rule.per_layer): final θ "
                     "against layer, mean over each setting's seeds with its 95 % CI, seeds as points.\n",
                     "![θ per layer](theta_per_layer.png)\n"]
    if plot_alignment(runs, out / "alignment.png"):
        sections += ["## Alignment\n", "Angle between each hidden layer's error and backprop's (0° under bp), "
                     "at the periodic evaluations.\n", "![alignment angles](alignment.png)\n"]
    if held_out is not None:
        sections += ["## Held-out evaluation\n", held_out + "\n"]
    report = out / "report.md"
    report.write_text("\n".join(sections))
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evoplastic compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", type=Path, help="output directory (default: reports/<time>_compare)")
    p.add_argument("--eval-tasks", type=int, default=100, help="held-out tasks per rule; 0 skips (default 100)")
    p.add_argument("--eval-dataset", help="paper runs: dataset of the held-out evaluation (default: the first run's)")
    p.add_argument("--eval-split", choices=("train", "test"), help="its split (default: the first run's)")
    p.add_argument("--eval-classes", help="class ids, e.g. 37-46 (default: classes no run trained on when "
                                          "all restricted task.classes, else all)")
    p.add_argument("--eval-n-way", type=int, help="classes per task (default: the first run's)")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the held-out tasks (default 0)")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=False,
                   help="add the family's baselines to the held-out table: paper fa and bp; k-cap the untrained "
                        "network and the raw input (default off)")
    p.add_argument("--device", default="cpu", help="device of the held-out evaluation (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """``evoplastic compare RUN [RUN ...]``; returns the exit status (2 on a bad input)."""
    args = build_parser().parse_args(argv)
    try:
        runs = load_runs(args.runs)
        out = args.out or Path("reports") / f"{time.strftime('%Y%m%d-%H%M%S')}_compare"
        with writing_output(out, "the comparison report"):
            report = write_report(runs, out, args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic compare: error: {err}", file=sys.stderr)
        return 2
    print(report)
    return 0
