"""The k-cap tables of docs/kcap.md from the JSON files experiments/kcap.sh writes into docs/results/kcap/.

python experiments/kcap_tables.py [DIR] prints markdown. Absolute cells: mean probe accuracy (%)
± 95 % CI over the tasks of a dataset (100 per cell). A learned rule is shown as its paired
difference to the untuned start rule (hebb 0.01) on the same tasks, ± the 95 % CI of that
difference over tasks; where rows are seeds of one config, the spread of their differences
over seeds (standard deviation of the per-seed means) is a separate, labelled column.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

START, ZERO = "kcap:hebb=0.01", "kcap:hebb=0"
UNTRAINED, RAW = "untrained k-cap RNN", "raw 10-D input"
DATASETS = ("moons", "circles", "blobs")
SEED_PAPER_EMD = {"moons": (0.1415, 0.285), "blobs": (0.565, 0.4635), "circles": (0.0205, 0.121)}
"""Balwani, Gupta & Shu's Fig. 2 EMD, (RNN, MLP) autoencoders."""


def load(directory: Path, name: str) -> dict:
    return json.loads((directory / f"{name}.json").read_text())


def values(data: dict, label: str, dataset: str, metric: str = "probe_accuracy") -> list[float | None]:
    """One row's per-task metric on one dataset's tasks, in task order (None where not finite)."""
    group = data["group_names"].index(dataset)
    row = next(r for r in data["rows"] if r["label"] == label)
    return [v if v is not None and math.isfinite(v) else None for v, g in zip(row[metric], data["groups"])
            if g == group]


def mean_ci(xs: list[float]) -> tuple[float, float]:
    """Mean and 95 % CI half-width (normal approximation) over the finite values."""
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return mean, 1.96 * sd / math.sqrt(n)


def cell(data: dict, label: str, dataset: str, metric: str = "probe_accuracy") -> tuple[float, float]:
    """Mean and 95 % CI over one dataset's tasks of one row."""
    return mean_ci([v for v in values(data, label, dataset, metric) if v is not None])


def paired(data: dict, label: str, control: str, dataset: str, metric: str = "probe_accuracy") -> tuple[float, float]:
    """Mean and 95 % CI over tasks of label − control on the same tasks (tasks where both are finite)."""
    a, b = values(data, label, dataset, metric), values(data, control, dataset, metric)
    return mean_ci([x - y for x, y in zip(a, b) if x is not None and y is not None])


def fmt(mean_ci_: tuple[float, float], scale: float = 100, digits: int = 1, sign: bool = False) -> str:
    mean = f"{scale * mean_ci_[0]:+.{digits}f}" if sign else f"{scale * mean_ci_[0]:.{digits}f}"
    return f"{mean} ± {scale * mean_ci_[1]:.{digits}f}"


def seed_spread(data: dict, labels: list[str], dataset: str, control: str = START) -> str:
    """Mean over seed rows of their paired differences, and the standard deviation of those means over seeds."""
    means = [100 * paired(data, label, control, dataset)[0] for label in labels]
    mean = sum(means) / len(means)
    sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1)) if len(means) > 1 else 0.0
    return f"{mean:+.1f} (SD {sd:.1f} over {len(means)} seeds)"


def matching(data: dict, pattern: str) -> list[str]:
    return [r["label"] for r in data["rows"] if re.search(pattern, r["label"])]


SHORT = {
    "kcap:hebb=0.0329,covariance=0.01256,oja=0.02178,decay=-0.001549": "look-ahead gradient loop (Adam), seed 1",
    "kcap:hebb=0.0311,covariance=0.006189,oja=0.02006,decay=-0.001169": "look-ahead gradient loop (Adam), seed 2",
    "kcap:hebb=0.0272,covariance=0.003322,oja=0.01615,decay=-0.001672": "look-ahead gradient loop (Adam), seed 3",
}
"""Display names of the coefficient rules typed from docs/results/kcap/theta.md (4 significant digits)."""


def short(label: str) -> str:
    if label in SHORT:
        return SHORT[label]
    if label.startswith("kcap:in.hebb=0.05717"):
        return "ES, all 7 terms per matrix, L1 (es_pool_l1)"
    return label


