"""Meta-objectives beyond the mean task loss: what ES ranks, from the same (P, T) scores."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from evoplastic.config import ConfigError, ObjectiveConfig
from evoplastic.core.fitness import reduce_tasks
from evoplastic.families import build_fitness

LOSS = torch.tensor([[1.0, 2.0, 3.0, 10.0], [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
ACCURACY = torch.tensor([[1.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)


def test_each_reduction_by_hand():
    assert reduce_tasks(LOSS, ACCURACY, ObjectiveConfig()).tolist() == [4.0, 2.0]
    assert reduce_tasks(LOSS, ACCURACY, ObjectiveConfig(reduce="error")).tolist() == [0.5, 0.75]
    # worst quarter of 4 tasks is one task; worst half is two
    assert reduce_tasks(LOSS, ACCURACY, ObjectiveConfig(reduce="cvar", cvar_fraction=0.25)).tolist() == [10.0, 2.0]
    assert reduce_tasks(LOSS, ACCURACY, ObjectiveConfig(reduce="cvar", cvar_fraction=0.5)).tolist() == [6.5, 2.0]
    spread = reduce_tasks(LOSS, ACCURACY, ObjectiveConfig(reduce="mean_std", std_weight=2.0))
    assert torch.allclose(spread, torch.tensor([4.0 + 2 * float(LOSS[0].std()), 2.0], dtype=torch.float64))


def test_the_robust_objectives_rank_a_brittle_rule_below_a_steady_one():
    # member 0 is better on average but collapses on one task
    loss = torch.tensor([[0.5, 0.5, 0.5, 3.0], [1.2, 1.2, 1.2, 1.2]], dtype=torch.float64)
    assert reduce_tasks(loss, ACCURACY, ObjectiveConfig()).argmin() == 0  # mean prefers the brittle rule
    assert reduce_tasks(loss, ACCURACY, ObjectiveConfig(reduce="cvar", cvar_fraction=0.25)).argmin() == 1
    assert reduce_tasks(loss, ACCURACY, ObjectiveConfig(reduce="mean_std")).argmin() == 1


@pytest.mark.parametrize("reduce", ["error", "cvar", "mean_std"])
def test_a_diverged_task_makes_the_candidate_diverged_whatever_the_reduction(reduce):
    loss = LOSS.clone()
    loss[0, 1] = float("nan")
    value = reduce_tasks(loss, ACCURACY, ObjectiveConfig(reduce=reduce))
    assert torch.isnan(value[0]) and torch.isfinite(value[1])


@pytest.mark.parametrize("reduce", ["error", "cvar", "mean_std"])
def test_es_fitness_uses_the_configured_reduction(reduce):
    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004]], dtype=torch.float64)
    ev = build_fitness(tiny_config(f"objective.reduce={reduce}", "tasks_per_step=4"))(theta, 1)
    cfg = ObjectiveConfig(reduce=reduce)
    assert torch.allclose(ev.fitness, reduce_tasks(ev.task_loss, ev.task_accuracy, cfg))
    assert torch.allclose(ev.loss, ev.task_loss.mean(1))  # logs keep the mean loss


def test_bad_objective_settings_are_config_errors_that_say_why():
    with pytest.raises(ConfigError, match="objective.reduce"):
        tiny_config("objective.reduce=median")
    with pytest.raises(ConfigError, match="cvar_fraction must lie in"):
        tiny_config("objective.reduce=cvar", "objective.cvar_fraction=0")
    with pytest.raises(ConfigError, match="the query error has none"):
        tiny_config("outer=adam", "objective.reduce=error")
