"""Spiking runs through the shared machinery: the CLI, resume after kill -9, MPI ranks, ES and Adam."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import evoplastic as ep
from evoplastic.bench.mpi import child_env, find_mpiexec, mpiexec_command

pytest.importorskip("sklearn", reason="the digits dataset comes with scikit-learn")

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = """\
name: tiny_spiking
family: spiking
steps: 4
tasks_per_step: 2
eval_every: 2
eval_tasks: 3
final_eval_tasks: 4
dtype: float64
task: {dataset: digits, n_way: 3, k_shot: 4, n_query: 3}
spiking: {dims: [64, 12, 10], steps: 4, weight_gain: 2.0, input: bernoulli, terms: [pool]}
es: {population_size: 5}
"""


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def launch(args: list[str], ranks: int = 0, **kwargs) -> subprocess.Popen:
    prefix = [*mpiexec_command(ranks)] if ranks else []
    return subprocess.Popen([*prefix, sys.executable, "-m", "evoplastic", *args], cwd=REPO, env=child_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spiking")
    (root / "tiny.yaml").write_text(TINY_YAML)
    return root


@pytest.fixture(scope="module")
def uninterrupted(tiny) -> Path:
    done = launch(["train", str(tiny / "tiny.yaml"), "--runs-dir", str(tiny / "plain"), "--no-progress"])
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    assert "final θ" in out
    (run,) = (tiny / "plain").iterdir()
    return run


def test_cli_trains_and_records_which_gradient(uninterrupted):
    meta = json.loads((uninterrupted / "meta.json").read_text())
    assert meta["meta_gradient"].startswith("none (ES)")
    summary = json.loads((uninterrupted / "theta.json").read_text())
    assert summary["family"] == "spiking" and summary["labels"][0] == "eprop" and len(summary["theta"]) == 7


def test_resume_after_kill_9_reaches_the_uninterrupted_theta(tiny, uninterrupted):
    out = tiny / "killed"
    job = launch(["train", str(tiny / "tiny.yaml"), "--runs-dir", str(out), "--no-progress"], start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = list(out.iterdir()) if out.exists() else []
        if runs and (runs[0] / "metrics.jsonl").exists() and len(records(runs[0])) >= 2:
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate()
    (run,) = out.iterdir()
    assert len(records(run)) < 4, "the run finished before it could be killed"
    resumed = launch(["train", "--resume", str(run), "--no-progress"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    a, b = records(uninterrupted), records(run)
    assert [r["theta/center"] for r in a] == [r["theta/center"] for r in b]
    assert json.loads((run / "theta.json").read_text())["theta"] == \
        json.loads((uninterrupted / "theta.json").read_text())["theta"]


@pytest.mark.mpi
@pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec next to sys.executable or on PATH (pip install mpich)")
def test_two_ranks_reproduce_one_process_bit_for_bit(tiny, uninterrupted):
    job = launch(["train", str(tiny / "tiny.yaml"), "--runs-dir", str(tiny / "mpi"), "--no-progress"], ranks=2)
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    (run,) = (tiny / "mpi").iterdir()
    for a, b in zip(records(uninterrupted), records(run)):
        for key in ("fitness/members", "theta/center", "train/loss"):
            assert a[key] == b[key], (key, a["step"])
    assert json.loads((run / "theta.json").read_text())["final/loss"] == \
        json.loads((uninterrupted / "theta.json").read_text())["final/loss"]


def test_adam_through_surrogate_gradients_moves_theta(tiny):
    run = ep.train(str(tiny / "tiny.yaml"), "outer=adam", "steps=2", "eval_every=0", "spiking.input=current",
                   runs_dir=tiny / "adam", plots=False)
    start = np.array([0.05, 0, 0, 0, 0, 0, 0])
    assert np.isfinite(run.theta).all() and not np.allclose(run.theta, start)
    assert "surrogate" in json.loads((run.path / "meta.json").read_text())["meta_gradient"]
