"""Rules under changed input statistics: train the candidate rules, then score each stress level (GPU or CPU).

Usage: python experiments/robust_stress.py OUT_DIR [--device cuda] [--tasks 100] [--deadline SECONDS]
Trains (seed 0, through evoplastic.train) the generated-pool mixture rule and the recommended robust rule,
then scores them beside the published bio rule and the fa/bp baselines on EMNIST classes 37-46 and on
EMNIST digits, at every stress level (evaluate --transform), 100 tasks per cell on identical tasks.
Writes stress.json (per-task accuracies) and stress.md (table, paired Δ vs bp); stops cleanly at the
deadline with what it has.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import evoplastic as ep

LEVELS = ("none", "erode:1", "erode:2", "dilate:1", "dilate:2", "contrast:0.3", "contrast:0.5", "contrast:2",
          "invert")
PUBLISHED_BIO = "bio:0.013,-0.054,-0.0065"
SETS = (("EMNIST 37-46", {"classes": "37-46"}), ("digits", {"dataset": "npz:{data}/emnist-digits-test.npz"}))


def train_rules(out: Path, device: str, steps: int, final_tasks: int) -> dict[str, ep.Run]:
    runs = {}
    for label, config in (("generated mixture", "configs/spaces/generated_mixture.yaml"),
                          ("recommended", "configs/robust/recommended.yaml")):
        start = time.time()
        runs[label] = ep.train(config, f"device={device}", f"steps={steps}", f"final_eval_tasks={final_tasks}",
                               runs_dir=out / "runs", plots=False)
        print(f"trained {label} in {time.time() - start:.0f} s: {runs[label].path}", flush=True)
    return runs


def paired(a: np.ndarray, b: np.ndarray) -> str:
    d = 100 * (np.asarray(a) - np.asarray(b))
    return f"{d.mean():+.1f} ± {1.96 * d.std(ddof=1) / np.sqrt(len(d)):.1f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--data", default="")
    p.add_argument("--deadline", type=float, default=1e9)
    p.add_argument("--levels", default=",".join(LEVELS), help="stress levels to score, comma-separated")
    args = p.parse_args()
    began = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = train_rules(args.out, args.device, args.steps, args.tasks)
    results, lines = {}, ["| set | level | rule | accuracy % | Δ vs bp (paired) |", "|---|---|---|---|---|"]
    for set_name, options in SETS:
        options = {k: v.format(data=args.data) for k, v in options.items()}
        for level in args.levels.split(","):
            if time.time() - began > args.deadline:
                print(f"deadline: stopped before {set_name} {level}", flush=True)
                break
            rules = [PUBLISHED_BIO, runs["generated mixture"], runs["recommended"]]
            ev = ep.evaluate(rules, tasks=args.tasks, device=args.device, overrides=[],
                             transform=None if level == "none" else level, **options)
            rows = {("published bio" if r.label == PUBLISHED_BIO else r.label): r.per_task["accuracy"] for r in ev.rows}
            rows = {("generated mixture" if k == runs["generated mixture"].path.name else
                     "recommended" if k == runs["recommended"].path.name else k): v for k, v in rows.items()}
            results[f"{set_name}|{level}"] = {k: v.tolist() for k, v in rows.items()}
            for rule, acc in rows.items():
                lines.append(f"| {set_name} | {level} | {rule} | {100 * np.mean(acc):.1f} | "
                             f"{paired(acc, rows['bp baseline'])} |")
            print(lines[-len(rows):], flush=True)
            (args.out / "stress.json").write_text(json.dumps(results))
            (args.out / "stress.md").write_text("\n".join(lines) + "\n")
    print(f"done in {time.time() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
