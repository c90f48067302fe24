"""The k-cap family through the shared machinery: train (ES and the seed's look-ahead Adam loop),
resume, MPI, run record — none of which branches on the family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_parallel import launch, needs_mpi, records

from evoplastic.config import ConfigError, load_config
from evoplastic.families import build_fitness, get_family, theta_space
from evoplastic.outer.adam import AdamLoop
from evoplastic.run.parallel import Request, World, assemble, score_share
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train

REPO = Path(__file__).resolve().parents[1]
TINY_KCAP = ["name=tiny_kcap", "family=kcap", "steps=3", "tasks_per_step=2", "eval_every=2", "eval_tasks=2",
             "final_eval_tasks=4", "dtype=float64", "es.population_size=4", "kcap.n_hidden=16", "kcap.cap=4",
             "kcap.n_unlabelled=12", "kcap.n_query=8", "kcap.labels_per_class=3", "kcap.lookahead_points=3"]
TINY_YAML = "\n".join(f"{k.split('=')[0]}: {k.split('=')[1]}" for k in TINY_KCAP if "." not in k.split("=")[0]) + \
    "\nes: {population_size: 4}\nkcap: {n_hidden: 16, cap: 4, n_unlabelled: 12, n_query: 8, labels_per_class: 3}\n"


def tiny_kcap(*overrides: str):
    return load_config(None, TINY_KCAP + list(overrides))


def test_the_family_key_selects_the_kcap_problem_and_theta_space():
    cfg = tiny_kcap()
    space = theta_space(cfg)
    assert space.labels == ("hebb", "covariance", "oja", "decay") and space.size == 4
    per_matrix = theta_space(tiny_kcap("kcap.per_matrix=true"))
    assert per_matrix.labels[:2] == ("M_in/hebb", "M_in/covariance") and per_matrix.size == 8
    assert theta_space(tiny_kcap("kcap.rule=mlp")).size == 5 * 8 + 1
    fitness = build_fitness(cfg)
    ev = fitness(torch.tensor([space.initial, [0.0] * 4], dtype=torch.float64), 0)
    assert ev.task_loss.shape == (2, 2) and torch.isfinite(ev.fitness).all()
    assert ((0 <= ev.accuracy) & (ev.accuracy <= 1)).all()


def test_kcap_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="kcap.cap=40 exceeds kcap.n_hidden=16"):
        tiny_kcap("kcap.cap=40")
    with pytest.raises(ConfigError, match="kcap.objective"):
        tiny_kcap("kcap.objective=accuracy")
    with pytest.raises(ValueError, match="rule.theta_init has 2 values but this kcap rule searches 4"):
        theta_space(tiny_kcap("rule.theta_init=[0.1,0.2]"))


@pytest.mark.parametrize("objective", ["probe_loss", "probe_error", "ae_mse", "emd"])
def test_every_objective_is_the_loss_the_outer_loop_sees(objective):
    cfg = tiny_kcap(f"kcap.objective={objective}")
    fitness = build_fitness(cfg)
    theta = torch.tensor([theta_space(cfg).initial], dtype=torch.float64)
    batch = fitness.draw(1, "train", 2)
    direct = fitness.problem.pair_scores(theta, batch, with_emd=True)[objective]
    assert torch.allclose(fitness(theta, 1).task_loss.reshape(-1), direct.double())


def test_a_diverging_kcap_rule_gets_the_worst_fitness_not_an_error():
    cfg = tiny_kcap("kcap.normalise=none")
    ev = build_fitness(cfg)(torch.tensor([[1e30, 1e30, 1e30, 1e30], [0.01, 0, 0, 0]], dtype=torch.float64), 0)
    assert bool(ev.diverged[0]) and not bool(ev.diverged[1]) and ev.fitness[0] == 1e6


def test_es_trains_and_resume_continues_bit_identically(tmp_path):
    cfg = tiny_kcap()
    whole = RunDir.create(cfg, tmp_path / "whole")
    train(cfg, whole, progress=False)
    first = RunDir.create(replace(cfg, steps=2), tmp_path / "cut")
    train(replace(cfg, steps=2), first, progress=False)
    train(cfg, first, resume=True, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rs]
    assert strip(first.metrics()) == strip(whole.metrics())
    final = json.loads((whole.path / "theta.json").read_text())
    assert final["family"] == "kcap" and final["labels"] == ["hebb", "covariance", "oja", "decay"]
    assert "eval/emd" in whole.metrics()[1]


def test_the_seeds_lookahead_loop_runs_as_the_adam_outer_loop():
    cfg = tiny_kcap("outer=adam", "adam.lr=0.01")
    fitness, loop = build_fitness(cfg), AdamLoop(cfg, theta_space(cfg))
    start = loop.center()
    record = loop.step(lambda theta: fitness(theta, 0))
    assert record["adam/skipped"] == 0 and record["adam/grad_norm"] > 0
    assert not torch.equal(loop.center(), start)


def test_blocks_over_ranks_give_the_same_scores():
    fitness = build_fitness(tiny_kcap())
    theta = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.01
    request = Request(theta.numpy(), 3, "train", 2)
    evaluations = []
    for size in (1, 2):
        results = {}
        for rank in range(size):
            results.update(score_share(fitness, World(rank=rank, size=size), request))
        evaluations.append(assemble(fitness, request, results))
    assert torch.equal(evaluations[0].fitness, evaluations[1].fitness)


def test_kcap_describes_its_rule_for_theta_json():
    described = get_family("kcap").describe(tiny_kcap())
    assert described["sign_convention"].startswith("kcap") and described["formulas"][0] == "post pre^T"


@pytest.mark.mpi
@needs_mpi
def test_two_ranks_give_the_same_final_theta_as_one(tmp_path):
    (tmp_path / "kcap.yaml").write_text(TINY_YAML)
    finals = []
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        done = launch(n, ["train", str(tmp_path / "kcap.yaml"), "--runs-dir", str(out), "--no-progress"])
        assert done.returncode == 0, done.stderr[-3000:]
        (run,) = out.iterdir()
        finals.append((json.loads((run / "theta.json").read_text())["theta"], records(run)))
    assert finals[0][0] == finals[1][0]
    assert [r["fitness/members"] for r in finals[0][1]] == [r["fitness/members"] for r in finals[1][1]]


def test_resume_after_kill_continues_bit_identically(tmp_path):
    """kill -9 during generation 2 of a CLI run; --resume ends on the uninterrupted run's θ."""
    (tmp_path / "kcap.yaml").write_text(TINY_YAML.replace("steps: 3", "steps: 6"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "evoplastic", "train"]
    whole = subprocess.run([*cli, str(tmp_path / "kcap.yaml"), "--runs-dir", str(tmp_path / "whole"),
                            "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    proc = subprocess.Popen([*cli, str(tmp_path / "kcap.yaml"), "--runs-dir", str(tmp_path / "killed"),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_steps(tmp_path / "killed", 2, proc)
    proc.kill()
    proc.wait()
    resumed = subprocess.run([*cli, "--resume", str(run_dir), "--no-progress"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (reference,) = (tmp_path / "whole").iterdir()
    assert [r["theta/center"] for r in records(run_dir)] == [r["theta/center"] for r in records(reference)]


def _wait_for_steps(root: Path, steps: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for metrics in root.glob("*/metrics.jsonl"):
            if len(metrics.read_text().splitlines()) >= steps:
                return metrics.parent
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"no {steps} logged steps under {root} within {timeout} s")


def test_evaluate_scores_kcap_runs_beside_their_baselines(tmp_path, capsys):
    from evoplastic.analysis.evaluate import main

    cfg = tiny_kcap("steps=1", "eval_every=0")
    runs = []
    for seed in (0, 1):
        run = RunDir.create(replace(cfg, seed=seed, name=f"k{seed}"), tmp_path)
        train(replace(cfg, seed=seed), run, progress=False)
        runs.append(str(run.path))
    out = tmp_path / "eval.json"
    assert main([*runs, "--tasks", "2", "--ablate", "--no-progress", "--json", str(out),
                 "--set", "kcap.labels_per_class=2"]) == 0
    text = capsys.readouterr().out
    assert "untrained k-cap RNN" in text and "raw 10-D input" in text and "without oja" in text
    data = json.loads(out.read_text())
    labels = [row["label"] for row in data["rows"]]
    assert labels[:2] == [Path(r).name for r in runs] and len(labels) == 2 + 4 + 2
    assert all(len(row["probe_accuracy"]) == 6 for row in data["rows"])  # 2 per dataset
    assert sorted(set(data["groups"])) == [0, 1, 2]  # tasks cycle through the three datasets
    assert data["rows"][-1]["ae_mse"][0] is None or data["rows"][-1]["ae_mse"][0] != data["rows"][-1]["ae_mse"][0]


def test_pool_and_mlp_rules_are_evaluated_on_the_same_tasks(tmp_path, capsys):
    from evoplastic.analysis.evaluate import main

    runs = []
    for rule in ("pool", "mlp"):
        cfg = tiny_kcap("steps=1", "eval_every=0", f"kcap.rule={rule}", f"name=k_{rule}")
        run = RunDir.create(cfg, tmp_path)
        train(cfg, run, progress=False)
        runs.append(str(run.path))
    out = tmp_path / "both.json"
    assert main([*runs, "--tasks", "2", "--no-progress", "--json", str(out)]) == 0
    rows = {row["label"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) >= {Path(r).name for r in runs} | {"untrained k-cap RNN"}