def controls_table(data: dict, groups: list[tuple[str, str]]) -> str:
    """Controls as absolute accuracies; each learned rule as Δ to the start rule ± task CI; seed spread apart."""
    lines = ["| row | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for name, label in (("raw 10-D input (no network)", RAW), ("untrained k-cap RNN", UNTRAINED),
                        ("θ = 0 (row normalisation only)", ZERO), ("**start rule** (hebb 0.01, untuned)", START)):
        lines.append(f"| {name} | " + " | ".join(fmt(cell(data, label, d)) for d in DATASETS) + " |")
    for name, pattern in groups:
        labels = matching(data, pattern)
        for label in labels:
            lines.append(f"| {name}: {short(label)}, Δ to start | "
                         + " | ".join(fmt(paired(data, label, START, d), sign=True) for d in DATASETS) + " |")
        if len(labels) > 1:
            lines.append(f"| {name}: spread over seeds of Δ | "
                         + " | ".join(seed_spread(data, labels, d) for d in DATASETS) + " |")
    return "\n".join(lines)


def labels_table(directory: Path, pattern: str) -> str:
    lines = ["| L | dataset | raw 10-D | untrained | θ = 0 | start rule | learned (ES) Δ to start, per seed "
             "± task CI | spread over seeds |", "|---|---|---|---|---|---|---|---|"]
    for labels in (1, 2, 5, 10, 20):
        try:
            data = load(directory, f"controls_L{labels}")
        except FileNotFoundError:
            continue
        learned = matching(data, pattern)
        for d in DATASETS:
            per_seed = "; ".join(fmt(paired(data, label, START, d), sign=True) for label in learned)
            lines.append(f"| {labels} | {d} | {fmt(cell(data, RAW, d))} | {fmt(cell(data, UNTRAINED, d))} | "
                         f"{fmt(cell(data, ZERO, d))} | {fmt(cell(data, START, d))} | {per_seed} | "
                         f"{seed_spread(data, learned, d)} |")
    return "\n".join(lines)


def holdout_table(directory: Path) -> str:
    lines = ["| held-out dataset | start rule | rule meta-trained without it, Δ to start | rule meta-trained on all "
             "three (seed 1), Δ to start | untrained | raw 10-D |", "|---|---|---|---|---|---|"]
    for d in DATASETS:
        data = load(directory, f"holdout_{d}")
        held, full = matching(data, rf"holdout_{d}")[0], matching(data, r"es_pool_seed1")[0]
        lines.append(f"| {d} | {fmt(cell(data, START, d))} | {fmt(paired(data, held, START, d), sign=True)} | "
                     f"{fmt(paired(data, full, START, d), sign=True)} | {fmt(cell(data, UNTRAINED, d))} | "
                     f"{fmt(cell(data, RAW, d))} |")
    return "\n".join(lines)


