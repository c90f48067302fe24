"""Evaluate discovered rules on new tasks, classes and datasets, beside the fa and bp baselines.

``evoplastic evaluate RULE``: RULE is a run directory, a theta.json file, or NAME:θ,… such as
``bio:0.013,-0.054,-0.0065``, ``fa:0.012`` or ``0,2,9:0.013,-0.054,-0.0065`` (one θ per term,
paper units and sign convention). Every rule, baselines included, is scored on the same
tasks with the same initial weights (both derived from --seed only), so rows are paired.
``--stream N`` follows the paper's Fig. 1 instead: one online stream of N samples from all
classes, with accuracy on held-out images every --every samples.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from evoplastic.config import ConfigError, ExperimentConfig, RuleConfig, TaskConfig, override_config, validate
from evoplastic.core.fitness import FitnessFunction
from evoplastic.families.paper.data import Dataset, load_dataset
from evoplastic.families.paper.problem import PaperProblem
from evoplastic.families.paper.rules import NAMED_RULES, resolve_terms
from evoplastic.families.paper.tasks import TaskSampler
from evoplastic.run.rundir import RunDir

BASELINE_THETA = {"fa": 0.012, "bp": 0.014}
"""Default θ_0 of the fa and bp baselines: what the paper's Adam loop found on EMNIST (5-way,
250 online samples, 300 episodes, softplus; runs adam_fa: θ_0 = 0.0122, adam_bp: 0.0138).
Other activations or datasets may prefer other values: pass --fa-theta/--bp-theta."""

PURPOSE = "evaluate"
"""Random-stream key of evaluation tasks, distinct from training's train/eval/final draws."""

TASK_BLOCK = 10
"""Tasks per draw and inner-loop call; block b's tasks depend only on (seed, b)."""


@dataclass(frozen=True)
class Rule:
    """A rule to evaluate: coefficients θ (paper units, one per term) and the config it came with."""

    label: str
    theta: tuple[float, ...]
    config: ExperimentConfig
    """Network, default task settings and rule.terms of the rule's origin (a run or the defaults)."""

    @property
    def terms(self) -> tuple[int, ...]:
        return resolve_terms(self.config.rule.terms)


def _with_rule(cfg: ExperimentConfig, terms: str, theta: tuple[float, ...], overrides=(),
               feedback: str | None = None) -> ExperimentConfig:
    # outer=es: evaluation needs no meta-gradient, so an Adam run's rule may go to, e.g., a ReLU network
    cfg = replace(cfg, outer="es", rule=RuleConfig(terms=terms, theta_init=tuple(float(v) for v in theta)))
    try:
        cfg = override_config(cfg, overrides)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    return replace(cfg, network=replace(cfg.network, feedback=feedback)) if feedback else cfg


def _check_theta(text: str, terms: tuple[int, ...], theta: list) -> tuple[float, ...]:
    if len(theta) != len(terms):
        raise ValueError(f"{text}: {len(theta)} coefficient(s) for {len(terms)} term(s) {list(terms)}; "
                         f"give one θ per term, in term order")
    values = tuple(float(v) for v in theta)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text}: coefficients must be finite, got {list(values)}")
    return values


def _rule_from_run(path: Path, overrides) -> Rule:
    run = RunDir.open(path)
    cfg = run.config()
    if (path / "theta.json").is_file():
        theta = run.read_json("theta.json")["theta"]
    else:  # an unfinished run: its last logged centre
        rows = [r for r in run.metrics() if "theta/center" in r]
        if not rows:
            raise ValueError(f"{path} has no theta.json and no logged θ yet: nothing to evaluate")
        theta = rows[-1]["theta/center"]
        print(f"note: {path} has no theta.json; using the centre θ of step {rows[-1]['step']}", file=sys.stderr)
    terms = resolve_terms(cfg.rule.terms)
    return Rule(path.name, _check_theta(str(path), terms, theta), _with_rule(cfg, cfg.rule.terms, theta, overrides))


