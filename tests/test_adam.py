"""The gradient outer loop: meta-gradient correctness, NaN handling, activation refusal."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from evoplastic.config import ConfigError
from evoplastic.core.fitness import Evaluation
from evoplastic.families import build_fitness, theta_space
from evoplastic.outer.adam import AdamLoop, NotDifferentiableError


@pytest.mark.parametrize("rule", ["bio", "pool"])
def test_meta_gradient_matches_finite_differences(rule):
    cfg = tiny_config(f"rule.terms={rule}", "task.k_shot=3", "rule.l1=0.1", "outer=adam")
    score = build_fitness(cfg)
    n = 3 if rule == "bio" else 10
    theta = (torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.02)
    theta.requires_grad_(True)
    score(theta.unsqueeze(0), 7).fitness[0].backward()
    eps = 1e-6
    for i in range(n):
        bump = torch.zeros(n, dtype=torch.float64)
        bump[i] = eps
        with torch.no_grad():
            plus = score((theta + bump).unsqueeze(0), 7).fitness[0]
            minus = score((theta - bump).unsqueeze(0), 7).fitness[0]
        numeric = (plus - minus) / (2 * eps)
        assert torch.isclose(theta.grad[i], numeric, rtol=1e-4, atol=1e-7), (i, theta.grad[i], numeric)


def test_adam_steps_move_theta_and_learn():
    cfg = tiny_config("outer=adam", "adam.lr=0.003", "task.k_shot=10")
    score = build_fitness(cfg)
    loop = AdamLoop(cfg, theta_space(cfg))
    start = loop.center()
    for step in range(3):
        metrics = loop.step(lambda theta, s=step: score(theta, s))
    assert not torch.equal(loop.center(), start)
    assert metrics["adam/skipped"] == 0
    assert metrics["budget/episodes"] == 2


def test_nan_meta_loss_is_skipped_and_counted():
    loop = AdamLoop(cfg := tiny_config("outer=adam"), theta_space(cfg))
    start = loop.center()

    def nan_loss(theta):
        loss = theta.sum(1) * float("nan")
        return Evaluation(loss, torch.zeros(1), loss, torch.ones(1, dtype=torch.bool))

    metrics = loop.step(nan_loss)
    assert metrics["adam/skipped"] == 1
    assert torch.equal(loop.center(), start)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "hardtanh", "heaviside"])
def test_adam_refuses_activations_that_are_not_twice_differentiable(activation):
    with pytest.raises(ConfigError, match="outer=es"):
        tiny_config("outer=adam", f"network.activation={activation}")
    cfg = tiny_config(f"network.activation={activation}")  # valid for ES
    from dataclasses import replace

    with pytest.raises(NotDifferentiableError, match="twice differentiable"):
        AdamLoop(replace(cfg, outer="adam"), theta_space(cfg))


def test_term_scaled_adam_steps_each_term_by_its_scale():
    from evoplastic.families.paper.rules import DEFAULT_TERM_SCALE

    cfg = tiny_config("outer=adam", "rule.terms=pool", "adam.term_scaled=true", "task.k_shot=3")
    score = build_fitness(cfg)
    loop = AdamLoop(cfg, theta_space(cfg))
    start = loop.center()
    loop.step(lambda theta: score(theta, 0))
    moved = (loop.center() - start).abs()
    expected = cfg.adam.lr * torch.tensor(DEFAULT_TERM_SCALE, dtype=torch.float64) / DEFAULT_TERM_SCALE[0]
    assert torch.allclose(moved, expected, rtol=1e-3)  # Adam's first step is ±lr per coordinate


def test_a_stuck_adam_run_is_reported(tmp_path):
    """θ this large turns every episode into NaN: every step is skipped, and the summary says so."""
    from evoplastic.run.rundir import RunDir
    from evoplastic.run.train import train

    cfg = tiny_config("outer=adam", "steps=12", "rule.theta_init=[1000,1000,1000]", "final_eval_tasks=3")
    summary = train(cfg, RunDir.create(cfg, tmp_path), progress=False)
    assert any("Adam skipped 12 of 12 steps" in w for w in summary.warnings), summary.warnings
    assert any("final θ diverges" in w for w in summary.warnings)
