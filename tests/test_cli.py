"""End-to-end command-line runs into tmp_path, and the errors users see."""

from __future__ import annotations

import json

import pytest

from evoplastic.cli import main

TINY = [
    "steps=3", "tasks_per_step=1", "eval_every=2", "eval_tasks=3", "final_eval_tasks=5",
    "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5", "task.n_query=3", "es.population_size=4",
]


@pytest.mark.parametrize("outer", ["es", "adam"])
def test_train_writes_a_complete_run_record(outer, tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, f"outer={outer}", "--runs-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    (run,) = tmp_path.iterdir()
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "theta.json", "checkpoint.pt",
                 "plots/learning.png", "plots/theta.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert "eval/accuracy" in records[1] and "eval/accuracy" not in records[0]
    theta = json.loads((run / "theta.json").read_text())
    assert theta["terms"] == [0, 2, 9] and theta["final/tasks"] == 5
    assert "query accuracy on 5 fresh tasks" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0


def test_seeds_make_one_run_each(tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, "steps=1", "--seeds", "3-4", "--runs-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    runs = sorted(tmp_path.iterdir(), key=lambda p: p.name[-1])
    assert [p.name.split("_", 1)[1] for p in runs] == ["quickstart_seed3", "quickstart_seed4"]
    configs = [(p / "config.yaml").read_text() for p in runs]
    assert "seed: 3" in configs[0] and "seed: 4" in configs[1]
    assert capsys.readouterr().out.count("query accuracy on 5 fresh tasks") == 2


def test_resume_continues_to_more_steps(tmp_path):
    assert main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    assert main(["train", "--resume", str(run), "steps=5", "--no-progress"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("args, message", [
    (["train", "configs/quickstart.yaml", "es.popsize=3"], "unknown config key(s) es.popsize"),
    (["train", "configs/quickstart.yaml", "network.activation=swish"], "unknown network.activation 'swish'"),
    (["train", "configs/quickstart.yaml", "rule.terms=hebb"], "unknown rule 'hebb'"),
    (["train", "configs/quickstart.yaml", "steps=many"], "'steps' must be int"),
    (["train", "configs/missing.yaml"], "config file configs/missing.yaml not found"),
    (["train", "configs/quickstart.yaml", "task.dataset=npz:/nonexistent.npz"], "npz file /nonexistent.npz not found"),
    (["train", "configs/quickstart.yaml", "task.dataset=emnist", "task.data_dir=/nonexistent"], "task.download=true"),
    (["train", "configs/quickstart.yaml", "task.k_shot=500"], "lower task.k_shot"),
    (["train", "configs/quickstart.yaml", "network.dims=[784,10]"], "set network.dims[0] = 64"),
    (["train", "configs/quickstart.yaml", "outer=adam", "network.activation=relu"], "use outer=es"),
    (["train"], "give a config file"),
    (["train", "configs/quickstart.yaml", "--seeds", "a,b"], "give seeds such as 0,1,2"),
    (["train", "configs/quickstart.yaml", "--seeds", "1,1"], "distinct seeds"),
    (["train", "configs/quickstart.yaml", "task.dataset=npz:/missing.npz", "--seeds", "0,1"], "/missing.npz"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(args, message, tmp_path, capsys):
    code = main([*args, "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message.lower() in capsys.readouterr().err.lower()
    assert not any(tmp_path.iterdir())
