"""Figures of the spiking family's EMNIST results, from the records experiments/spiking_gpu.sh keeps.

python experiments/spiking_plots.py [--records docs/results/spiking/emnist_gpu.jsonl] [--out docs/results/spiking]
Writes emnist.png: held-out accuracy of the ES rules beside e-prop and the rate network (mean and 95 % CI
over the same 100 tasks), and ES against Adam at an equal budget with the coefficients side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SEEDS = (0, 1, 2)


def accuracy(row: dict) -> tuple[float, float]:
    """Mean and 95 % CI half-width (%) of a row's per-task accuracy."""
    values = 100 * np.asarray(row["per_task"]["accuracy"], dtype=float)
    return values.mean(), 1.96 * values.std(ddof=1) / np.sqrt(len(values))


def load(path: Path) -> dict[str, dict]:
    """Records by lane name (es_s0, adam_s1, …)."""
    return {record["lane"]: record for record in map(json.loads, path.read_text().splitlines())}


def held_out_panel(ax: plt.Axes, records: dict[str, dict]) -> None:
    baselines = records["es_s0"]["rows"][1:]
    bars = [(f"ES, seed={s}", accuracy(records[f"es_s{s}"]["rows"][0]), "tab:green") for s in SEEDS]
    bars += [(row["label"].split(" (")[0], accuracy(row), "tab:gray") for row in baselines]
    labels, stats, colours = zip(*bars)
    ax.barh(range(len(bars)), [m for m, _ in stats], xerr=[c for _, c in stats], color=colours, capsize=3)
    ax.set_yticks(range(len(bars)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("query accuracy on held-out classes 37-46 (%)")
    ax.set_title("ES rules (3,840 episodes) vs baselines, same 100 tasks")


def es_adam_panel(ax: plt.Axes, records: dict[str, dict]) -> None:
    width = 0.38
    for offset, (kind, colour) in zip((-width / 2, width / 2), (("esq", "tab:green"), ("adam", "tab:red"))):
        stats = [accuracy(records[f"{kind}_s{s}"]["rows"][0]) for s in SEEDS]
        ax.bar(np.arange(len(SEEDS)) + offset, [m for m, _ in stats], width, yerr=[c for _, c in stats],
               color=colour, capsize=3, label="ES (exact spikes)" if kind == "esq" else "Adam (surrogate gradient)")
    ax.axhline(20, color="k", lw=0.8, ls=":", label="chance of a 5-way task")
    ax.set_xticks(range(len(SEEDS)), [f"seed={s}" for s in SEEDS])
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("equal budget: 320 inner episodes each")
    ax.legend(fontsize=8)


def theta_panel(ax: plt.Axes, records: dict[str, dict]) -> None:
    labels = records["esq_s0"]["labels"]
    for kind, colour, marker in (("esq", "tab:green", "o"), ("adam", "tab:red", "s")):
        for s in SEEDS:
            theta = np.asarray(records[f"{kind}_s{s}"]["theta"])
            ax.scatter(np.arange(len(labels)) + 0.08 * (s - 1), np.sign(theta) * np.log10(1 + 1e4 * np.abs(theta)),
                       color=colour, marker=marker, label=("ES" if kind == "esq" else "Adam") if s == 0 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("sign(θ) · log10(1 + 10⁴|θ|)")
    ax.set_title("the rules' coefficients (3 seeds each)")
    ax.legend(fontsize=8)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=Path, default=Path("docs/results/spiking/emnist_gpu.jsonl"))
    p.add_argument("--out", type=Path, default=Path("docs/results/spiking"))
    args = p.parse_args()
    records = load(args.records)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1.4, 1, 1.1]})
    held_out_panel(axes[0], records)
    es_adam_panel(axes[1], records)
    theta_panel(axes[2], records)
    fig.suptitle("Spiking networks (784-170-130-100-70-47 LIF) on EMNIST, one H200", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out / "emnist.png", dpi=110)
    print(f"wrote {args.out / 'emnist.png'}")


if __name__ == "__main__":
    main()
