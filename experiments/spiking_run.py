"""Train a spiking-family config, then score the rule beside its baselines on fresh tasks, with timings.

python experiments/spiking_run.py CONFIG [key=value ...] [--eval-tasks N] [--eval-seed S] [--runs DIR]
    [--option key=value ...]   (evaluate options: classes=37-46, dataset=fashion-mnist, input=bernoulli, …)
Prints the evaluation table (every row on identical tasks) and writes it as JSON beside the run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml

import evoplastic as ep


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--eval-tasks", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--runs", default="runs/spiking")
    p.add_argument("--option", action="append", default=[], help="evaluate option key=value (repeatable)")
    args = p.parse_intermixed_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    run = ep.train(args.config, *args.overrides, runs_dir=args.runs, plots=False)
    trained = time.perf_counter() - start
    print(f"run {run.path}: trained in {trained:.0f} s; θ = " +
          ", ".join(f"{k}={v:.4g}" for k, v in zip(run.theta_labels, run.theta)))
    options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.option)}
    evaluation = ep.evaluate(run, tasks=args.eval_tasks, seed=args.eval_seed, **options)
    print(evaluation.to_text())
    out = run.path / f"evaluation_{'_'.join(f'{k}-{v}' for k, v in options.items()) or 'default'}.json"
    out.write_text(json.dumps({"train_seconds": trained, "options": options, **evaluation.to_json()}))
    print(f"total {time.perf_counter() - start:.0f} s; evaluation written to {out}")


if __name__ == "__main__":
    main()
