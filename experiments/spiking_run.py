"""Train a spiking-family config and score it beside its baselines, before the CLI knows the family.

python experiments/spiking_run.py CONFIG [key=value ...] [--eval-tasks N] [--runs DIR]
Registers the family in this process only, builds the config with the family's schema, trains into
a run directory and prints the family's evaluation (the rule, e-prop fa/bp/dfa, the rate network).
"""

from __future__ import annotations

import argparse
import time

import torch

import evoplastic.families as families
from evoplastic.config import _build, _merge, parse_override
from evoplastic.families.spiking.config import SpikingExperimentConfig, validate
from evoplastic.families.spiking.family import FAMILY
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train
from evoplastic.stats import mean_ci95, paired_difference
from evoplastic.yamlfile import load_yaml


def load(path: str, overrides: list[str]) -> SpikingExperimentConfig:
    values = load_yaml(path) or {}
    values.setdefault("name", path.rsplit("/", 1)[-1].removesuffix(".yaml"))
    for text in overrides:
        values = _merge(values, parse_override(text))
    cfg = _build(SpikingExperimentConfig, values)
    validate(cfg)
    return cfg


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--eval-tasks", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--runs", default="runs/spiking")
    args = p.parse_args()
    torch.set_num_threads(1)
    families.FAMILY_MODULES.setdefault("spiking", "evoplastic.families.spiking.family")
    cfg = load(args.config, args.overrides)
    run = RunDir.create(cfg, args.runs)
    start = time.perf_counter()
    summary = train(cfg, run, progress=False)
    trained = time.perf_counter() - start
    print(f"run {run.path}: trained in {trained:.0f} s, final accuracy {summary.accuracy:.3f} ± {summary.accuracy_ci95:.3f}")
    print("theta", dict(zip(FAMILY.theta_space(cfg).labels, [f"{t:.4g}" for t in summary.theta])))
    rows = FAMILY.evaluate_rows(cfg, [(f"{cfg.outer} rule", tuple(summary.theta), None)], args.eval_tasks,
                                args.eval_seed)
    control = next(r for r in rows if r.label.startswith(f"e-prop {cfg.spiking.feedback}"))
    for r in rows:
        acc, ci = mean_ci95(r.per_task["accuracy"])
        diff, dci = paired_difference(r.per_task["accuracy"], control.per_task["accuracy"])
        print(f"{r.label:34s} acc {acc:.3f} ± {ci:.3f}   vs {control.label.split(' (')[0]}: {diff:+.3f} ± {dci:.3f}"
              f"   loss {float(r.per_task['loss'].mean()):.3f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
