"""The stress table at 15 online samples per class (75 per task): trained rules and bp/fa on identical tasks.

Usage: python experiments/robust_shots.py OUT_DIR RUN_GENERATED RUN_RECOMMENDED [--k-shot 15] [--n-query 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import evoplastic as ep

LEVELS = ("none", "erode:1", "erode:2", "dilate:1", "dilate:2", "contrast:0.3", "contrast:0.5", "contrast:2",
          "invert")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("runs", nargs=2, type=Path, help="the generated-mixture and the recommended run directories")
    p.add_argument("--k-shot", type=int, default=15)
    p.add_argument("--n-query", type=int, default=5)
    p.add_argument("--tasks", type=int, default=100)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = {args.runs[0].name: "generated mixture", args.runs[1].name: "recommended"}
    results = {}
    for level in LEVELS:
        ev = ep.evaluate(["bio:0.013,-0.054,-0.0065", *map(str, args.runs)], tasks=args.tasks, classes="37-46",
                         k_shot=args.k_shot, n_query=args.n_query, transform=None if level == "none" else level)
        rows = {names.get(r.label, "published bio" if r.label.startswith("bio:") else r.label):
                r.per_task["accuracy"].tolist() for r in ev.rows}
        results[f"EMNIST 37-46, {args.k_shot} shots|{level}"] = rows
        (args.out / "shots.json").write_text(json.dumps(results))
        print(level, {k: round(100 * sum(v) / len(v), 1) for k, v in rows.items()}, flush=True)


if __name__ == "__main__":
    main()
