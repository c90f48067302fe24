"""The Python API: train, load, evaluate and compare rules from a script or a notebook.

A thin layer over the functions the command line calls; errors arrive as evoplastic.ConfigError,
DataError or RunDirError (ValueErrors) instead of exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evoplastic.config import ExperimentConfig, config_from_values, config_to_dict, load_config, override_config
from evoplastic.core.evaluation import EvaluateSettings, Evaluation, RuleToScore
from evoplastic.errors import ConfigError, RunDirError
from evoplastic.families import get_family
from evoplastic.run.rundir import RunDir

ConfigLike = str | Path | dict | ExperimentConfig


@dataclass
class Run:
    """A run directory as data: its config, final θ, per-step metrics and final evaluation."""

    path: Path
    config: ExperimentConfig
    theta: np.ndarray
    """Final θ (or the last logged centre of an unfinished run), in the family's units."""
    theta_labels: tuple[str, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    """theta.json: what the rule is, θ and the final evaluation ('final/accuracy', …); empty while unfinished."""

    @property
    def metrics(self) -> Any:
        """A pandas DataFrame, one row per outer step (the run's metrics.jsonl)."""
        import pandas as pd

        return pd.DataFrame.from_records(RunDir.open(self.path).metrics())

    def evaluate(self, **settings: Any) -> Evaluation:
        """The same as evoplastic.evaluate(run, **settings)."""
        return evaluate(self, **settings)

    def plot(self, kind: str = "learning") -> Any:
        """The same as evoplastic.plot(run, kind): a matplotlib figure."""
        return plot(self, kind)


def load_run(path: str | Path) -> Run:
    """The run directory at path (finished or not)."""
    run = RunDir.open(path)
    cfg = run.config()
    summary = run.read_json("theta.json") if (run.path / "theta.json").is_file() else {}
    theta = summary.get("theta") or _last_centre(run)
    labels = tuple(summary.get("labels") or get_family(cfg.family).theta_space(cfg).labels)
    return Run(run.path, cfg, np.asarray(theta, dtype=float), labels, summary)


def _last_centre(run: RunDir) -> list[float]:
    rows = [r for r in run.metrics() if "theta/center" in r]
    if not rows:
        raise RunDirError(f"{run.path} has no theta.json and no logged θ yet; train it first "
                          f"(evoplastic train --resume {run.path})")
    return rows[-1]["theta/center"]


def make_config(config: ConfigLike, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """A validated config from a YAML path, a dict of keys or a config object, plus ``key=value`` overrides."""
    if isinstance(config, ExperimentConfig):
        return override_config(config, overrides)
    if isinstance(config, dict):
        return config_from_values(config, overrides)
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    raise ConfigError(f"config must be a YAML path, a dict or an ExperimentConfig, not {type(config).__name__}")


def train(config: ConfigLike, *overrides: str, runs_dir: str | Path = "runs", progress: bool = False,
          callbacks: Sequence[Callable[[dict[str, Any]], None]] = (), plots: bool = True) -> Run:
    """Train one experiment into a new directory under runs_dir and return it as a Run.

    Every check (config, data, plug-ins) runs before the directory is written. Under mpirun/mpiexec the
    root rank trains and returns the Run; the other ranks serve it and return None.
    """
    cfg = make_config(config, overrides)
    return _train(cfg, None, runs_dir, progress, callbacks, plots)


def resume(path: str | Path, *overrides: str, progress: bool = False,
           callbacks: Sequence[Callable[[dict[str, Any]], None]] = (), plots: bool = True) -> Run:
    """Continue the run at path from its last checkpoint (overrides such as 'steps=20' are saved with it)."""
    run = RunDir.open(path)
    cfg = override_config(run.config(), overrides)
    return _train(cfg, run, None, progress, callbacks, plots)


def _train(cfg: ExperimentConfig, run: RunDir | None, runs_dir: str | Path | None, progress: bool,
           callbacks: Sequence[Callable], plots: bool) -> Run | None:
    from evoplastic.plugins import plugins_used
    from evoplastic.run import parallel
    from evoplastic.run.train import train as train_loop

    world = parallel.init_world()
    if not world.is_root:
        parallel.serve(world)
        return None
    with parallel.guard(world):
        fitness, score = parallel.make_scorer(world, cfg)  # fails on missing data before anything is written
        if run is None:
            run = RunDir.create(cfg, runs_dir, extra={"mpi_ranks": world.size, "plugins": plugins_used(cfg)})
        train_loop(cfg, run, resume=(runs_dir is None), fitness=fitness, score=score, progress=progress,
                   callbacks=callbacks)
        if score is not fitness:
            score.close()
    if plots:
        from evoplastic.analysis.report import plot_run

        plot_run(run)
    return load_run(run.path)


def _rules(rule: Any, overrides: Sequence[str]) -> tuple[str, list[RuleToScore]]:
    """(family name, rules) of a Run, a run path, a theta.json, a rule text or a rule object."""
    if isinstance(rule, (list, tuple)) and rule and not isinstance(rule[0], (int, float)):
        parts = [_rules(r, overrides) for r in rule]
        if len({name for name, _ in parts}) > 1:
            raise ConfigError("evaluate compares rules of one family at a time; give rules of one family")
        return parts[0][0], [r for _, rs in parts for r in rs]
    if isinstance(rule, (str, Path)) and Path(rule).expanduser().exists():
        path = Path(rule).expanduser()
        if path.is_file():  # a theta.json: the paper family's rule files
            from evoplastic.analysis.rule import parse_rule

            parsed = parse_rule(str(path), list(overrides))
            return parsed.config.family, [RuleToScore(parsed.label, parsed.theta, parsed.config)]
        rule = load_run(path)
    if isinstance(rule, Run):
        cfg = override_config(rule.config, overrides)
        return cfg.family, [get_family(cfg.family).rule_from_run(rule.path.name, cfg, rule.theta.tolist())]
    if isinstance(rule, str):
        return _parse_rule_text(rule, overrides)
    if all(hasattr(rule, a) for a in ("label", "theta", "config")):
        return rule.config.family, [RuleToScore(rule.label, tuple(rule.theta), rule.config)]
    raise ConfigError(f"cannot evaluate {rule!r}: give a Run, a run directory, a theta.json, a rule such as "
                      f"'bio:0.013,-0.054,-0.0065', or a Rule")


def _parse_rule_text(text: str, overrides: Sequence[str]) -> tuple[str, list[RuleToScore]]:
    from evoplastic.config import FAMILIES

    for name in FAMILIES.names():
        parsed = get_family(name).parse_rule(text)
        if parsed is not None:
            cfg = override_config(parsed.config, overrides) if overrides else parsed.config
            return name, [RuleToScore(parsed.label, parsed.theta, cfg)]
    raise ConfigError(f"rule {text!r} is not a run directory, a theta.json or a rule any family reads "
                      f"(e.g. bio:0.013,-0.054,-0.0065)")


def evaluate(rule: Any, *, tasks: int = 100, seed: int = 0, baselines: bool = True, device: str = "cpu",
             progress: bool = False, overrides: Sequence[str] = (), **options: Any) -> Evaluation:
    """Score rule(s) on fresh tasks beside the family's baselines, every row on identical tasks.

    rule: a Run, a run directory, a theta.json, text such as 'bio:0.013,-0.054,-0.0065', a Rule, or a list
    of them (one family). options are the family's (paper: dataset, classes, split, n_way, k_shot, n_query,
    relabel, fa_theta, bp_theta; k-cap: autoencoders). None values are left at the family's defaults.
    """
    if tasks < 1:
        raise ConfigError(f"tasks must be ≥ 1, got {tasks}")
    name, rules = _rules(rule, overrides)
    settings = EvaluateSettings(tasks, seed, device, baselines, progress,
                                {k: v for k, v in options.items() if v is not None})
    return get_family(name).evaluate(rules[0].config, rules, settings)


def plot(run: Run | str | Path, kind: str = "learning") -> Any:
    """A matplotlib figure of a run: 'learning' (accuracy and loss per step), 'theta' (θ trajectories) or
    'alignment' (error angles to backprop, when the run logged them). Nothing is written to disk."""
    from evoplastic.analysis.report import run_figures

    figures = run_figures(RunDir.open(run.path if isinstance(run, Run) else run))
    if kind not in figures:
        raise ConfigError(f"no {kind!r} plot for this run; choose one of: {', '.join(figures)}")
    return figures[kind]


@dataclass
class Comparison:
    """What compare wrote: the report's path and its markdown text (tables and plot links)."""

    path: Path
    text: str


def compare(runs: Sequence[Run | str | Path], out: str | Path, *, eval_tasks: int = 100, baselines: bool = False,
            progress: bool = False, **options: Any) -> Comparison:
    """A report comparing runs (θ, learning curves, held-out table) written to out; options as the
    compare command's flags without the dashes (eval_dataset, eval_classes, eval_seed, device, …)."""
    from evoplastic.analysis.compare import build_parser, load_runs, write_report

    argv = [str(r.path if isinstance(r, Run) else r) for r in runs] + ["--out", str(out),
                                                                       "--eval-tasks", str(eval_tasks)]
    argv += ["--baselines"] if baselines else []
    argv += [] if progress else ["--no-progress"]
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    args = build_parser().parse_args(argv)
    report = write_report(load_runs(args.runs), Path(out), args)
    return Comparison(report, report.read_text())


__all__ = ["Comparison", "Run", "compare", "config_to_dict", "evaluate", "load_run", "make_config", "plot", "resume",
           "train"]
