"""Evaluating rules from run dirs, theta.json files and NAME:θ strings, and the Fig. 1 stream."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

from evoplastic.analysis.evaluate import (
    Rule,
    evaluate_rules,
    format_classes,
    held_out_classes,
    main,
    parse_classes,
    parse_rule,
    task_config,
)
from evoplastic.config import load_config
from evoplastic.families.paper.data import Dataset, load_dataset
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train

TINY_NET = ["--set", "network.dims=[64,12,10]"]
TINY_TASKS = ["--dataset", "digits", "--n-way", "3", "--k-shot", "5", "--n-query", "3", "--tasks", "12",
              "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny Adam run (bio rule) meta-trained on digits classes 0-5 only."""
    cfg = tiny_config("outer=adam", "task.k_shot=5", "task.classes=[0,1,2,3,4,5]", "final_eval_tasks=4")
    run = RunDir.create(cfg, tmp_path_factory.mktemp("runs"))
    train(cfg, run, progress=False)
    return run.path


def _evaluate(capsys, *args: str) -> tuple[int, dict, str]:
    """Run main (the last argument is the --json path); return code, the JSON and stdout."""
    capsys.readouterr()
    code = main(list(args))
    text = capsys.readouterr().out
    return code, json.loads(open(args[-1]).read()) if code == 0 else {}, text


def test_run_dir_defaults_to_held_out_classes_with_baselines(run_dir, tmp_path, capsys):
    code, data, text = _evaluate(capsys, str(run_dir), "--tasks", "12", "--no-progress", "--json",
                                 str(tmp_path / "e.json"))
    assert code == 0
    assert data["classes"] == [6, 7, 8, 9] and data["dataset"] == "digits"
    assert (data["n_way"], data["k_shot"], data["n_query"]) == (3, 5, 3)  # the run's task settings
    labels = [r["label"] for r in data["results"]]
    assert labels == [run_dir.name, "fa baseline", "bp baseline"]
    theta = json.loads((run_dir / "theta.json").read_text())["theta"]
    assert data["results"][0]["theta"] == theta and data["results"][0]["terms"] == [0, 2, 9]
    assert [r["feedback"] for r in data["results"]] == ["fa", "fa", "bp"]
    assert [r["theta"] for r in data["results"][1:]] == [[0.012], [0.014]]
    for r in data["results"]:
        assert len(r["task_accuracy"]) == 12 and 0 <= r["accuracy"] <= 1 and r["accuracy_ci95"] >= 0
    assert "12 tasks of digits (train), classes 6-9: 3-way" in text
    assert "query accuracy" in text and "fa baseline" in text and "bp baseline" in text


def test_same_seed_same_numbers_and_named_fa_equals_the_fa_baseline(tmp_path, capsys):
    args = ["fa:0.012", *TINY_NET, *TINY_TASKS]
    _, first, _ = _evaluate(capsys, *args, "--json", str(tmp_path / "a.json"))
    _, again, _ = _evaluate(capsys, *args, "--json", str(tmp_path / "b.json"))
    assert first["results"] == again["results"]
    rule, fa, bp = first["results"]
    assert rule["feedback"] == "fa" and rule["task_accuracy"] == fa["task_accuracy"]
    assert rule["task_loss"] == fa["task_loss"]
    assert bp["task_loss"] != fa["task_loss"]
    _, other, _ = _evaluate(capsys, *args, "--seed", "1", "--json", str(tmp_path / "c.json"))
    assert other["results"][0]["task_loss"] != rule["task_loss"]


def test_baselines_see_identical_tasks_and_initial_weights():
    """The bp baseline equals a 'bp:θ' rule, and 'bio:θ0,0,0' equals 'fa:θ0' on every task."""
    dataset = load_dataset("digits")
    rules = [parse_rule(text, ["network.dims=[64,12,10]"]) for text in
             ("bio:0.02,0,0", "fa:0.02", "bp:0.02", "0:0.02")]
    task = task_config(rules[0], dataset, tuple(range(10)), n_way=3, k_shot=5, n_query=3)
    bio, fa, bp, indices = evaluate_rules(rules, dataset, task, n_tasks=6, progress=False)
    assert torch.equal(bio.task_loss, fa.task_loss) and torch.equal(fa.task_loss, indices.task_loss)
    assert not torch.equal(bp.task_loss, fa.task_loss)
    assert fa.difference(bio) == (0.0, 0.0)


def test_theta_json_and_named_rule(run_dir, tmp_path, capsys):
    theta_file = run_dir / "theta.json"
    code, data, _ = _evaluate(capsys, str(theta_file), "--no-baselines", "--classes", "6-9", "--tasks", "6",
                              "--no-progress", "--json", str(tmp_path / "t.json"))
    assert code == 0 and len(data["results"]) == 1 and data["classes"] == [6, 7, 8, 9]
    # the same coefficients typed as a string give the same numbers (the run's config is the defaults here)
    theta = json.loads(theta_file.read_text())["theta"]
    named = "0,2,9:" + ",".join(repr(v) for v in theta)
    code, same, _ = _evaluate(capsys, named, *TINY_NET, "--set", "dtype=float64", "--dataset", "digits",
                              "--classes", "6-9", "--n-way", "3", "--k-shot", "5", "--n-query", "3",
                              "--no-baselines", "--tasks", "6", "--no-progress", "--json", str(tmp_path / "n.json"))
    assert code == 0
    assert same["results"][0]["task_loss"] == data["results"][0]["task_loss"]


