"""Compare runs side by side: report.md and PNGs in one directory.

Final θ per term, accuracy/loss against step, wall-clock seconds and inner-loop episodes
spent, θ trajectories, alignment angles, and every run's rule scored on the same held-out
tasks (evaluate.py's functions, one seed: identical tasks and initial weights for all).
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

from evoplastic.analysis import evaluate
from evoplastic.analysis.evaluate import Rule, RuleEvaluation
from evoplastic.analysis.report import smooth, training_curve
from evoplastic.config import ExperimentConfig
from evoplastic.families.paper.rules import N_TERMS, TERM_FORMULAS

X_AXES = (("step", "step"), ("time/elapsed", "wall-clock seconds"), ("budget/episodes_total", "inner-loop episodes"))
"""Metric key and axis label of each x axis of the learning curves."""


@dataclass
class RunRecord:
    """One run: its directory, resolved config, metrics and final rule."""

    label: str
    path: Path
    config: ExperimentConfig
    records: list[dict[str, Any]]
    rule: Rule
    final: dict[str, Any]
    """theta.json's contents ({} for an unfinished run)."""

    def last(self, key: str, default: Any = float("nan")) -> Any:
        values = [r[key] for r in self.records if key in r]
        return values[-1] if values else default


def load_runs(paths: list[str | Path]) -> list[RunRecord]:
    """Open run directories; labels are config names, made unique with the directory name."""
    from evoplastic.run.rundir import RunDir

    runs = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a run directory; give directories under runs/")
        run = RunDir.open(path)
        final = run.read_json("theta.json") if (path / "theta.json").is_file() else {}
        runs.append(RunRecord(path.name, path, run.config(), run.metrics(), evaluate.parse_rule(str(path)), final))
    names = [r.config.name for r in runs]
    for r in runs:
        r.label = r.config.name if names.count(r.config.name) == 1 else r.path.name
        r.rule = replace(r.rule, label=r.label)
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


def searched_terms(runs: list[RunRecord]) -> list[int]:
    return sorted({t for r in runs for t in r.rule.terms})


def plot_theta_bars(runs: list[RunRecord], out: Path) -> Path:
    """Final θ per searched term, runs as grouped bars, symmetric-log axis (paper sign convention)."""
    plt = _plt()
    terms = searched_terms(runs)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(terms) + 2), 3.8))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        values = dict(zip(run.rule.terms, run.rule.theta))
        xs = [j + (i - (len(runs) - 1) / 2) * width for j, t in enumerate(terms) if t in values]
        ax.bar(xs, [values[t] for t in terms if t in values], width, label=run.label, color=f"C{i}")
    ax.set_xticks(range(len(terms)), [f"θ_{t}" for t in terms])
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("final θ (paper units, ΔW = -Σ θ_r T_r)")
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


