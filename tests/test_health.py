"""Warnings and failures read from a run's metrics (evoplastic.run.health)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_config

from evoplastic.run.health import RunDiverged, check_scored, health_warnings

FINITE = {"final/loss": 1.2}


def adam_records(steps: int, skipped: int) -> list[dict]:
    """Adam metrics whose last `skipped` steps were skipped (adam/skipped is cumulative)."""
    return [{"step": s, "adam/skipped": max(0, s + 1 - (steps - skipped))} for s in range(steps)]


@pytest.mark.parametrize("steps, skipped, warned", [(8, 7, True), (3, 2, True), (1, 1, True), (8, 4, False),
                                                    (40, 21, True), (40, 3, False)])
def test_adam_warning_when_most_steps_were_skipped_whatever_their_count(steps, skipped, warned):
    notes = health_warnings(tiny_config("outer=adam"), adam_records(steps, skipped), FINITE)
    assert any(f"Adam skipped {skipped} of {steps} steps" in n for n in notes) == warned, notes


def es_records(diverged: list[int], members: int = 4) -> list[dict]:
    return [{"step": s, "es/diverged": d, "fitness/members": [1e6] * d + [1.0] * (members - d)}
            for s, d in enumerate(diverged)]


def test_every_member_of_every_generation_diverged_is_a_failure():
    with pytest.raises(RunDiverged, match=r"every member of every generation diverged \(3 generations × 4 members"):
        check_scored(es_records([4, 4, 4]), Path("runs/x"))


@pytest.mark.parametrize("diverged", [[4, 4, 3], [0, 0, 0], []])
def test_a_run_with_one_scored_member_is_not_a_failure(diverged):
    check_scored(es_records(diverged), Path("runs/x"))  # no exception
