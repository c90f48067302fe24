"""Tables of the spiking experiments from the evaluation JSON files that experiments/spiking_run.py writes.

python experiments/spiking_tables.py [RUNS_DIR]
Per run: the rule's accuracy (mean ± 95 % CI over the evaluation tasks), its paired differences to e-prop fa
and bp on the same tasks, training seconds; then runs matched by seed (ES against Adam at one budget), paired
per task, and means over seeds with Student-t 95 % CIs. Markdown on stdout.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch

from evoplastic.stats import mean_ci95, mean_ci95_seeds, paired_difference


def load(root: Path) -> dict[str, dict]:
    out = {}
    for file in sorted(root.glob("*/evaluation_*.json")):
        data = json.loads(file.read_text())
        name = re.sub(r"^\d{8}-\d{6}_", "", file.parent.name)
        rows = {r["label"].split(" (")[0]: torch.tensor(r["per_task"]["accuracy"]) for r in data["rows"]}
        rule = data["rows"][0]
        out[f"{name} [{file.stem.removeprefix('evaluation_')}]"] = {
            "rule": torch.tensor(rule["per_task"]["accuracy"]), "theta": rule["theta"], "rows": rows,
            "seconds": data["train_seconds"], "description": data["description"]}
    return out


def pct(mean_ci: tuple[float, float], sign: bool = False) -> str:
    return f"{100 * mean_ci[0]:{'+' if sign else ''}.1f} ± {100 * mean_ci[1]:.1f}"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/spiking")
    runs = load(root)
    print("| run | accuracy % | Δ vs e-prop fa | Δ vs e-prop bp | train s | θ |\n|---|---|---|---|---|---|")
    for name, r in runs.items():
        fa, bp = r["rows"]["e-prop fa"], r["rows"]["e-prop bp"]
        theta = ", ".join(f"{v:.3g}" for v in r["theta"])
        print(f"| {name} | {pct(mean_ci95(r['rule']))} | {pct(paired_difference(r['rule'], fa), True)} | "
              f"{pct(paired_difference(r['rule'], bp), True)} | {r['seconds']:.0f} | {theta} |")
    baselines = next(iter(runs.values()))["rows"] if runs else {}
    print("\n| baseline (first run's tasks) | accuracy % |\n|---|---|")
    for label, values in list(baselines.items())[1:]:
        print(f"| {label} | {pct(mean_ci95(values))} |")
    pairs = []
    for name, r in runs.items():
        match = re.match(r"adam_(.*seed\d+) (\[.*\])", name)
        other = match and runs.get(f"es_small_{match.group(1)} {match.group(2)}")
        if other:
            pairs.append((match.group(1), other, r))
    if pairs:
        print("\n| seed | ES − Adam (paired over tasks) | ES train s | Adam train s |\n|---|---|---|---|")
        for seed, es, adam in pairs:
            print(f"| {seed} | {pct(paired_difference(es['rule'], adam['rule']), True)} | {es['seconds']:.0f} | "
                  f"{adam['seconds']:.0f} |")
        for group in sorted({re.sub(r"seed\d+$", "", p[0]) for p in pairs}):
            chosen = [p for p in pairs if re.fullmatch(rf"{group}seed\d+", p[0])]
            for label, idx in (("ES", 1), ("Adam", 2)):
                means = torch.tensor([float(p[idx]["rule"].mean()) for p in chosen])
                print(f"\n{label} {group or 'current_'}input over {len(chosen)} seeds: "
                      f"{pct(mean_ci95_seeds(means))} % (Student-t 95 % CI over seeds)")

if __name__ == "__main__":
    main()
