"""Evaluate discovered rules on new tasks, classes and datasets, beside the fa and bp baselines.

``evoplastic evaluate RULE``: RULE is a run directory, a theta.json file, or NAME:θ,… such as
``bio:0.013,-0.054,-0.0065``, ``fa:0.012`` or ``0,2,9:0.013,-0.054,-0.0065`` (one θ per term,
paper units and sign convention; a run or theta.json keeps its rule space: per-layer coefficients,
generated terms, plastic feedback). Every rule, baselines included, is scored on the same
tasks with the same initial weights (both derived from --seed only), so rows are paired.
``--stream N`` follows the paper's Fig. 1 instead: one online stream of N samples from all
classes, with accuracy on held-out images every --every samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from evoplastic.analysis.rule import parse_rule, run_theta
from evoplastic.analysis.tables import grouped_rows, grouped_tables, rows_to_json
from evoplastic.config import DEFAULT_FAMILY, FAMILIES, ConfigError, ExperimentConfig, override_config
from evoplastic.core.evaluation import EvaluateSettings, RuleToScore
from evoplastic.families import get_family
from evoplastic.families.paper.config import SCHEMA as PAPER_SCHEMA
from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import Dataset
from evoplastic.families.paper.evaluation import RuleEvaluation, evaluate_rules  # noqa: F401 — re-exported
from evoplastic.families.paper.rulespec import (  # noqa: F401 — re-exported: the evaluate command's vocabulary
    BASELINE_THETA,
    PURPOSE,
    TASK_BLOCK,
    Rule,
    ablated_rules,
    baseline_rules,
    evaluation_config,
    format_classes,
    held_out_classes,
    load_eval_dataset,
    parse_classes,
    same_dataset,
    task_config,
)
from evoplastic.families.paper.transforms import transformed
from evoplastic.run.rundir import RunDir

IMAGE_TASK_FAMILY = PAPER_SCHEMA.name
"""The family whose image-task evaluation (one RULE, fa/bp baselines, --stream, --transform, its own table and
JSON) this module runs itself; every other family's rules go through Family.evaluate."""
FAMILY_OPTIONS = ("dataset", "split", "classes", "relabel", "n_way", "k_shot", "n_query", "transform", "fa_theta",
                  "bp_theta", "controls", "autoencoders")
"""Options handed to Family.evaluate as EvaluateSettings.options when given; a family names those it does not take."""
STREAM_OPTIONS = ("stream", "plot")
"""Options of the paper's Fig. 1 stream protocol, which Family.evaluate has no form for."""
TABLE_COEFFICIENTS = 10
"""Coefficients a table row prints in full; larger rules print their count and largest entries (all: --json)."""


def format_theta(rule: Rule) -> str:
    """'θ0=… θ2=…' by the space's labels, θ_r written θr to stay short: 'θ0@W1=…', 'φ_hebb=…'; a rule of more
    than TABLE_COEFFICIENTS coefficients shows how many are non-zero and the largest (in search units)."""
    labels = [label.replace("θ_", "θ", 1) for label in rule.space.labels()]
    if len(labels) <= TABLE_COEFFICIENTS:
        return " ".join(f"{label}={v:.6g}" for label, v in zip(labels, rule.theta))
    scales = rule.space.scales(rule.config.es.term_scale)
    order = sorted(range(len(labels)), key=lambda i: -abs(rule.theta[i]) / scales[i])[:3]
    largest = " ".join(f"{labels[i]}={rule.theta[i]:.3g}" for i in order)
    nonzero = sum(v != 0 for v in rule.theta)
    return f"{nonzero} of {len(labels)} non-zero; largest: {largest} …"


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
            f"seed={seed}; 95 % CI over tasks")


