"""The stress table as markdown: rows are rules, columns stress levels, cells accuracy and paired Δ vs bp.

Usage: python experiments/robust_table.py STRESS_JSON [CONTROLS_JSON] > docs/results/robustness/table.md
Reads robust_stress.py's per-task accuracies (and robust_controls.py's, on the same tasks).
"""

from __future__ import annotations

import json
import sys

import numpy as np

ORDER = ("published bio", "generated mixture", "recommended", "fa baseline", "bp baseline",
         "bp:0.014 + unit norm", "fa:0.012 + unit norm")


def cell(acc: list[float], bp: list[float]) -> str:
    a, b = 100 * np.asarray(acc), 100 * np.asarray(bp)
    d = a - b
    ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return f"{a.mean():.1f} ({d.mean():+.1f} ± {ci:.1f})"


def main() -> None:
    results = json.loads(open(sys.argv[1]).read())
    for path in sys.argv[2:]:
        for key, rows in json.loads(open(path).read()).items():
            results.setdefault(key, {}).update(rows)
    sets = list(dict.fromkeys(key.split("|")[0] for key in results))
    for name in sets:
        levels = [key.split("|")[1] for key in results if key.startswith(name + "|")]
        present = [r for r in dict.fromkeys(r for lv in levels for r in results[f"{name}|{lv}"])
                   if all(r in results[f"{name}|{lv}"] for lv in levels)]
        rules = [r for r in ORDER if r in present] + [r for r in present if r not in ORDER]
        n_tasks = len(results[f"{name}|{levels[0]}"][rules[0]])
        print(f"\n**{name}**: accuracy % (paired Δ vs bp ± 95 % CI over {n_tasks} tasks)\n")
        print("| rule | " + " | ".join(levels) + " |")
        print("|---|" + "---|" * len(levels))
        for rule in rules:
            cells = [cell(results[f"{name}|{lv}"][rule], results[f"{name}|{lv}"]["bp baseline"]) for lv in levels]
            print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
