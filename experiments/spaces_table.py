"""Summary table of experiments/spaces_eval.sh: per rule and held-out set, accuracy ± 95 % CI and Δ vs bp (paired).

Usage: python experiments/spaces_table.py docs/results/spaces > docs/results/spaces/summary.md
"""

import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

SETS = {"heldout": "EMNIST classes 37-46", "digits": "EMNIST digits", "fashion": "Fashion-MNIST",
        "fashionb": "Fashion-MNIST, odd half"}


def mean_ci(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, 1.96 * sd / math.sqrt(n)


def cell(acc: list[float], bp: list[float]) -> str:
    mean, ci = mean_ci(acc)
    diff, diff_ci = mean_ci([a - b for a, b in zip(acc, bp)])
    return f"{100 * mean:.1f} ± {100 * ci:.1f} ({100 * diff:+.1f} ± {100 * diff_ci:.1f})"


def main(out: Path) -> None:
    table: dict[str, dict[str, str]] = defaultdict(dict)
    by_config: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(out.glob("*_*.json")):
        name, _, which = path.stem.rpartition("_")
        if which not in SETS:
            continue
        results = json.loads(path.read_text())["results"]
        bp = next(r["task_accuracy"] for r in results if r["label"] == "bp baseline")
        rule = results[0]
        table[name][which] = cell(rule["task_accuracy"], bp)
        by_config[re.sub(r"_s\d+$", "", name)][which].append(mean_ci(rule["task_accuracy"])[0] - mean_ci(bp)[0])
        for r in results[1:]:
            if "baseline" in r["label"]:
                table[r["label"]][which] = cell(r["task_accuracy"], bp)
    print("Accuracy (%) on the same 100 tasks per column, 95 % CI over tasks; in brackets the paired "
          "difference to the bp baseline (points).\n")
    print("| rule | " + " | ".join(SETS.values()) + " |\n|---|" + "---|" * len(SETS))
    names = sorted(n for n in table if "baseline" not in n) + [n for n in table if "baseline" in n]
    for name in names:
        print(f"| {name} | " + " | ".join(table[name].get(k, "—") for k in SETS) + " |")
    print("\nDifference to bp (points) per config: mean over seeds (each seed's):\n")
    print("| config | seeds | " + " | ".join(SETS.values()) + " |\n|---|---|" + "---|" * len(SETS))
    for name, diffs in sorted(by_config.items()):
        seeds = max(len(v) for v in diffs.values())
        print(f"| {name} | {seeds} | " + " | ".join(summary(diffs.get(k, [])) for k in SETS) + " |")


def summary(diffs: list[float]) -> str:
    """'+3.8 (+0.6, +7.3, +3.5)' in points, or '—'."""
    if not diffs:
        return "—"
    mean = 100 * sum(diffs) / len(diffs)
    return f"{mean:+.1f}" + (f" ({', '.join(f'{100 * d:+.1f}' for d in diffs)})" if len(diffs) > 1 else "")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
