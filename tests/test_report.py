"""Run plots (evoplastic.analysis.report): curves a diverging member cannot flatten."""

from __future__ import annotations

import numpy as np

from evoplastic.analysis.report import learning_figure, moving_median, training_curve


def es_records(n: int = 40, blow_up: int = 3) -> list[dict]:
    """ES metrics with a falling median loss; at step blow_up one member's loss is 4e14 (the mean with it)."""
    rows = []
    for s in range(n):
        median = 2.0 - s / n
        members = [median - 0.1, median, median + 0.1, 4e14 if s == blow_up else median + 0.2]
        rows.append({"step": s, "train/loss": float(np.mean(members)), "train/accuracy": 0.2 + s / (2 * n),
                     "fitness/median": median, "fitness/members": members, "es/diverged": 0})
    rows[5] |= {"es/diverged": 4, "fitness/members": [1e6] * 4, "fitness/median": 1e6, "train/loss": float("nan")}
    return rows


def test_es_loss_curve_is_the_population_median_without_fully_diverged_generations():
    x, y, what = training_curve(es_records(), "loss")
    assert what == "population median" and len(x) == 40
    assert np.isnan(y[5]) and np.nanmax(y) <= 2.0
    assert training_curve(es_records(), "loss", l1=0.1)[2] == "population median of loss + λ‖θ‖₁"


def test_one_diverging_member_does_not_flatten_the_loss_panel():
    fig = learning_figure(es_records(), "t")
    loss_axis = fig.axes[1]
    assert loss_axis.get_yscale() == "log"
    plotted = np.concatenate([line.get_ydata() for line in loss_axis.get_lines()])
    assert np.nanmax(plotted) < 3  # before: the mean's 1e14 set a linear axis and the curve lay flat on 0
    assert "population median" in loss_axis.get_legend().get_texts()[0].get_text()
    lo, hi = loss_axis.get_ylim()
    assert hi / lo < 10


def test_moving_median_ignores_one_outlier_and_nan():
    values = np.array([1.0, 1.0, 1e14, 1.0, 1.0, np.nan])
    assert moving_median(values, 3).tolist() == [1.0] * 6
