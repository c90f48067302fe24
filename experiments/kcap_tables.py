"""The README's k-cap tables from the JSON files experiments/kcap.sh writes into docs/results/kcap/.

python experiments/kcap_tables.py [DIR] prints markdown: mean probe accuracy (%) ± 95 % CI over
100 tasks per cell, and, where rows are seeds of one config, the mean over seeds ± their spread.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

SEED_PAPER_EMD = {"moons": (0.1415, 0.285), "blobs": (0.565, 0.4635), "circles": (0.0205, 0.121)}
"""Seed 004's Fig. 2 EMD, (RNN, MLP) autoencoders."""


def load(directory: Path, name: str) -> dict:
    return json.loads((directory / f"{name}.json").read_text())


def cell(data: dict, label: str, dataset: str, metric: str = "probe_accuracy") -> tuple[float, float]:
    """Mean and 95 % CI half-width of one row's metric over one dataset's tasks."""
    group = data["group_names"].index(dataset)
    row = next(r for r in data["rows"] if r["label"] == label)
    values = [v for v, g in zip(row[metric], data["groups"]) if g == group and v is not None and math.isfinite(v)]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return mean, 1.96 * sd / math.sqrt(len(values))


def seeds(data: dict, pattern: str) -> list[str]:
    return [r["label"] for r in data["rows"] if re.search(pattern, r["label"])]


def over_seeds(data: dict, labels: list[str], dataset: str, metric: str = "probe_accuracy", scale: float = 100,
               digits: int = 1) -> str:
    """Mean over seed rows of their per-dataset means, ± the seeds' standard deviation."""
    means = [scale * cell(data, label, dataset, metric)[0] for label in labels]
    mean = sum(means) / len(means)
    spread = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1)) if len(means) > 1 else 0.0
    return f"{mean:.{digits}f} (± {spread:.{digits}f} over {len(means)} seeds)" if len(means) > 1 \
        else f"{mean:.{digits}f}"


def fmt(mean_ci: tuple[float, float], scale: float = 100, digits: int = 1) -> str:
    return f"{scale * mean_ci[0]:.{digits}f} ± {scale * mean_ci[1]:.{digits}f}"


def autoencoder_table(directory: Path) -> str:
    data = load(directory, "baselines")
    lines = ["| dataset | RNN AE EMD | MLP AE EMD | seed's EMD (RNN / MLP) | RNN AE probe % | MLP AE probe % | "
             "learned k-cap EMD | untrained k-cap EMD |", "|---|---|---|---|---|---|---|---|"]
    rnn, mlp = "backprop RNN autoencoder (tanh)", "backprop MLP autoencoder (tanh)"
    learned = seeds(data, r"es_pool_seed\d")
    for d in ("moons", "blobs", "circles"):
        lines.append(f"| {d} | {fmt(cell(data, rnn, d, 'emd'), 1, 3)} | {fmt(cell(data, mlp, d, 'emd'), 1, 3)} | "
                     f"{SEED_PAPER_EMD[d][0]} / {SEED_PAPER_EMD[d][1]} | {fmt(cell(data, rnn, d))} | "
                     f"{fmt(cell(data, mlp, d))} | {over_seeds(data, learned, d, 'emd', 1, 3)} | "
                     f"{fmt(cell(data, 'untrained k-cap RNN', d, 'emd'), 1, 3)} |")
    return "\n".join(lines)


def labels_table(directory: Path) -> str:
    lines = ["| L per class | dataset | learned rule (ES, 3 seeds) | untrained k-cap RNN | raw 10-D input |",
             "|---|---|---|---|---|"]
    for labels in (1, 2, 5, 10, 20):
        data = load(directory, f"labels_{labels}")
        learned = seeds(data, r"es_pool_seed\d")
        for d in ("moons", "circles", "blobs"):
            lines.append(f"| {labels} | {d} | {over_seeds(data, learned, d)} | "
                         f"{fmt(cell(data, 'untrained k-cap RNN', d))} | {fmt(cell(data, 'raw 10-D input', d))} |")
    return "\n".join(lines)


def holdout_table(directory: Path) -> str:
    lines = ["| held-out dataset | rule meta-trained without it | rule meta-trained on all three (seed 1) | "
             "untrained k-cap RNN | raw 10-D input |", "|---|---|---|---|---|"]
    for d in ("moons", "circles", "blobs"):
        data = load(directory, f"holdout_{d}")
        held, full = data["rows"][0]["label"], data["rows"][1]["label"]
        lines.append(f"| {d} | {fmt(cell(data, held, d))} | {fmt(cell(data, full, d))} | "
                     f"{fmt(cell(data, 'untrained k-cap RNN', d))} | {fmt(cell(data, 'raw 10-D input', d))} |")
    return "\n".join(lines)


def outer_loop_table(directory: Path) -> str:
    data = load(directory, "outer_loops")
    groups = [("ES (CMA-ES), 4-term pool", r"es_pool_seed\d"), ("the seed's look-ahead gradient loop (Adam), "
              "4-term pool", r"gradient_seed\d"), ("ES, MLP rule (41 weights)", r"es_mlp_seed\d")]
    lines = ["| outer loop, rule | moons | circles | blobs | all |", "|---|---|---|---|---|"]
    for name, pattern in groups:
        labels = seeds(data, pattern)
        if labels:
            cells = [over_seeds(data, labels, d) for d in ("moons", "circles", "blobs")]
            overall = sum(100 * cell(data, label, d)[0] for label in labels for d in ("moons", "circles", "blobs"))
            lines.append(f"| {name} | {' | '.join(cells)} | {overall / (3 * len(labels)):.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    directory = Path(argv[0]) if argv else Path("docs/results/kcap")
    for title, table in (("Backprop autoencoders (claim i), L = 5", autoencoder_table),
                         ("Probe accuracy (%) against labels per class (claim ii)", labels_table),
                         ("Generalisation to a dataset never meta-trained on (claim iii), L = 5", holdout_table),
                         ("Outer loops and rule forms at 3,840 inner-loop episodes each, L = 5", outer_loop_table)):
        try:
            print(f"### {title}\n\n{table(directory)}\n")
        except FileNotFoundError as err:
            print(f"### {title}\n\n(missing: {err.filename})\n")


if __name__ == "__main__":
    main(sys.argv[1:])
