"""The input-normalisation control for the stress table: bp and fa with network.input_norm=unit, per level.

Usage: python experiments/robust_controls.py OUT_DIR [--tasks 100] [--levels none,erode:1,...]
The tasks and initial weights depend on the seed only, so these rows pair with robust_stress.py's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import evoplastic as ep

LEVELS = "none,erode:1,erode:2,dilate:1,dilate:2,contrast:0.3,contrast:0.5,contrast:2,invert"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--levels", default=LEVELS)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for level in args.levels.split(","):
        ev = ep.evaluate(["bp:0.014", "fa:0.012"], tasks=args.tasks, baselines=False, classes="37-46",
                         overrides=["network.input_norm=unit"], transform=None if level == "none" else level)
        results[f"EMNIST 37-46|{level}"] = {f"{row.label} + unit norm": row.per_task["accuracy"].tolist()
                                            for row in ev.rows}
        print(level, {k: round(100 * sum(v) / len(v), 1) for k, v in results[f"EMNIST 37-46|{level}"].items()},
              flush=True)
        (args.out / "controls.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
