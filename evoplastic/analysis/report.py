"""Plots of a run record: accuracy/loss, θ trajectories and alignment angles (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evoplastic.families.paper.rules import resolve_terms
from evoplastic.run.rundir import RunDir


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points, ignoring NaN."""
    out = np.empty_like(values, dtype=float)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        chunk = chunk[np.isfinite(chunk)]
        out[i] = chunk.mean() if len(chunk) else np.nan
    return out


def series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of every record that has ``key``."""
    rows = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    if not rows:
        return np.array([]), np.array([])
    steps, values = zip(*rows)
    return np.asarray(steps), np.asarray(values, dtype=float)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning(records: list[dict[str, Any]], out: Path, title: str) -> None:
    """Query accuracy and loss per step (moving average) with fresh-task evaluations."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    window = max(1, len(records) // 20)
    for ax, key, label in ((axes[0], "accuracy", "query accuracy"), (axes[1], "loss", "query loss")):
        steps, values = series(records, f"train/{key}")
        if len(steps):
            ax.plot(steps, values, alpha=0.25, color="C0")
            ax.plot(steps, moving_average(values, window), color="C0", label=f"train (avg {window})")
        steps, values = series(records, f"eval/{key}")
        if len(steps):
            ax.plot(steps, values, "o-", color="C1", ms=3, label="centre θ, fresh tasks")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_theta(records: list[dict[str, Any]], terms: tuple[int, ...], out: Path, title: str) -> None:
    """Trajectories of each searched θ_r (paper units, symmetric-log axis)."""
    plt = _figure()
    steps, _ = series(records, "train/loss")
    theta = np.array([r["theta/center"] for r in records if "theta/center" in r], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, term in enumerate(terms):
        ax.plot(steps[: len(theta)], theta[:, i], label=f"θ_{term}")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("θ (paper units)")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_alignment(records: list[dict[str, Any]], out: Path, title: str) -> bool:
    """Alignment angle of each layer's error with backprop's; False if none was logged."""
    rows = [r for r in records if "eval/alignment" in r]
    if not rows:
        return False
    plt = _figure()
    angles = np.array([r["eval/alignment"] for r in rows], dtype=float)
    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for layer in range(angles.shape[1]):
        ax.plot(steps, angles[:, layer], label=f"α_{layer + 1} (e_{layer + 1})")
    ax.set_xlabel("step")
    ax.set_ylabel("angle to backprop error (°)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def plot_run(run: RunDir) -> list[Path]:
    """(Re)write the run's plots; returns the files written."""
    cfg = run.config()
    records = run.metrics()
    plots = run.path / "plots"
    plots.mkdir(exist_ok=True)
    if not records:
        return []
    title = f"{cfg.name}: {cfg.outer}, {cfg.network.activation}, {cfg.network.feedback}"
    written = [plots / "learning.png", plots / "theta.png"]
    plot_learning(records, written[0], title)
    plot_theta(records, resolve_terms(cfg.rule.terms), written[1], title)
    if plot_alignment(records, plots / "alignment.png", title):
        written.append(plots / "alignment.png")
    return written
