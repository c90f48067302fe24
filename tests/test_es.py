"""The evolution-strategy outer loop: algorithms, robustness, resume, activations."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from conftest import tiny_config

from evoplastic.core.fitness import DIVERGED_FITNESS, Evaluation
from evoplastic.families import build_fitness, theta_space
from evoplastic.outer.es import EvolutionLoop
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train


@pytest.mark.parametrize("algorithm", ["cmaes", "pgpe", "snes", "xnes", "cem"])
def test_every_algorithm_runs_generations(algorithm):
    cfg = tiny_config(f"es.algorithm={algorithm}")
    score = build_fitness(cfg)
    loop = EvolutionLoop(cfg, theta_space(cfg))
    for step in range(2):
        metrics = loop.step(lambda theta, s=step: score(theta, s))
    assert len(metrics["theta/center"]) == 3
    assert all(torch.isfinite(torch.tensor(metrics["theta/center"])))
    assert metrics["budget/episodes"] == 6 * 2


def test_separable_cmaes_keeps_a_diagonal_covariance_and_is_refused_for_other_algorithms():
    from evoplastic.config import ConfigError

    cfg = tiny_config("es.separable=true", "rule.terms=pool", "rule.l1=0.01")
    score, loop = build_fitness(cfg), EvolutionLoop(cfg, theta_space(cfg))
    for step in range(2):
        metrics = loop.step(lambda theta, s=step: score(theta, s))
    assert loop.searcher.separable and len(metrics["theta/center"]) == 10
    with pytest.raises(ConfigError, match="needs es.algorithm=cmaes"):
        tiny_config("es.separable=true", "es.algorithm=pgpe")


@pytest.mark.parametrize("algorithm", ["cmaes", "pgpe"])
def test_one_term_rule_can_be_searched(algorithm):
    """evotorch's CMAES cannot start in 1-D; the fa/bp baselines search θ_0 alone."""
    cfg = tiny_config("rule.terms=fa", f"es.algorithm={algorithm}")
    score = build_fitness(cfg)
    loop = EvolutionLoop(cfg, theta_space(cfg))
    metrics = loop.step(lambda theta: score(theta, 0))
    assert len(metrics["theta/center"]) == 1
    assert len(metrics["theta/best"]) == 1


def _fake_evaluation(theta: torch.Tensor, nan_rows: slice) -> Evaluation:
    loss = theta.pow(2).sum(1)
    loss[nan_rows] = float("nan")
    from evoplastic.core.fitness import sanitise

    fitness, diverged = sanitise(loss, torch.zeros_like(loss))
    return Evaluation(loss, torch.zeros_like(loss), fitness, diverged)


@pytest.mark.parametrize("algorithm", ["cmaes", "pgpe", "snes", "xnes", "cem"])
def test_nan_members_are_counted_not_fatal(algorithm):
    loop = EvolutionLoop(cfg := tiny_config(f"es.algorithm={algorithm}"), theta_space(cfg))
    metrics = loop.step(lambda theta: _fake_evaluation(theta, slice(0, 2)))
    assert metrics["es/diverged"] == 2
    assert metrics["fitness/mean"] < DIVERGED_FITNESS
    assert all(torch.isfinite(torch.tensor(metrics["theta/center"])))
    # a whole population of NaN must not crash either
    metrics = loop.step(lambda theta: _fake_evaluation(theta, slice(None)))
    assert metrics["es/diverged"] == 6


def test_a_diverging_rule_gets_a_finite_worst_fitness():
    cfg = tiny_config()
    evaluation = build_fitness(cfg)(torch.tensor([[1e100, 0, 1e100], [1e-3, 0, 0]], dtype=torch.float64), 0)
    assert evaluation.diverged.tolist() == [True, False]
    assert evaluation.fitness[0] == DIVERGED_FITNESS
    assert torch.isfinite(evaluation.fitness).all()


def test_l1_penalty_is_part_of_the_fitness():
    theta = torch.tensor([[0.01, -0.02, 0.003]], dtype=torch.float64)
    plain = build_fitness(tiny_config())(theta, 0)
    penalised = build_fitness(tiny_config("rule.l1=0.5"))(theta, 0)
    assert torch.allclose(penalised.loss, plain.loss)
    assert torch.allclose(penalised.fitness - plain.fitness, torch.tensor([0.5 * 0.033], dtype=torch.float64))


def test_members_of_a_generation_share_tasks_and_initial_weights():
    cfg = tiny_config()
    score = build_fitness(cfg)
    theta = torch.tensor([[0.01, -0.02, 0.003]], dtype=torch.float64).repeat(3, 1)
    evaluation = score(theta, 5)
    assert torch.equal(evaluation.loss, evaluation.loss[:1].expand(3))
    assert not torch.equal(score(theta[:1], 6).loss, evaluation.loss[:1])