def plot_trajectories(runs: list[RunRecord], out: Path) -> Path:
    """θ_r of each run's centre against inner-loop episodes spent, one panel per term (symlog)."""
    plt = _plt()
    terms = searched_terms(runs)
    cols = min(3, len(terms))
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for k, term in enumerate(terms):
        ax = axes[k // cols, k % cols]
        for i, run in enumerate(runs):
            if term not in run.rule.terms:
                continue
            index = run.rule.terms.index(term)
            rows_ = [r for r in run.records if "theta/center" in r and "budget/episodes_total" in r]
            ax.plot([r["budget/episodes_total"] for r in rows_], [r["theta/center"][index] for r in rows_],
                    color=f"C{i}", label=run.label)
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"θ_{term}: {TERM_FORMULAS[term]}", fontsize=9)
        ax.set_xlabel("inner-loop episodes")
    for k in range(len(terms), rows * cols):
        axes[k // cols, k % cols].axis("off")
    axes[0, 0].legend(fontsize=8)
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


def runs_table(runs: list[RunRecord]) -> str:
    rows = []
    for run in runs:
        cfg, final = run.config, run.final
        acc = (f"{100 * final['final/accuracy']:.2f} % ± {100 * final['final/accuracy_ci95']:.2f} "
               f"({final.get('final/tasks', '?')} tasks)" if "final/accuracy" in final else "—")
        rows.append([run.label, f"`{run.path}`", cfg.outer if cfg.outer == "adam" else f"es/{cfg.es.algorithm}",
                     cfg.rule.terms, f"{cfg.rule.l1:g}", cfg.network.activation, cfg.network.feedback,
                     f"`{cfg.task.dataset}`", evaluate.format_classes(cfg.task.classes) if cfg.task.classes else "all",
                     str(len(run.records)), f"{run.last('budget/episodes_total', 0):g}",
                     f"{run.last('time/elapsed'):.4g}", f"{mean_last(run.records, 'time/step_seconds', 10**9):.3g}",
                     f"{100 * mean_last(run.records, 'train/accuracy', 100):.1f} %", acc])
    return _table(["run", "directory", "outer", "rule", "λ", "activation", "feedback", "dataset", "classes",
                   "steps", "episodes", "seconds", "s/step", "train acc., last 100 steps",
                   "final accuracy (theta.json)"], rows)


def mean_last(records: list[dict[str, Any]], key: str, count: int) -> float:
    """Mean of ``key`` over the last ``count`` records that have it (ES: population mean)."""
    values = [r[key] for r in records if r.get(key) is not None][-count:]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def theta_table(runs: list[RunRecord]) -> str:
    """All ten terms as rows, runs as columns; '—' where a run did not search the term."""
    rows = []
    for term in range(N_TERMS):
        cells = []
        for run in runs:
            values = dict(zip(run.rule.terms, run.rule.theta))
            cells.append(f"{values[term]:.6g}" if term in values else "—")
        rows.append([f"θ_{term}", f"`{TERM_FORMULAS[term]}`", *cells])
    return _table(["term", "T_r", *(run.label for run in runs)], rows)


def evaluation_table(results: list[RuleEvaluation]) -> str:
    rows = []
    for i, r in enumerate(results):
        diff = "—" if i == 0 else "{:+.2f} ± {:.2f}".format(*(100 * v for v in r.difference(results[0])))
        rows.append([r.rule.label, r.rule.config.network.feedback,
                     " ".join(f"θ_{t}={v:.6g}" for t, v in zip(r.rule.terms, r.rule.theta)),
                     f"{100 * r.accuracy:.2f} % ± {100 * r.accuracy_ci95:.2f}", diff, f"{r.loss:.4f}"])
    return _table(["rule", "feedback", "θ", "query accuracy (95 % CI)", f"Δ vs {results[0].rule.label} (paired)",
                   "loss"], rows)


def setting(cfg: ExperimentConfig) -> ExperimentConfig:
    """The experiment a config describes, with what does not define it reset: name, seed and the
    speed-only device, es.compile, es.cuda_graph and es.member_chunk. Runs with equal settings
    are seeds of one experiment; configs are frozen dataclasses, so a setting is a dict key."""
    es = replace(cfg.es, compile=False, cuda_graph=False, member_chunk=0)
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


def seeds_table(runs: list[RunRecord], results: list[RuleEvaluation]) -> str | None:
    """Mean ± sd over seeds of the held-out accuracy and of each θ_r, per setting; None without repeats."""
    accuracy = {r.rule.label: r.accuracy for r in results}
    groups = [[run for run in group if run.label in accuracy] for group in seed_groups(runs)]
    rows = []
    for group in filter(lambda g: len(g) > 1, groups):
        cfg, terms = group[0].config, group[0].rule.terms
        outer = "Adam" if cfg.outer == "adam" else f"ES ({cfg.es.algorithm})"
        values = [[run.rule.theta[i] for run in group] for i in range(len(terms))]
        theta = ", ".join(f"θ_{t} {_spread(v, digits=4)}" for t, v in zip(terms, values)
                          if len(terms) <= 3 or abs(statistics.mean(v)) > 1e-3)
        rows.append([re.sub(r"_seed\d+$", "", cfg.name), outer, str(len(group)),
                     ", ".join(str(run.config.seed) for run in group),
                     _spread([accuracy[run.label] for run in group], 100), theta])
    if not rows:
        return None
    return _table(["setting", "outer", "seeds", "seed values", "held-out accuracy %: mean ± sd (min to max)",
                   "θ over seeds (10-term pool: terms whose mean exceeds 1e-3 in size)"], rows)


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
    seeds = seeds_table(runs, results)
    if seeds:
        text += ("\n\n### Across seeds\n\nRuns that differ only in seed, name or speed options (device, "
                 "es.compile, es.cuda_graph, es.member_chunk), on the same held-out tasks:\n\n" + seeds)
    return text + ("\n\n" + "\n".join(notes) if notes else ""), results


def write_report(runs: list[RunRecord], out: Path, args: argparse.Namespace) -> Path:
    """report.md and its PNGs in ``out``; returns report.md's path. Bad inputs fail before anything is written."""
    held_out = held_out_evaluation(runs, args)[0] if args.eval_tasks > 0 else None
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"# Comparison of {len(runs)} runs\n",
                f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `evoplastic compare "
                f"{' '.join(str(r.path) for r in runs)}`.\n", "## Runs\n", runs_table(runs) + "\n",
                "## Final θ\n",
                "Paper units and sign convention, ΔW = -Σ_r θ_r T_r; '—': term not searched. The authors' "
                "public code flips the sign of Oja's term: its θ_9 is minus ours.\n", theta_table(runs) + "\n"]
    plot_theta_bars(runs, out / "theta.png")
    plot_learning(runs, out / "learning.png")
    plot_trajectories(runs, out / "theta_trajectories.png")
    sections += ["![final θ per term](theta.png)\n", "## Learning curves\n",
                 "Query accuracy and loss against outer steps, wall-clock seconds and inner-loop episodes "
                 "spent (the fair budget between ES and Adam). Lines: moving average on the training tasks "
                 "(ES: mean over the population, Adam: its one candidate); dashed markers: the centre θ on fresh "
                 "tasks, the comparable measure.\n", "![learning curves](learning.png)\n",
                 "## θ trajectories\n", "![θ trajectories](theta_trajectories.png)\n"]
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
    p.add_argument("--eval-dataset", help="dataset of the held-out evaluation (default: the first run's)")
    p.add_argument("--eval-split", choices=("train", "test"), help="its split (default: the first run's)")
    p.add_argument("--eval-classes", help="class ids, e.g. 37-46 (default: classes no run trained on when "
                                          "all restricted task.classes, else all)")
    p.add_argument("--eval-n-way", type=int, help="classes per task (default: the first run's)")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the held-out tasks (default 0)")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=False,
                   help="add the fa and bp baselines to the held-out table (default off)")
    p.add_argument("--device", default="cpu", help="device of the held-out evaluation (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """``evoplastic compare RUN [RUN ...]``; returns the exit status (2 on a bad input)."""
    args = build_parser().parse_args(argv)
    try:
        runs = load_runs(args.runs)
        out = args.out or Path("reports") / f"{time.strftime('%Y%m%d-%H%M%S')}_compare"
        report = write_report(runs, out, args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic compare: error: {err}", file=sys.stderr)
        return 2
    print(report)
    return 0