def _run_stream(args: argparse.Namespace, rules: list[Rule], dataset: Dataset, classes: tuple[int, ...]) -> int:
    from evoplastic.families.paper.stream import evaluate_stream, format_stream_table, plot_stream

    relabel = bool(args.relabel) if args.relabel is not None else rules[0].config.task.relabel
    curves = evaluate_stream(rules, dataset, classes, args.stream, args.every, args.test_size, args.repeats,
                             args.seed, args.device, relabel, not args.no_progress)
    header = (f"test accuracy (%) on {args.test_size} held-out images of {dataset.name}, classes "
              f"{format_classes(classes)}, after n online samples ({args.repeats} stream(s), seed={args.seed})")
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
    p.add_argument("rule", metavar="RULE", nargs="+",
                   help="run directory, theta.json, or NAME:θ,… (e.g. bio:0.013,-0.054,-0.0065); k-cap runs: "
                        "one or more run directories, scored on identical tasks")
    common = p.add_argument_group("every family")
    common.add_argument("--tasks", type=int, default=100,
                        help="evaluation tasks (default 100; k-cap runs: per dataset)")
    common.add_argument("--seed", type=int, default=0, help="same seed ⇒ same tasks and initial weights (default 0)")
    common.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    common.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the family's baselines on the same tasks: paper fa and bp (θ_0 only); "
                             "k-cap the untrained network and the raw input (default on)")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="edit the rule's config, e.g. network.dims=[64,48,32,10] or kcap.labels_per_class=10 "
                             "(repeatable)")
    common.add_argument("--ablate", action="store_true",
                        help="also evaluate the rule with each coordinate (paper: each term, each layer's rule, "
                             "the feedback rule) zeroed; the paired Δ shows what matters")
    common.add_argument("--json", type=Path, metavar="PATH", help="write the results (with per-task values) as JSON")
    paper = p.add_argument_group("paper family (image tasks)")
    paper.add_argument("--dataset", help="digits, emnist, mnist, fashion-mnist, npz:PATH or idx:DIR "
                                         "(default: the run's meta-training dataset)")
    paper.add_argument("--split", choices=("train", "test"),
                       help="split of torchvision/IDX datasets (default: the run's)")
    paper.add_argument("--classes", help="class ids such as 37-46 or 0,2,5 (default: the classes a run with restricted "
                                         "task.classes did not train on, else all; --stream: all)")
    paper.add_argument("--relabel", action=argparse.BooleanOptionalAction, default=None,
                       help="label each task's classes 0..n_way-1 (default: as the run)")
    paper.add_argument("--n-way", type=int)
    paper.add_argument("--k-shot", type=int)
    paper.add_argument("--n-query", type=int)
    paper.add_argument("--transform", metavar="NAME:LEVEL",
                       help="score on a changed input statistic: erode:N or dilate:N (N 3×3 steps: thinner or "
                            "thicker strokes), contrast:C (pixels × C, clipped), invert")
    paper.add_argument("--fa-theta", type=float, help=f"θ_0 of the fa baseline ({BASELINE_THETA['fa']})")
    paper.add_argument("--bp-theta", type=float, help=f"θ_0 of the bp baseline ({BASELINE_THETA['bp']})")
    paper.add_argument("--stream", type=int, metavar="N", help="Fig. 1 protocol: one online stream of N samples")
    paper.add_argument("--every", type=int, default=250, help="--stream: test every this many samples (250)")
    paper.add_argument("--test-size", type=int, default=1000, help="--stream: held-out test images (1000)")
    paper.add_argument("--repeats", type=int, default=1, help="--stream: independent streams and initial weights (1)")
    paper.add_argument("--plot", type=Path, metavar="PATH", help="--stream: write the accuracy curve as PNG")
    kcap = p.add_argument_group("k-cap family (its settings, e.g. labels per class, go through --set kcap.KEY=VALUE)")
    kcap.add_argument("--controls", action="store_true", default=None,
                      help="also score the untuned start rule (hebb 0.01) and θ = 0 on the same tasks")
    kcap.add_argument("--autoencoders", action="store_true", default=None,
                      help="also train the backprop RNN and MLP autoencoders on every task (about 4 minutes for "
                           "100 tasks on 2 CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _family_of(text: str) -> str:
    """The family of a RULE: a run directory's (or that of the run a theta.json sits in), a theta.json's own
    'family', else the family whose rule text it is (e.g. kcap:hebb=0.01 or bio:0.013,-0.054,-0.0065); text no
    family claims and a theta.json without 'family' are read as a config without one is, by the default family
    (whose parser then names what is wrong)."""
    path = Path(text).expanduser()
    run = path if path.is_dir() else path.parent
    if (run / "config.yaml").is_file():
        return RunDir.open(run).config().family
    if path.is_file():
        return json.loads(path.read_text()).get("family", DEFAULT_FAMILY)
    if path.exists():
        raise FileNotFoundError(f"{path} is a directory without config.yaml; give a run directory or theta.json")
    for name in FAMILIES.names():
        if _claims(name, text):
            return name
    return DEFAULT_FAMILY


def _claims(family: str, text: str) -> bool:
    """Whether text is in the family's rule syntax: its parser reads it, or refuses it with a reason (which may
    go away with --set overrides, e.g. more coefficients for feedback terms)."""
    try:
        return get_family(family).parse_rule(text) is not None
    except ValueError:
        return True


def _family_rule(text: str, overrides: list[str]) -> tuple[str, ExperimentConfig, torch.Tensor]:
    """(label, config with overrides, θ) of a run directory, a theta.json or a rule text of a non-paper family."""
    path = Path(text).expanduser()
    if not path.exists():
        family = _family_of(text)
        parsed = get_family(family).parse_rule(text)
        if parsed is None:
            raise ValueError(f"RULE {text!r} is not a run directory, a theta.json file or rule text of the {family} "
                             f"family")
        try:
            cfg = override_config(parsed.config, overrides)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return parsed.label, cfg, torch.tensor(parsed.theta, dtype=torch.float64)
    run = RunDir.open(path if path.is_dir() else path.parent)
    try:
        cfg = override_config(run.config(), overrides)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    theta = json.loads(path.read_text())["theta"] if path.is_file() else run_theta(run)
    return run.path.name, cfg, torch.tensor(theta, dtype=torch.float64)


def _run_family(args: argparse.Namespace, family_name: str) -> int:
    """RULEs of a family that brings its own evaluation: the rules and its baselines on the same tasks."""
    family = get_family(family_name)
    rules = [_family_rule(text, args.set) for text in args.rule]
    if any(_family_of(text) != family_name for text in args.rule):
        raise ValueError(f"evaluate compares rules of one family at a time; {args.rule} mix families")
    cfg = rules[0][1]
    if args.ablate:  # the first rule with each coordinate zeroed: which ones matter (paired Δ)
        label, _, theta = rules[0]
        names = get_family(family_name).theta_space(cfg).labels
        rules += [(f"without {name}", cfg, theta.index_fill(0, torch.tensor([i]), 0.0)) for i, name in enumerate(names)]
    given = [f"--{name}" for name in STREAM_OPTIONS if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: the one-stream protocol (Fig. 1) is the {IMAGE_TASK_FAMILY} family's; "
                         f"{family_name} rules are scored on tasks (drop {' and '.join(given)})")
    options = {name: getattr(args, name) for name in FAMILY_OPTIONS if getattr(args, name) is not None}
    settings = EvaluateSettings(args.tasks, args.seed, args.device, args.baselines, not args.no_progress, options)
    to_score = [RuleToScore(label, tuple(theta.tolist()), own) for label, own, theta in rules]
    evaluation = family.evaluate(cfg, to_score, settings)
    grouped = grouped_rows(evaluation)
    print(f"{evaluation.description}\n")
    print(grouped_tables(grouped, tuple(m.name for m in evaluation.metrics)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mode": "family", "family": family_name, "tasks": args.tasks,
                                         "seed": args.seed, "overrides": args.set, "options": options,
                                         "description": evaluation.description, **rows_to_json(grouped)}))
    return 0


