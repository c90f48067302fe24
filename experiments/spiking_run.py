"""Train a spiking-family config, then score the rule beside its baselines on fresh tasks, with timings.

python experiments/spiking_run.py CONFIG [key=value ...] [--eval-tasks N] [--eval-seed S] [--runs DIR]
    [--option key=value ...]                       (evaluate options: classes=37-46, input=bernoulli, …)
    [--eval 'NAME:key=value;key=value' ...]        (more evaluations of the same rule, each with its own options,
                                                    e.g. 'fashion:dataset=fashion-mnist;split=test;classes=[]')
Prints each evaluation table (every row on identical tasks), writes it as JSON beside the run, and prints the
JSON on one line starting with '@evaluation ' so that a log alone holds the results.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml

import evoplastic as ep


def parse_options(pairs: list[str]) -> dict:
    """key=value strings -> options, values read as YAML (classes=[] is an empty list)."""
    return {k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in pairs if p)}


def evaluations(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(name, options) of every evaluation asked for: the --option set first, then each --eval."""
    first = parse_options(args.option)
    named = [("_".join(f"{k}-{v}" for k, v in first.items()) or "default", first)]
    for text in args.eval:
        name, _, rest = text.partition(":")
        named.append((name, parse_options(rest.split(";"))))
    return named


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--eval-tasks", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--runs", default="runs/spiking")
    p.add_argument("--option", action="append", default=[], help="evaluate option key=value (repeatable)")
    p.add_argument("--eval", action="append", default=[], help="another evaluation 'NAME:key=value;key=value'")
    args = p.parse_intermixed_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    run = ep.train(args.config, *args.overrides, runs_dir=args.runs, plots=False)
    trained = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
    print(f"run {run.path}: trained in {trained:.0f} s (CUDA peak {memory:.0f} MiB); θ = " +
          ", ".join(f"{k}={v:.4g}" for k, v in zip(run.theta_labels, run.theta)))
    for name, options in evaluations(args):
        began = time.perf_counter()
        evaluation = ep.evaluate(run, tasks=args.eval_tasks, seed=args.eval_seed, **options)
        print(evaluation.to_text())
        record = {"run": run.path.name, "evaluation": name, "train_seconds": trained, "eval_seconds":
                  time.perf_counter() - began, "theta": [float(v) for v in run.theta], "labels": list(run.theta_labels),
                  "options": options, **evaluation.to_json()}
        (run.path / f"evaluation_{name}.json").write_text(json.dumps(record))
        print("@evaluation " + json.dumps(record))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