def test_an_adam_rule_can_be_evaluated_on_a_relu_network(run_dir):
    rule = parse_rule(str(run_dir), ["network.activation=relu"])  # Adam itself refuses relu
    assert rule.config.network.activation == "relu" and rule.terms == (0, 2, 9)


def test_stand_alone_theta_json_uses_default_network(tmp_path, capsys):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"terms": [0, 2], "theta": [0.01, -0.02], "feedback": "bp"}))
    rule = parse_rule(str(path), ["network.dims=[64,12,10]"])
    assert rule.terms == (0, 2) and rule.theta == (0.01, -0.02) and rule.config.network.feedback == "bp"
    assert parse_rule(str(path)).config.network.dims[0] == 784


@pytest.mark.parametrize("args, message", [
    (["bio:0.01,0.02"], "2 coefficient(s) for 3 term(s) [0, 2, 9]"),
    (["bio"], "is not a run directory, a theta.json file or NAME:θ"),
    (["hebb:0.1"], "unknown rule 'hebb'"),
    (["bio:0.01,x,0.3"], "coefficients must be numbers"),
    (["0,2,41:1,2,3"], "subset of 0..33"),
    (["fa:nan"], "must be finite"),
    (["runs/nonexistent_run"], "is not a run directory"),
    (["bio:0.013,-0.054,-0.0065", "--dataset", "digits"], "takes 784 inputs but digits images have 64 pixels"),
    (["fa:0.01", "--dataset", "digits", "--set", "network.dims=[64,12,5]"], "does not fit the network's 5 outputs"),
    (["fa:0.01", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["fa:0.01", "--dataset", "npz:/nonexistent.npz"], "npz file /nonexistent.npz not found"),
    (["fa:0.01", *TINY_NET, "--dataset", "digits", "--classes", "1-2"], "lower --n-way or widen --classes"),
    (["fa:0.01", *TINY_NET, "--dataset", "digits", "--classes", "one"], "--classes 'one'"),
    (["fa:0.01", "--set", "network.dimz=[64,10]"], "unknown config key(s) network.dimz"),
])
def test_bad_input_is_a_clear_error(args, message, capsys):
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evoplastic evaluate: error:") and message in err


def test_bad_theta_json(tmp_path, capsys):
    path = tmp_path / "theta.json"
    path.write_text("{\"theta\": [0.1]}")
    assert main([str(path)]) == 2
    assert "is not a theta.json" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["configs/split/adam_bio.yaml", "configs/split/es_bio.yaml"])
def test_split_configs_hold_out_the_last_ten_emnist_classes(config):
    cfg = load_config(config)
    rule = Rule("split", (1e-3, 0.0, 0.0), cfg)
    labels = torch.arange(47).repeat(2)
    emnist = Dataset(cfg.task.dataset, torch.zeros(94, 784), labels, tuple(map(str, range(47))))
    assert held_out_classes([rule], emnist) == tuple(range(37, 47))
    other = Dataset("npz:elsewhere.npz", torch.zeros(94, 784), labels, tuple(map(str, range(47))))
    assert held_out_classes([rule], other) == tuple(range(47))  # another dataset: all its classes


def test_class_lists():
    assert parse_classes("40-46") == tuple(range(40, 47))
    assert parse_classes("3, 1,0-1") == (0, 1, 3)
    assert format_classes((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"


def test_stream_returns_an_accuracy_curve_and_plot(tmp_path, capsys):
    code, data, text = _evaluate(capsys, "fa:0.05", *TINY_NET, "--dataset", "digits", "--stream", "300",
                                 "--every", "100", "--test-size", "200", "--repeats", "2", "--no-progress",
                                 "--plot", str(tmp_path / "stream.png"), "--json", str(tmp_path / "s.json"))
    assert code == 0 and (tmp_path / "stream.png").is_file()
    rule, fa, bp = data["results"]
    assert rule["samples"] == [0, 100, 200, 300] and len(rule["accuracy"]) == 4
    assert rule["accuracy"][0] == fa["accuracy"][0] == bp["accuracy"][0]  # same initial weights
    assert rule["accuracy"][-1] > rule["accuracy"][0]  # it learns
    assert len(rule["alignment"]) == 4 and len(rule["alignment"][0]) == 1 and bp["alignment"] is None
    assert "held-out images of digits" in text and "300" in text


def test_ablation_zeroes_one_term_at_a_time(capsys):
    code = main(["bio:0.01,-0.02,-0.003", "--ablate", "--no-baselines", *TINY_NET, *TINY_TASKS])
    assert code == 0
    out = capsys.readouterr().out
    for term in (0, 2, 9):
        assert f"without θ_{term}" in out
    rule = parse_rule("bio:0.01,-0.02,-0.003")
    from evoplastic.analysis.evaluate import ablated_rules

    assert [r.theta for r in ablated_rules(rule)] == [(0.0, -0.02, -0.003), (0.01, 0.0, -0.003), (0.01, -0.02, 0.0)]
