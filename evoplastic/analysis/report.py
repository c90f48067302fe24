"""Plots of a run record: accuracy/loss, θ trajectories and alignment angles (PNG).

Family-neutral: θ is labelled by the run's θ space and titles take their words from the family's
describe(cfg); the alignment plot appears only when the run logged alignment angles.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from evoplastic.errors import RunDirError
from evoplastic.families import get_family, theta_space
from evoplastic.run.rundir import RunDir, write_failure

RULE_KEYS = frozenset({"family", "rule", "terms", "formulas", "labels", "sign_convention"})
"""describe() keys that name the rule itself; the others are the settings it learns in."""
LEGEND_LIMIT = 12
"""Most θ coordinates named in a legend (a k-cap MLP rule has 41 weights)."""


def _text(value: Any) -> str:
    """A described value as text: lists joined with '+', an empty list '—'."""
    return ("+".join(map(str, value)) or "—") if isinstance(value, (list, tuple)) else str(value)


def family_settings(cfg: Any) -> dict[str, str]:
    """What the run's family says about the setting of its rule, as text: paper {activation, feedback},
    k-cap {per_matrix, plastic, normalise, objective, n_hidden, cap}, …"""
    described = get_family(cfg.family).describe(cfg)
    return {key: _text(value) for key, value in described.items() if key not in RULE_KEYS}


def sign_convention(cfg: Any) -> str:
    """How the family's θ enters its update, e.g. 'paper: dW = -sum_r theta_r T_r' ('' if it does not say)."""
    return str(get_family(cfg.family).describe(cfg).get("sign_convention", ""))


def run_title(cfg: Any) -> str:
    """'name: outer, key=value, …' from the family's description (one line; figures wrap it)."""
    words = [cfg.outer, *(f"{key}={value}" for key, value in family_settings(cfg).items())]
    return f"{cfg.name}: {', '.join(words)}"


def wrap(title: str, width: int) -> str:
    """title in lines of at most width characters."""
    return textwrap.fill(title, width)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points, ignoring NaN."""
    out = np.empty_like(values, dtype=float)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        chunk = chunk[np.isfinite(chunk)]
        out[i] = chunk.mean() if len(chunk) else np.nan
    return out


def moving_median(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing median over up to ``window`` points, ignoring NaN: one huge value cannot lift its neighbours."""
    out = np.empty_like(values, dtype=float)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        chunk = chunk[np.isfinite(chunk)]
        out[i] = np.median(chunk) if len(chunk) else np.nan
    return out


