"""The spiking family's problem, config checks, θ space and evaluation, on the offline digits data."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from evoplastic.core.fitness import FitnessFunction
from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.spiking.config import SpikingConfig, SpikingExperimentConfig, validate
from evoplastic.families.spiking.family import FAMILY, score_rows

pytest.importorskip("sklearn", reason="the digits dataset comes with scikit-learn")

CFG = SpikingExperimentConfig(
    tasks_per_step=2, task=TaskConfig(dataset="digits", n_way=3, k_shot=4, n_query=3),
    spiking=SpikingConfig(dims=(64, 12, 10), steps=4, weight_gain=2.0, terms=("pool",)))


def bernoulli(cfg=CFG, seed=0):
    return replace(cfg, seed=seed, spiking=replace(cfg.spiking, input="bernoulli"))


def test_bernoulli_run_is_reproducible_from_its_seed():
    cfg = bernoulli()
    theta = torch.tensor([FAMILY.theta_space(cfg).initial] * 3, dtype=torch.float32)
    theta[1:, 2] = 0.01
    first, second = FAMILY.build_problem(cfg), FAMILY.build_problem(cfg)
    a, b = first.draw(3, "train", 2), second.draw(3, "train", 2)
    assert torch.equal(a.tasks.train_spikes, b.tasks.train_spikes) and a.tasks.train_spikes.any()
    assert torch.equal(first.scores(theta, a)[0], second.scores(theta, b)[0])
    other = first.draw(4, "train", 2)
    assert not torch.equal(a.tasks.train_spikes, other.tasks.train_spikes)
    reseeded = FAMILY.build_problem(bernoulli(seed=1)).draw(3, "train", 2)
    assert not torch.equal(a.tasks.train_spikes, reseeded.tasks.train_spikes)


def test_spikes_follow_the_pixels():
    """P(spike) = pixel: black pixels never spike, and the spike rate tracks the image."""
    batch = FAMILY.build_problem(bernoulli(replace(CFG, spiking=replace(CFG.spiking, steps=200)))).draw(0, "t", 1)
    x, spikes = batch.tasks.train_x, batch.tasks.train_spikes.float()
    assert not spikes.sum(2)[x == 0].any()
    torch.testing.assert_close(spikes.mean(2), x, atol=0.15, rtol=0)


def test_members_share_tasks_and_chunks_do_not_change_scores():
    problem = FAMILY.build_problem(bernoulli())
    batch = problem.draw(0, "train", 2)
    theta = torch.tensor([FAMILY.theta_space(CFG).initial] * 4, dtype=torch.float32)
    theta[2] *= 2
    loss_all, acc_all = problem.scores(theta, batch)
    loss_chunked, acc_chunked = problem.scores(theta, batch, chunk=1)
    assert loss_all.shape == (4, 2)
    torch.testing.assert_close(loss_all, loss_chunked)
    torch.testing.assert_close(loss_all[0], loss_all[1])  # equal θ on common random numbers: equal scores
    assert not torch.equal(loss_all[0], loss_all[2])
    part = batch.subset(slice(1, 2))
    torch.testing.assert_close(problem.scores(theta, part)[0], loss_all[:, 1:])


def test_fitness_function_scores_a_population_without_graph_and_adam_gets_a_gradient():
    fitness = FitnessFunction(FAMILY.build_problem(CFG), CFG)
    theta = torch.tensor([FAMILY.theta_space(CFG).initial] * 3, dtype=torch.float32)
    ev = fitness(theta, 0)
    assert ev.fitness.shape == (3,) and torch.isfinite(ev.fitness).all() and ev.task_loss.shape == (3, 2)
    centre = theta[:1].clone().requires_grad_(True)
    ev = fitness(centre, 0)
    (grad,) = torch.autograd.grad(ev.fitness.sum(), centre)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close(ev.loss.detach(), fitness(theta[:1], 0).loss)


def test_diagnostics_and_run_notes():
    problem = FAMILY.build_problem(CFG)
    rates = problem.diagnostics(torch.tensor(FAMILY.theta_space(CFG).initial), 0)["eval/firing_rate"]
    assert len(rates) == 1 and 0 <= rates[0] <= 1
    assert "surrogate" in FAMILY.build_problem(replace(CFG, outer="adam")).run_notes()["meta_gradient"]
    assert "exact" in problem.run_notes()["meta_gradient"]


def test_theta_space_per_layer_and_init():
    space = FAMILY.theta_space(replace(CFG, spiking=replace(CFG.spiking, per_layer=True, terms=("bio",))))
    assert space.labels == ("l1.eprop", "l1.err_err", "l1.oja", "l2.eprop", "l2.err_err", "l2.oja")
    assert space.initial[0] == space.initial[3] > 0


@pytest.mark.parametrize("key, value, words", [
    ("spiking.beta", 1.0, "spiking.beta"),
    ("spiking.surrogate", "relu", "spiking.surrogate"),
    ("spiking.terms", ("eprop", "hebb"), "unknown: ['hebb']"),
    ("spiking.steps", 0, "spiking.steps"),
    ("rule.theta_init", (0.1,), "rule.theta_init"),
])
def test_bad_config_names_the_key(key, value, words):
    section, _, name = key.partition(".")
    cfg = replace(CFG, **{section: replace(getattr(CFG, section), **{name: value})})
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        validate(cfg)


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"spiking.dims\[0\] = 64"):
        FAMILY.build_problem(replace(CFG, spiking=replace(CFG.spiking, dims=(10, 5, 10))))


def test_evaluation_rows_are_paired_and_the_baseline_is_a_rule():
    """The e-prop fa baseline is the rule with only θ_eprop = its lr, on the same tasks: a rule row with that θ
    scores exactly what the baseline row scores."""
    cfg = replace(CFG, spiking=replace(CFG.spiking, baseline_lr=0.05, terms=("eprop",)))
    rows = score_rows(replace(cfg, seed=5), [("same as fa", (0.05,), None), ("nothing", (0.0,), None)], n_tasks=3)
    by = {r.label.split(" (")[0]: r.per_task for r in rows}
    assert set(by) >= {"same as fa", "e-prop fa", "e-prop bp", "e-prop dfa", "rate network fa", "rate network bp"}
    torch.testing.assert_close(by["same as fa"]["loss"], by["e-prop fa"]["loss"])
    assert not torch.equal(by["nothing"]["loss"], by["e-prop fa"]["loss"])
    assert all(len(v["accuracy"]) == 3 for v in by.values())


def test_parse_rule():
    rule = FAMILY.parse_rule("spiking:oja=1e-3,eprop=0.05")
    assert rule.theta == (0.05, 1e-3) and rule.config.spiking.terms == ("eprop", "oja")
    assert FAMILY.parse_rule("bio:0.01") is None
    with pytest.raises(ValueError, match="spiking:TERM=VALUE"):
        FAMILY.parse_rule("spiking:hebb=1")


def test_evaluate_through_the_python_api_with_options():
    import evoplastic as ep

    cfg = replace(CFG, spiking=replace(CFG.spiking, baseline_lr=0.05))
    rule = FAMILY.rule_from_run("mine", cfg, list(FAMILY.theta_space(cfg).initial))
    ev = ep.evaluate(rule, tasks=2, seed=3, classes="0-4")
    assert [r.label.split(" (")[0] for r in ev.rows] == ["mine", "e-prop fa", "e-prop bp", "e-prop dfa",
                                                         "rate network fa", "rate network bp"]
    assert "classes 0-4" in ev.description and len(ev.rows[0].per_task["accuracy"]) == 2
    with pytest.raises(ValueError, match="unknown evaluation setting"):
        ep.evaluate(rule, tasks=2, autoencoders=True)


def test_the_evaluate_command_hands_its_task_options_to_the_family(tmp_path, capsys):
    """`evoplastic evaluate spiking:…` reads the command's task options (here --k-shot and --classes) and prints
    the family's description above its table; an option the family does not take is a one-line error."""
    import json

    from evoplastic.analysis.evaluate import main

    net = ["--set", "spiking.dims=[64,12,10]", "--set", "spiking.steps=3", "--set", "task.dataset=digits",
           "--set", "task.n_way=3", "--set", "task.n_query=3"]
    out = tmp_path / "e.json"
    argv = ["spiking:eprop=0.05", *net, "--tasks", "2", "--k-shot", "2", "--classes", "0-4", "--no-baselines",
            "--no-progress", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("2 fresh 3-way tasks of digits (classes 0-4, 2 online samples per class, 3 steps")
    assert "**digits** (2 tasks)" in printed
    data = json.loads(out.read_text())
    assert data["options"] == {"classes": "0-4", "k_shot": 2} and data["group_names"] == ["digits"]
    assert main(["spiking:eprop=0.05", *net, "--tasks", "2", "--transform", "invert", "--no-progress"]) == 2
    assert "unknown evaluation setting(s) transform for the spiking family" in capsys.readouterr().err