def _run(args: argparse.Namespace) -> int:
    family_name = _family_of(args.rule[0])
    if family_name != IMAGE_TASK_FAMILY:
        return _run_family(args, family_name)
    # the image-task evaluation below (fa/bp baselines, held-out classes, streams) is the paper family's
    if len(args.rule) > 1:
        raise ValueError("the paper family's evaluate takes one RULE (add --ablate and the fa/bp baselines instead)")
    args.rule = args.rule[0]
    rule = parse_rule(args.rule, args.set)
    rules = [rule] + (ablated_rules(rule) if args.ablate else [])
    fa, bp = (BASELINE_THETA[k] if v is None else v for k, v in (("fa", args.fa_theta), ("bp", args.bp_theta)))
    rules += baseline_rules(rule, fa, bp) if args.baselines else []
    dataset = load_eval_dataset(rule, args.dataset, args.split)
    if args.transform:
        dataset = transformed(dataset, args.transform)
    if args.stream is not None:
        classes = parse_classes(args.classes) if args.classes else tuple(torch.unique(dataset.labels).tolist())
        return _run_stream(args, rules, dataset, classes)
    classes = parse_classes(args.classes) if args.classes else held_out_classes([rule], dataset)
    task = task_config(rule, dataset, classes, args.split, n_way=args.n_way, k_shot=args.k_shot,
                       n_query=args.n_query, relabel=args.relabel)
    results = evaluate_rules(rules, dataset, task, args.tasks, args.seed, args.device, not args.no_progress)
    stress = f" (images through {args.transform})" if args.transform else ""
    print(format_table(results, describe_tasks(task, args.tasks, args.seed) + stress))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": "tasks", "dataset": task.dataset, "split": task.split, "classes": list(task.classes),
            "n_way": task.n_way, "k_shot": task.k_shot, "n_query": task.n_query, "relabel": task.relabel,
            "tasks": args.tasks, "seed": args.seed, "transform": args.transform,
            "results": [r.to_json() for r in results]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``evoplastic evaluate RULE [options]``; returns the exit status (2 on a bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic evaluate: error: {err}", file=sys.stderr)
        return 2
