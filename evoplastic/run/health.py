"""What a run's metrics say went wrong: warnings for a doubtful rule, an error when no θ was ever scored."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evoplastic.config import ExperimentConfig


class RunDiverged(RuntimeError):
    """Every member of every generation diverged: the run scored no θ and has no rule to report."""


def health_warnings(cfg: ExperimentConfig, records: list[dict[str, Any]], final: dict[str, float]) -> tuple[str, ...]:
    """Plain-language warnings about a finished run: most Adam steps skipped, or a final θ that diverges."""
    notes = []
    skipped = max((r.get("adam/skipped", 0) for r in records), default=0)
    if cfg.outer == "adam" and records and 2 * skipped > len(records):
        notes.append(f"Adam skipped {skipped} of {len(records)} steps (meta-loss or gradient not finite): θ is "
                     "stuck where episodes diverge, a failure seen in some seeds when the first steps give θ_9 "
                     "the wrong sign; try another seed, a smaller adam.lr, or outer=es")
    if not math.isfinite(final["final/loss"]):
        notes.append("the final θ diverges on the evaluation tasks (query loss not finite)")
    return tuple(notes)


def check_scored(records: list[dict[str, Any]], run_path: Path) -> None:
    """Raise RunDiverged when every ES member of every generation diverged (nothing was ever scored)."""
    generations = [r for r in records if "es/diverged" in r and "fitness/members" in r]
    if not generations or any(r["es/diverged"] < len(r["fitness/members"]) for r in generations):
        return
    members = len(generations[-1]["fitness/members"])
    raise RunDiverged(
        f"every member of every generation diverged ({len(generations)} generations × {members} members, each "
        f"episode's query loss NaN or inf): no θ was ever scored, so the run has no rule and wrote no theta.json. "
        f"Check the data (finite pixel values), rule.theta_init and es.stdev_init, then start a new run; the "
        f"metrics are in {run_path / 'metrics.jsonl'}"
    )