def autoencoder_table(directory: Path) -> str:
    data = load(directory, "baselines")
    rnn, mlp = "backprop RNN autoencoder (tanh)", "backprop MLP autoencoder (tanh)"
    learned = matching(data, r"es_pool_seed\d")
    lines = ["| dataset | RNN AE EMD | MLP AE EMD | paper's EMD (RNN / MLP) | RNN AE probe % | MLP AE probe % | "
             "start rule probe % | learned (ES) probe %, Δ to start | start rule EMD | untrained EMD |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in ("moons", "blobs", "circles"):
        lines.append(f"| {d} | {fmt(cell(data, rnn, d, 'emd'), 1, 3)} | {fmt(cell(data, mlp, d, 'emd'), 1, 3)} | "
                     f"{SEED_PAPER_EMD[d][0]} / {SEED_PAPER_EMD[d][1]} | {fmt(cell(data, rnn, d))} | "
                     f"{fmt(cell(data, mlp, d))} | {fmt(cell(data, START, d))} | {seed_spread(data, learned, d)} | "
                     f"{fmt(cell(data, START, d, 'emd'), 1, 3)} | {fmt(cell(data, UNTRAINED, d, 'emd'), 1, 3)} |")
    return "\n".join(lines)


def bias_table(directory: Path) -> str:
    """Controls in networks with a constant input unit of value b (b = 0: the paper's network)."""
    lines = ["| input_bias b | row | " + " | ".join(DATASETS) + " |", "|---|---|" + "---|" * len(DATASETS)]
    for b, name in ((0, "controls_L5"), (1, "bias_1"), (3, "bias_3"), (6, "bias_6")):
        try:
            data = load(directory, name)
        except FileNotFoundError:
            continue
        for row, label in (("untrained", UNTRAINED), ("θ = 0", ZERO), ("start rule", START)):
            lines.append(f"| {b} | {row} | " + " | ".join(fmt(cell(data, label, d)) for d in DATASETS) + " |")
    return "\n".join(lines)


def delta_table(data: dict, pattern: str, control: str, name: str) -> str:
    """Each matching rule's paired difference to one control, ± task CI; spread over seeds apart."""
    labels = matching(data, pattern)
    lines = [f"| rule, Δ to {name} | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(fmt(paired(data, label, control, d), sign=True) for d in DATASETS)
                     + " |")
    lines.append("| spread over seeds of Δ | " + " | ".join(seed_spread(data, labels, d, control) for d in DATASETS)
                 + " |")
    return "\n".join(lines)


def target_verdict(data: dict, pattern: str) -> str:
    """Per seed: Δ moons and blobs to the start (≥ 5 points?) and circles' accuracy (> 60 %?)."""
    out = []
    for label in matching(data, pattern):
        dm, db = (100 * paired(data, label, START, d)[0] for d in ("moons", "blobs"))
        circles = 100 * cell(data, label, "circles")[0]
        ok = dm >= 5 and db >= 5 and circles > 60
        out.append(f"- {label}: Δ moons {dm:+.1f}, Δ blobs {db:+.1f}, circles {circles:.1f} % — "
                   f"{'meets' if ok else 'misses'} the target")
    return "\n".join(out)


def claims_tables(directory: Path) -> str:
    """§5.3: cross-entropy read-out against L; §5.2: accuracy and distinct codes, plain vs wider field."""
    rows = load(directory, "claims")["rows"]
    learned = [k for k in rows if re.search(r"es_pool_seed\d", k)]
    head = "| dataset | representation | " + " | ".join(f"L = {L}" for L in (1, 2, 5, 10, 20)) + " |"
    lines = ["Cross-entropy (logistic) read-out, query accuracy (%), mean ± 95 % CI over 100 tasks:", "",
             head, "|---|---|" + "---|" * 5]
    show = [("raw 10-D input", RAW), ("untrained k-cap RNN", UNTRAINED), ("θ = 0", ZERO), ("start rule", START)]
    for d in DATASETS:
        for name, key in show:
            lines.append(f"| {d} | {name} | " + " | ".join(
                fmt(mean_ci(rows[key][d][f"ce_L{L}"])) for L in (1, 2, 5, 10, 20)) + " |")
        for key in learned:
            diffs = lambda L, key=key, d=d: [a - b for a, b in zip(rows[key][d][f"ce_L{L}"],
                                                                rows[START][d][f"ce_L{L}"])]
            lines.append(f"| {d} | {key}, Δ to start | " + " | ".join(
                fmt(mean_ci(diffs(L)), sign=True) for L in (1, 2, 5, 10, 20)) + " |")
    field = [k for k in rows if re.search(r"field", k)]
    plain = [k for k in rows if re.search(r"hebb_only", k)]
    lines += ["", "Wider presynaptic field against plain Hebb (ridge probe, L = 5; distinct codes among the 200 "
              "query latents; mean over the runs' seeds, 100 tasks):", "",
              "| dataset | space | runs | accuracy % | distinct codes |", "|---|---|---|---|---|"]
    for d in DATASETS:
        for name, keys in (("start rule", [START]), ("plain hebb (ES)", plain), ("hebb + near + far (ES)", field)):
            if not keys:
                continue
            acc = [sum(rows[k][d]["ridge_L5"]) / len(rows[k][d]["ridge_L5"]) for k in keys]
            codes = [sum(rows[k][d]["distinct_codes"]) / len(rows[k][d]["distinct_codes"]) for k in keys]
            lines.append(f"| {d} | {name} | {len(keys)} | " + ", ".join(f"{100 * a:.1f}" for a in acc)
                         + " | " + ", ".join(f"{c:.1f}" for c in codes) + " |")
    return "\n".join(lines)


def json_table(directory: Path, name: str, groups: list[tuple[str, str]]) -> str:
    return controls_table(load(directory, name), groups)


POOL = [("ES, 4-term pool", r"es_pool_seed\d"), ("quickstart", r"quickstart")]
TARGET = r"t4pm_b3_seed\d|bias_auto_seed\d"


def main(argv: list[str]) -> None:
    directory = Path(argv[0]) if argv else Path("docs/results/kcap")
    sections = [
        ("Controls and learned rules, L = 5", lambda d: json_table(d, "controls_L5", POOL)),
        ("Probe accuracy (%) against labels per class", lambda d: labels_table(d, r"es_pool_seed\d")),
        ("Generalisation to a dataset never meta-trained on, L = 5", holdout_table),
        ("Backprop autoencoders, L = 5", autoencoder_table),
        ("The constant input unit: controls by input_bias, L = 5", bias_table),
        ("Earlier searches in the paper's network (θ from docs/results/kcap/theta.md), L = 5",
         lambda d: json_table(d, "search_b0", [("4-term pool", r"^kcap:hebb=0\.0\d\d"), ("14 terms", r"^kcap:in\.")])),
        ("Searches in the network with input_bias = 3, L = 5",
         lambda d: json_table(d, "search_b3", [("7 terms per matrix", r"_s7pm_b3"), ("4 terms shared", r"_s4_b3"),
                                                 ("8 terms per matrix (with auto)", r"_a8pm_b3_seed")])),
        ("Research target: bias_auto space, input_bias = 3, L = 5",
         lambda d: json_table(d, "target", [("ES, bias_auto", TARGET)]) + "\n\n"
         + target_verdict(load(d, "target"), TARGET)),
        ("The same space in the network with input_bias = 6, L = 5",
         lambda d: json_table(d, "target_b6", [("ES, bias_auto at b = 6", r"bias6_auto_seed\d")]) + "\n\n"
         + target_verdict(load(d, "target_b6"), r"bias6_auto_seed\d")),
        ("The same space at input_bias = 3, meta-trained on moons and blobs only (circles held out), L = 5",
         lambda d: json_table(d, "target_mb", [("ES, bias_auto, moons + blobs", r"bias_auto_mb_seed\d")])
         + "\n\n" + target_verdict(load(d, "target_mb"), r"bias_auto_mb_seed\d") + "\n\n"
         + delta_table(load(d, "target_mb"), r"bias_auto_mb_seed\d", ZERO, "θ = 0, b = 3")),
        ("The same space at input_bias = 3 with the probe error as meta-objective, L = 5",
         lambda d: json_table(d, "target_err", [("ES, bias_auto, probe error", r"bias_auto_err_seed\d")])
         + "\n\n" + target_verdict(load(d, "target_err"), r"bias_auto_err_seed\d")),
        ("The same space at input_bias = 3, 150 generations, L = 5",
         lambda d: json_table(d, "target_long", [("ES, bias_auto, 150 gens", r"bias_auto_long_seed\d")])
         + "\n\n" + target_verdict(load(d, "target_long"), r"bias_auto_long_seed\d")),
        ("Learned rules against θ = 0 (no plasticity beyond normalisation), same tasks",
         lambda d: delta_table(load(d, "target"), TARGET, ZERO, "θ = 0, b = 3") + "\n\n"
         + delta_table(load(d, "target_b6"), r"bias6_auto_seed\d", ZERO, "θ = 0, b = 6")),
        ("The paper's §5.2 and §5.3", claims_tables),
    ]
    for title, table in sections:
        try:
            print(f"### {title}\n\n{table(directory)}\n")
        except FileNotFoundError as err:
            print(f"### {title}\n\n(missing: {err.filename})\n")


if __name__ == "__main__":
    main(sys.argv[1:])