def series(records: list[dict[str, Any]], key: str, x_key: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """x values (x_key) and values of every record that has both keys."""
    rows = [(r[x_key], r[key]) for r in records if r.get(key) is not None and r.get(x_key) is not None]
    if not rows:
        return np.array([]), np.array([])
    steps, values = zip(*rows)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def training_curve(records: list[dict[str, Any]], metric: str, x_key: str = "step",
                   l1: float = 0.0) -> tuple[np.ndarray, np.ndarray, str]:
    """x, y and what y is (for the legend) of the training accuracy or loss against x_key.

    ES loss: the population median (of loss + λ‖θ‖₁ when λ > 0), NaN where every member diverged, so one
    diverging member cannot flatten the curve as the mean did; otherwise train/<metric> (ES: mean over the
    members that did not diverge).
    """
    if metric != "loss" or not any("fitness/median" in r for r in records):
        x, y = series(records, f"train/{metric}", x_key)
        return x, y, "population mean" if any("es/diverged" in r for r in records) else "one candidate"
    rows = [r for r in records if "fitness/median" in r and r.get(x_key) is not None]
    x = np.array([r[x_key] for r in rows], dtype=float)
    y = np.array([np.nan if r.get("es/diverged", 0) >= len(r.get("fitness/members", [None])) else r["fitness/median"]
                  for r in rows], dtype=float)
    return x, y, "population median" + (" of loss + λ‖θ‖₁" if l1 else "")


def smooth(values: np.ndarray, metric: str) -> np.ndarray:
    """The plotted line: accuracy as a moving average, loss as a moving median, over a 20th of the points."""
    window = max(1, len(values) // 20)
    return moving_median(values, window) if metric == "loss" else moving_average(values, window)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_figure(records: list[dict[str, Any]], title: str, l1: float = 0.0):
    """Query accuracy and loss per step (smoothed, loss on a log axis) with fresh-task evaluations."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    window = max(1, len(records) // 20)
    for ax, key, label in ((axes[0], "accuracy", "query accuracy"), (axes[1], "loss", "query loss (log axis)")):
        steps, values, what = training_curve(records, key, l1=l1)
        if len(steps):
            ax.plot(steps, values, alpha=0.25, color="C0")
            average = "median" if key == "loss" else "avg"
            ax.plot(steps, smooth(values, key), color="C0", label=f"train: {what} (moving {average} {window})")
        steps, values = series(records, f"eval/{key}")
        if len(steps):
            ax.plot(steps, values, "o-", color="C1", ms=3, label="centre θ, fresh tasks")
        if key == "loss":
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(wrap(title, 110), fontsize=10)
    fig.tight_layout()
    return fig


def plot_learning(records: list[dict[str, Any]], out: Path, title: str, l1: float = 0.0) -> None:
    """Write learning_figure to out (PNG)."""
    fig = learning_figure(records, title, l1)
    fig.savefig(out, dpi=90)
    _figure().close(fig)


def plot_theta(records: list[dict[str, Any]], labels: tuple[str, ...], out: Path, title: str,
               units: str = "") -> None:
    """Write theta_figure to out (PNG)."""
    fig = theta_figure(records, labels, title, units)
    fig.savefig(out, dpi=90)
    _figure().close(fig)


def theta_figure(records: list[dict[str, Any]], labels: tuple[str, ...], title: str, units: str = ""):
    """Trajectories of each searched θ coordinate (symmetric-log axis); units: the family's sign convention."""
    plt = _figure()
    steps, _ = series(records, "train/loss")
    theta = np.array([r["theta/center"] for r in records if "theta/center" in r], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, label in enumerate(labels):
        ax.plot(steps[: len(theta)], theta[:, i], label=label)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel(f"θ ({units})" if units else "θ")
    if len(labels) <= LEGEND_LIMIT:
        ax.legend(fontsize=8, ncol=2)
    ax.set_title(wrap(title, 75), fontsize=9)
    fig.tight_layout()
    return fig


def plot_alignment(records: list[dict[str, Any]], out: Path, title: str) -> bool:
    """Write alignment_figure to out (PNG); False if no alignment was logged."""
    fig = alignment_figure(records, title)
    if fig is None:
        return False
    fig.savefig(out, dpi=90)
    _figure().close(fig)
    return True


def alignment_figure(records: list[dict[str, Any]], title: str):
    """Alignment angle of each layer's error with backprop's per evaluation; None if none was logged."""
    rows = [r for r in records if "eval/alignment" in r]
    if not rows:
        return None
    plt = _figure()
    angles = np.array([r["eval/alignment"] for r in rows], dtype=float)
    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for layer in range(angles.shape[1]):
        ax.plot(steps, angles[:, layer], label=f"α_{layer + 1} (e_{layer + 1})")
    ax.set_xlabel("step")
    ax.set_ylabel("angle to backprop error (°)")
    ax.legend(fontsize=8)
    ax.set_title(wrap(title, 75), fontsize=9)
    fig.tight_layout()
    return fig


def run_figures(run: RunDir) -> dict[str, Any]:
    """The run's plots as matplotlib figures (learning, theta and, when logged, alignment), nothing written."""
    cfg, records = run.config(), run.metrics()
    title = run_title(cfg)
    figures = {"learning": learning_figure(records, title, cfg.rule.l1),
               "theta": theta_figure(records, theta_space(cfg).labels, title, sign_convention(cfg))}
    alignment = alignment_figure(records, title)
    return figures | ({"alignment": alignment} if alignment is not None else {})


@contextlib.contextmanager
def writing_output(place: Path, what: str, then: str = "") -> Iterator[None]:
    """Turn a failed write under place (read-only, full, no permission) into one RunDirError line, + then."""
    try:
        yield
    except OSError as err:
        raise RunDirError(write_failure(Path(err.filename or place), err, what) + then) from None


def plot_run(run: RunDir) -> list[Path]:
    """(Re)write the run's plots; returns the files written. A failed write is a RunDirError naming the cause."""
    cfg = run.config()
    records = run.metrics()
    plots = run.path / "plots"
    with writing_output(plots, "the plots", f"; the run itself is complete: redraw them with 'evoplastic plot "
                                            f"{run.path}'"):
        return _plot_records(cfg, records, plots)


def _plot_records(cfg: Any, records: list[dict[str, Any]], plots: Path) -> list[Path]:
    plots.mkdir(exist_ok=True)
    if not records:
        return []
    title = run_title(cfg)
    written = [plots / "learning.png", plots / "theta.png"]
    plot_learning(records, written[0], title, cfg.rule.l1)
    plot_theta(records, theta_space(cfg).labels, written[1], title, sign_convention(cfg))
    if plot_alignment(records, plots / "alignment.png", title):
        written.append(plots / "alignment.png")
    return written