def _rule_from_theta_json(path: Path, overrides) -> Rule:
    try:
        data = json.loads(path.read_text())
        terms, theta = tuple(int(t) for t in data["terms"]), [float(v) for v in data["theta"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise ValueError(f"{path} is not a theta.json (a JSON object with 'terms' and 'theta' lists)") from None
    cfg = RunDir(path.parent).config() if (path.parent / "config.yaml").is_file() else ExperimentConfig()
    network = replace(cfg.network, activation=data.get("activation", cfg.network.activation),
                      feedback=data.get("feedback", cfg.network.feedback))
    cfg = replace(cfg, network=network)
    theta = _check_theta(str(path), terms, theta)
    return Rule(str(path), theta, _with_rule(cfg, ",".join(map(str, terms)), theta, overrides))


def _rule_from_spec(text: str, overrides) -> Rule:
    name, sep, values = text.partition(":")
    example = "e.g. bio:0.013,-0.054,-0.0065, fa:0.012 or 0,2,9:0.013,-0.054,-0.0065"
    if not sep:
        raise ValueError(f"RULE {text!r} is not a run directory, a theta.json file or NAME:θ,… ({example})")
    try:
        terms = resolve_terms(name)
    except ValueError as err:
        raise ValueError(f"RULE {text!r}: {err}") from None
    try:
        theta = [float(v) for v in values.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"RULE {text!r}: coefficients must be numbers separated by commas ({example})") from None
    theta = _check_theta(f"RULE {text!r}", terms, theta)
    key = name.strip().lower()
    spec = key if key in NAMED_RULES else ",".join(map(str, terms))
    feedback = key if key in ("fa", "bp") else None
    return Rule(text, theta, _with_rule(ExperimentConfig(name=spec), spec, theta, overrides, feedback))


def parse_rule(text: str, overrides: tuple[str, ...] | list[str] = ()) -> Rule:
    """RULE as a run directory, a theta.json file or NAME:θ,…; overrides are ``key=value`` config edits.

    Named ``fa``/``bp`` rules set the feedback; other named rules take ExperimentConfig's defaults.
    """
    path = Path(text).expanduser()
    if path.is_dir():
        return _rule_from_run(path, overrides)
    if path.is_file():
        return _rule_from_theta_json(path, overrides)
    return _rule_from_spec(text, overrides)


def baseline_rules(like: Rule, fa_theta: float = BASELINE_THETA["fa"],
                   bp_theta: float = BASELINE_THETA["bp"]) -> list[Rule]:
    """The fa and bp baselines (θ_0 only) on ``like``'s network (dims, activation)."""
    return [Rule(f"{kind} baseline", (theta,), _with_rule(like.config, kind, (theta,), feedback=kind))
            for kind, theta in (("fa", fa_theta), ("bp", bp_theta))]


def ablated_rules(rule: Rule) -> list[Rule]:
    """The rule with one term's coefficient set to zero, for each searched term.

    A term counts as dropped when zeroing it does not worsen held-out accuracy beyond the
    noise (the paired difference's CI includes zero): ES never lands exactly on zero.
    """
    out = []
    for i, term in enumerate(rule.terms):
        theta = tuple(0.0 if j == i else v for j, v in enumerate(rule.theta))
        config = replace(rule.config, rule=replace(rule.config.rule, theta_init=theta))
        out.append(Rule(f"without θ_{term}", theta, config))
    return out


def parse_classes(text: str) -> tuple[int, ...]:
    """'40-46', '0,2,5' or '0-9,20' -> sorted unique class ids."""
    ids: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            low, dash, high = part.partition("-")
            ids.update(range(int(low), int(high) + 1) if dash else [int(low)])
    except ValueError:
        raise ValueError(f"--classes {text!r}: write class ids such as 40-46 or 0,2,5 or 0-9,20") from None
    if not ids:
        raise ValueError(f"--classes {text!r} names no class")
    return tuple(sorted(ids))


def format_classes(classes: tuple[int, ...] | list[int]) -> str:
    """Class ids compressed to ranges: (0, 1, 2, 5) -> '0-2,5'."""
    parts, run = [], []
    for c in sorted(classes):
        if run and c != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(c)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def same_dataset(a: str, b: str) -> bool:
    """Whether two dataset names denote the same data (file paths compared resolved)."""
    kind_a, kind_b = a.partition(":")[0], b.partition(":")[0]
    if kind_a in ("npz", "idx") and kind_a == kind_b:
        return Path(a[4:]).expanduser().resolve() == Path(b[4:]).expanduser().resolve()
    return a == b


def held_out_classes(rules: list[Rule], dataset: Dataset) -> tuple[int, ...]:
    """Classes of ``dataset`` that no rule trained on when every rule restricted task.classes on it, else all."""
    present = tuple(torch.unique(dataset.labels).tolist())
    trained: set[int] = set()
    for rule in rules:
        task = rule.config.task
        if not task.classes or not same_dataset(task.dataset, dataset.name):
            return present
        trained |= set(task.classes)
    held = tuple(c for c in present if c not in trained)
    if not held:
        raise ValueError(f"the rules trained on every class of {dataset.name}; choose classes with --classes")
    return held


def load_eval_dataset(rule: Rule, name: str | None = None, split: str | None = None) -> Dataset:
    """The evaluation dataset: ``name`` or the rule's meta-training dataset, read as its run did."""
    task = rule.config.task
    return load_dataset(name or task.dataset, task.data_dir, split or task.split, task.download)


def task_config(rule: Rule, dataset: Dataset, classes: tuple[int, ...], split: str | None = None,
                **sizes: int | bool | None) -> TaskConfig:
    """Evaluation tasks: the rule's task settings on ``dataset``/``classes``, classes without replacement.

    sizes: n_way, k_shot, n_query, relabel; None keeps the rule's.
    """
    task = replace(rule.config.task, dataset=dataset.name, split=split or rule.config.task.split,
                   classes=tuple(classes), class_replacement=False,
                   **{k: v for k, v in sizes.items() if v is not None})
    if task.n_way > len(classes):
        raise ValueError(f"{task.n_way}-way tasks need ≥ {task.n_way} classes but only {len(classes)} are "
                         f"available ({format_classes(classes)}); lower --n-way or widen --classes")
    return task


def evaluation_config(rule: Rule, task: TaskConfig, dataset: Dataset, seed: int, device: str) -> ExperimentConfig:
    """The rule's config with the evaluation tasks; clear errors when its network cannot take them."""
    cfg = replace(rule.config, seed=seed, device=device, outer="es", task=task,
                  rule=replace(rule.config.rule, l1=0.0))
    try:
        cfg = validate(cfg)
    except ConfigError as err:
        raise ValueError(f"{rule.label}: {err}") from None
    dims, pixels = cfg.network.dims, dataset.n_features
    if dims[0] != pixels:
        raise ValueError(
            f"{rule.label}: its network {list(dims)} takes {dims[0]} inputs but {dataset.name} images have "
            f"{pixels} pixels. Evaluate on a dataset with {dims[0]}-pixel images, or on another network "
            f"(θ does not depend on it): --set network.dims=[{','.join(map(str, (pixels, *dims[1:])))}]")
    top = task.n_way - 1 if task.relabel else max(task.classes)
    if top >= dims[-1]:
        raise ValueError(
            f"{rule.label}: class id {top} of {dataset.name} does not fit the network's {dims[-1]} outputs; "
            f"pick classes below {dims[-1]} with --classes, or --relabel to label each task's classes 0..n_way-1")
    return cfg


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width (1.96 standard errors) of per-task values."""
    values = values.double()
    ci = 1.96 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), ci


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
                "feedback": cfg.network.feedback, "activation": cfg.network.activation,
                "dims": list(cfg.network.dims), "accuracy": self.accuracy, "accuracy_ci95": self.accuracy_ci95,
                "loss": self.loss, "task_accuracy": self.task_accuracy.tolist(), "task_loss": self.task_loss.tolist()}


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
        theta = torch.tensor([rule.theta], dtype=torch.float64)
        accs, losses = [], []
        for block, start in enumerate(range(0, n_tasks, TASK_BLOCK)):
            count = min(TASK_BLOCK, n_tasks - start)
            with torch.no_grad():
                ev = fitness(theta, block, PURPOSE, count)
            accs.append(ev.task_accuracy.reshape(-1).cpu().double())
            losses.append(ev.task_loss.reshape(-1).cpu().double())
            bar.update(count)
        results.append(RuleEvaluation(rule, torch.cat(accs), torch.cat(losses)))
    bar.close()
    return results


def format_theta(rule: Rule) -> str:
    return " ".join(f"θ{t}={v:.6g}" for t, v in zip(rule.terms, rule.theta))


def format_table(results: list[RuleEvaluation], header: str = "") -> str:
    """Plain-text table: accuracy ± 95 % CI and the paired difference to the first row."""
    rows = [("rule", "feedback", "θ (paper units)", "query accuracy", "Δ vs first (paired)", "loss")]
    for i, r in enumerate(results):
        diff = "—" if i == 0 else "{:+.2f} ± {:.2f}".format(*(100 * v for v in r.difference(results[0])))
        rows.append((r.rule.label, r.rule.config.network.feedback, format_theta(r.rule),
                     f"{100 * r.accuracy:.2f} % ± {100 * r.accuracy_ci95:.2f}", diff, f"{r.loss:.4f}"))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([header] if header else []) + lines)


def describe_tasks(task: TaskConfig, n_tasks: int, seed: int) -> str:
    return (f"{n_tasks} tasks of {task.dataset} ({task.split}), classes {format_classes(task.classes)}: "
            f"{task.n_way}-way, {task.k_shot} online samples and {task.n_query} query images per class, "
            f"seed {seed}; 95 % CI over tasks")


def _run_stream(args: argparse.Namespace, rules: list[Rule], dataset: Dataset, classes: tuple[int, ...]) -> int:
    from evoplastic.families.paper.stream import evaluate_stream, format_stream_table, plot_stream

    relabel = bool(args.relabel) if args.relabel is not None else rules[0].config.task.relabel
    curves = evaluate_stream(rules, dataset, classes, args.stream, args.every, args.test_size, args.repeats,
                             args.seed, args.device, relabel, not args.no_progress)
    header = (f"test accuracy (%) on {args.test_size} held-out images of {dataset.name}, classes "
              f"{format_classes(classes)}, after n online samples ({args.repeats} stream(s), seed {args.seed})")
    print(format_stream_table(curves, header))
    if args.plot:
        print(f"plot: {plot_stream(curves, args.plot, header)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": "stream", "dataset": dataset.name, "classes": list(classes), "samples": args.stream,
            "every": args.every, "test_size": args.test_size, "repeats": args.repeats, "seed": args.seed,
            "results": [c.to_json() for c in curves]}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evoplastic evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rule", metavar="RULE",
                   help="run directory, theta.json, or NAME:θ,… (e.g. bio:0.013,-0.054,-0.0065)")
    p.add_argument("--dataset", help="digits, emnist, mnist, fashion-mnist, npz:PATH or idx:DIR "
                                     "(default: the run's meta-training dataset)")
    p.add_argument("--split", choices=("train", "test"), help="split of torchvision/IDX datasets (default: the run's)")
    p.add_argument("--classes", help="class ids such as 37-46 or 0,2,5 (default: the classes a run with restricted "
                                     "task.classes did not train on, else all; --stream: all)")
    p.add_argument("--relabel", action=argparse.BooleanOptionalAction, default=None,
                   help="label each task's classes 0..n_way-1 (default: as the run)")
    p.add_argument("--tasks", type=int, default=100, help="evaluation tasks (default 100)")
    p.add_argument("--n-way", type=int)
    p.add_argument("--k-shot", type=int)
    p.add_argument("--n-query", type=int)
    p.add_argument("--seed", type=int, default=0, help="same seed ⇒ same tasks and initial weights (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="also evaluate fa and bp (θ_0 only) on the same tasks (default on)")
    p.add_argument("--fa-theta", type=float, default=BASELINE_THETA["fa"], help="θ_0 of the fa baseline (0.012)")
    p.add_argument("--bp-theta", type=float, default=BASELINE_THETA["bp"], help="θ_0 of the bp baseline (0.014)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="edit the rule's config, e.g. network.dims=[64,48,32,10] (repeatable)")
    p.add_argument("--ablate", action="store_true",
                   help="also evaluate the rule with each term zeroed (paired Δ shows which terms matter)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results (with per-task values) as JSON")
    p.add_argument("--stream", type=int, metavar="N", help="Fig. 1 protocol: one online stream of N samples")
    p.add_argument("--every", type=int, default=250, help="--stream: test every this many samples (250)")
    p.add_argument("--test-size", type=int, default=1000, help="--stream: held-out test images (1000)")
    p.add_argument("--repeats", type=int, default=1, help="--stream: independent streams and initial weights (1)")
    p.add_argument("--plot", type=Path, metavar="PATH", help="--stream: write the accuracy curve as PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args: argparse.Namespace) -> int:
    rule = parse_rule(args.rule, args.set)
    rules = [rule] + (ablated_rules(rule) if args.ablate else [])
    rules += baseline_rules(rule, args.fa_theta, args.bp_theta) if args.baselines else []
    dataset = load_eval_dataset(rule, args.dataset, args.split)
    if args.stream is not None:
        classes = parse_classes(args.classes) if args.classes else tuple(torch.unique(dataset.labels).tolist())
        return _run_stream(args, rules, dataset, classes)
    classes = parse_classes(args.classes) if args.classes else held_out_classes([rule], dataset)
    task = task_config(rule, dataset, classes, args.split, n_way=args.n_way, k_shot=args.k_shot,
                       n_query=args.n_query, relabel=args.relabel)
    results = evaluate_rules(rules, dataset, task, args.tasks, args.seed, args.device, not args.no_progress)
    print(format_table(results, describe_tasks(task, args.tasks, args.seed)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": "tasks", "dataset": task.dataset, "split": task.split, "classes": list(task.classes),
            "n_way": task.n_way, "k_shot": task.k_shot, "n_query": task.n_query, "relabel": task.relabel,
            "tasks": args.tasks, "seed": args.seed, "results": [r.to_json() for r in results]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``evoplastic evaluate RULE [options]``; returns the exit status (2 on a bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic evaluate: error: {err}", file=sys.stderr)
        return 2