def test_member_chunks_do_not_change_results():
    theta = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.01
    whole = build_fitness(tiny_config())(theta, 1)
    chunked = build_fitness(tiny_config("es.member_chunk=4"))(theta, 1)
    assert torch.allclose(whole.fitness, chunked.fitness)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "hardtanh", "heaviside"])
def test_non_differentiable_activations_run_under_es(activation, tmp_path):
    cfg = tiny_config(f"network.activation={activation}", "steps=2")
    summary = train(cfg, RunDir.create(cfg, tmp_path), progress=False)
    assert 0.0 <= summary.accuracy <= 1.0
    assert all(map(lambda v: abs(v) < 1e3, summary.theta))
    theta = torch.tensor([[0.01, -0.02, 0.003]], dtype=torch.float64)  # same θ, tasks and initial W as softplus
    loss, softplus = build_fitness(cfg)(theta, 0).loss, build_fitness(tiny_config("steps=2"))(theta, 0).loss
    assert torch.isfinite(loss).all() and not torch.allclose(loss, softplus)  # the activation is used


def _strip_time(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


@pytest.mark.parametrize("algorithm", ["cmaes", "pgpe"])
def test_resumed_run_matches_uninterrupted(algorithm, tmp_path):
    cfg = tiny_config(f"es.algorithm={algorithm}", "steps=4", "eval_every=2")
    whole = RunDir.create(cfg, tmp_path / "whole")
    train(cfg, whole, progress=False)

    first = RunDir.create(cfg, tmp_path / "split")
    train(tiny_config(f"es.algorithm={algorithm}", "steps=2", "eval_every=2"), first, progress=False)
    train(cfg, first, resume=True, progress=False)

    assert _strip_time(first.metrics()) == _strip_time(whole.metrics())
    assert json.loads((first.path / "theta.json").read_text())["theta"] == whole.read_json("theta.json")["theta"]


def test_es_improves_the_rule_on_digits():
    """A short CMA-ES run must beat the paper's starting point θ_0 = 1e-3 on fresh tasks."""
    from evoplastic.run.train import evaluate_theta

    cfg = tiny_config("steps=12", "task.k_shot=15", "es.population_size=8", "network.dims=[64,24,10]")
    score = build_fitness(cfg)
    loop = EvolutionLoop(cfg, theta_space(cfg))
    before = evaluate_theta(score, loop.center(), 0, 30, "check")["check/accuracy"]
    for step in range(cfg.steps):
        loop.step(lambda theta, s=step: score(theta, s))
    after = evaluate_theta(score, loop.center(), 0, 30, "check")["check/accuracy"]
    assert after > before + 0.15, (before, after)


def test_compiled_fitness_matches_the_plain_loop():
    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004]], dtype=torch.float64)
    plain = build_fitness(tiny_config())(theta, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compiler failure must not pass as eager vs eager
        compiled = build_fitness(tiny_config("es.compile=true"))(theta, 3)
    assert torch.allclose(plain.loss, compiled.loss, rtol=1e-8)


def test_a_refused_compiled_step_is_recorded_in_meta_json(monkeypatch, tmp_path):
    from evoplastic.families.paper import fused

    def fail(*args, **kwargs):
        raise fused.SelfCheckError("compiled step differs from the eager step by 0.5 (relative)")

    for name, value in (("self_check", fail), ("_FAILED", set()), ("_CHECKED", set()), ("_FALLBACKS", [])):
        monkeypatch.setattr(fused, name, value)
    cfg = tiny_config("es.compile=true", "steps=1")
    run = RunDir.create(cfg, tmp_path)
    with pytest.warns(RuntimeWarning, match="SelfCheckError"):
        train(cfg, run, progress=False)
    notes = json.loads((run.path / "meta.json").read_text())["compiled_fallbacks"]
    # on CPU the C++ step is refused first, then the Inductor step it falls back to: both are recorded
    assert notes and all("differs from the eager step" in n for n in notes) and "eager loop" in notes[-1]


@pytest.mark.parametrize("outer", ["es", "adam"])
def test_direct_feedback_trains_and_reports_alignment(outer, tmp_path):
    """network.feedback=dfa end to end: both outer loops, with alignment angles in the periodic evaluation."""
    cfg = tiny_config("network.feedback=dfa", f"outer={outer}", "steps=2", "eval_every=1",
                      "network.dims=[64,12,8,10]")
    summary = train(cfg, RunDir.create(cfg, tmp_path), progress=False)
    assert 0.0 <= summary.accuracy <= 1.0
    records = RunDir.open(next(tmp_path.iterdir())).metrics()
    angles = [r["eval/alignment"] for r in records if "eval/alignment" in r]
    assert angles and all(0 < a < 180 for a in angles[-1])  # D is random: neither aligned nor reversed
