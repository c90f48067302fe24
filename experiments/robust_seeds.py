"""More seeds of one rule config under every stress level (EMNIST classes 37-46), paired with the stress table.

Usage: python experiments/robust_seeds.py OUT_DIR SEED [--config configs/robust/recommended.yaml]
Evaluation tasks and initial weights depend on the evaluation seed only (0, as in robust_stress.py), so the
per-task accuracies pair with that table's bp baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import evoplastic as ep

LEVELS = ("none", "erode:1", "erode:2", "dilate:1", "dilate:2", "contrast:0.3", "contrast:0.5", "contrast:2",
          "invert")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("seed", type=int)
    p.add_argument("--config", default="configs/robust/recommended.yaml")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--label", default="recommended", help="row label (the seed is appended)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--k-shot", type=int, help="online samples per class when scoring (default: the config's)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    name = args.label.replace(" ", "_").replace(",", "")
    run = ep.train(args.config, f"seed={args.seed}", f"name={name}_seed{args.seed}", *args.set,
                   runs_dir=args.out / "runs", plots=False)
    print(f"trained seed {args.seed} in {time.time() - start:.0f} s: {run.path}", flush=True)
    label, results = f"{args.label}, seed {args.seed}", {}
    for level in LEVELS:
        ev = ep.evaluate(run, tasks=args.tasks, baselines=False, classes="37-46", k_shot=args.k_shot,
                         transform=None if level == "none" else level)
        results[f"EMNIST 37-46|{level}"] = {label: ev.rows[0].per_task["accuracy"].tolist()}
        (args.out / f"{name}_seed{args.seed}.json").write_text(json.dumps(results))
        print(level, round(100 * float(ev.rows[0].per_task["accuracy"].mean()), 1), flush=True)


if __name__ == "__main__":
    main()
