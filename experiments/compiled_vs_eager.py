"""Score ES runs of the compiled CPU step against eager runs of the same seeds on the same fresh tasks.

python experiments/compiled_vs_eager.py RUNS_DIR [--tasks 100] [--seed 7]
RUNS_DIR holds runs named *_compile-false_sS and *_compile-true_sS (experiments/spiking_gpu.sh's 'bio'
lane trains them: configs/es/bio.yaml with es.compile=false and true, seeds 0-2). Prints the table of
every rule on identical tasks, then per seed the paired difference compiled − eager with its 95 % CI.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

import evoplastic as ep
from evoplastic.stats import paired_difference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs_dir", type=Path)
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    found = {}
    for path in sorted(args.runs_dir.iterdir()):
        match = re.search(r"compile-(true|false)_s(\d+)$", path.name)
        if match:
            found[(int(match[2]), match[1] == "true")] = path
    seeds = sorted({seed for seed, _ in found if (seed, True) in found and (seed, False) in found})
    if not seeds:
        raise SystemExit(f"no pair of *_compile-false_sS / *_compile-true_sS runs in {args.runs_dir}")
    paths = [found[(seed, compiled)] for seed in seeds for compiled in (False, True)]
    evaluation = ep.evaluate([ep.load_run(path) for path in paths], tasks=args.tasks, seed=args.seed,
                             baselines=False)
    print(evaluation.to_text())
    accuracy = {row["label"]: torch.tensor(row["per_task"]["accuracy"]) for row in evaluation.to_json()["rows"]}
    for seed in seeds:
        eager, compiled = (accuracy[found[(seed, c)].name] for c in (False, True))
        mean, half = paired_difference(100 * compiled, 100 * eager)
        print(f"seed={seed}: compiled − eager = {mean:+.2f} ± {half:.2f} points (paired, 95 % CI over tasks)")


if __name__ == "__main__":
    main()
