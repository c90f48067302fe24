"""MPI population evaluation: blocks independent of R, ``mpiexec -n 2`` == ``-n 1``, failures, resume."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from evoplastic.bench.mpi import child_env, find_mpiexec, mpiexec_command
from evoplastic.families import build_fitness
from evoplastic.run.parallel import AUTO_BLOCKS, Request, World, assemble, plan_blocks, rank_share, score_share

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = """\
name: tiny
steps: 3
tasks_per_step: 2
eval_every: 2
eval_tasks: 5
final_eval_tasks: 7
network: {dims: [64, 12, 10]}
task: {dataset: digits, n_way: 3, k_shot: 5, n_query: 3}
rule: {terms: bio}
es: {population_size: 5}
"""


def launch(n: int, args: list[str], env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``mpiexec -n n python -m evoplastic ARGS`` with one thread per rank."""
    command = [*mpiexec_command(n), sys.executable, "-m", "evoplastic", *args]
    return subprocess.run(command, cwd=REPO, env=child_env(1, env), capture_output=True, text=True, timeout=timeout)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


needs_mpi = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec next to sys.executable or on PATH "
                               "(pip install mpich, or load your cluster's MPI)")


@pytest.mark.parametrize("members, tasks, chunk", [(5, 2, 0), (5, 2, 2), (1, 7, 0), (40, 3, 0), (1, 100, 0)])
def test_blocks_cover_the_score_matrix_once_and_ranks_take_contiguous_runs(members, tasks, chunk):
    blocks = plan_blocks(members, tasks, chunk)
    covered = np.zeros((members, tasks), int)
    for rows, cols in blocks:
        covered[rows, cols] += 1
    assert (covered == 1).all()
    assert len(blocks) == -(-members // chunk) if chunk and members > 1 else len(blocks) <= AUTO_BLOCKS
    for size in (1, 2, 3, 7):
        shares = [rank_share(len(blocks), World(rank=r, size=size)) for r in range(size)]
        assert [i for share in shares for i in share] == list(range(len(blocks)))


@pytest.mark.parametrize("members, chunk", [(5, 0), (5, 2), (1, 0)])
def test_evaluation_is_bitwise_identical_for_any_number_of_ranks(members, chunk):
    # float32 with 170- and 130-unit layers: here (MKL) a member scored alone gets other numbers than
    # the same member batched with others, so slices that follow R would change results; blocks must not.
    cfg = tiny_config("network.dims=[64,170,130,10]", "dtype=float32", "rule.terms=pool", "task.k_shot=4",
                      f"es.member_chunk={chunk}", "rule.l1=0.01")
    fitness = build_fitness(cfg)
    theta = torch.randn(members, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e-4
    request = Request(theta.numpy(), 3 if members > 1 else "3/0", "train", 2 if members > 1 else 7)
    evaluations = []
    for size in (1, 2, 3):
        results = {}
        for rank in range(size):
            results.update(score_share(fitness, World(rank=rank, size=size), request))
        evaluations.append(assemble(fitness, request, results))
    for ev in evaluations[1:]:
        for name in ("loss", "accuracy", "fitness", "diverged", "task_loss", "task_accuracy"):
            assert torch.equal(getattr(ev, name), getattr(evaluations[0], name)), name
    if chunk:  # with es.member_chunk set, a run without mpirun computes exactly the same blocks
        plain = fitness(theta, 3)
        assert torch.equal(plain.task_loss, evaluations[0].task_loss)
        assert torch.equal(plain.fitness, evaluations[0].fitness)


@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    """Uninterrupted runs of the tiny config under -n 1 and -n 2, in float64 and float32."""
    root = tmp_path_factory.mktemp("mpi")
    (root / "tiny.yaml").write_text(TINY_YAML)
    runs = {}
    for dtype in ("float64", "float32"):
        for n in (1, 2):
            out = root / f"{dtype}-n{n}"
            done = launch(n, ["train", str(root / "tiny.yaml"), f"dtype={dtype}", "--runs-dir", str(out),
                              "--no-progress"])
            assert done.returncode == 0, done.stderr[-3000:]
            (runs[dtype, n],) = out.iterdir()
    return root, runs


@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_reproduce_one_rank_bit_for_bit(mpi_runs, dtype):
    _, runs = mpi_runs
    one, two = records(runs[dtype, 1]), records(runs[dtype, 2])
    assert [r["step"] for r in two] == [0, 1, 2]
    for a, b in zip(one, two):
        assert len(a["fitness/members"]) == 5
        for key in ("fitness/members", "theta/center", "theta/best", "train/loss"):
            assert a[key] == b[key], (key, a["step"])
    assert one[1]["eval/accuracy"] == two[1]["eval/accuracy"]
    final = [json.loads((runs[dtype, n] / "theta.json").read_text()) for n in (1, 2)]
    assert final[0]["theta"] == final[1]["theta"] and final[0]["final/loss"] == final[1]["final/loss"]
    assert json.loads((runs[dtype, 2] / "meta.json").read_text())["mpi_ranks"] == 2


@pytest.mark.mpi
@needs_mpi
def test_failing_rank_ends_the_job_and_resume_reaches_the_uninterrupted_theta(mpi_runs):
    root, runs = mpi_runs
    out = root / "failed"
    start = time.monotonic()
    failed = launch(2, ["train", str(root / "tiny.yaml"), "dtype=float64", "--runs-dir", str(out), "--no-progress"],
                    env={"EVOPLASTIC_FAIL_RANK": "1", "EVOPLASTIC_FAIL_STEP": "2"}, timeout=60)
    assert failed.returncode != 0 and time.monotonic() - start < 60
    assert "injected failure on rank 1 at step 2" in failed.stdout + failed.stderr
    (run,) = out.iterdir()
    assert [r["step"] for r in records(run)] == [0, 1]  # generation 2 was lost, nothing else
    resumed = launch(2, ["train", "--resume", str(run), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = records(runs["float64", 2])
    assert [r["theta/center"] for r in records(run)] == [r["theta/center"] for r in reference]
    assert json.loads((run / "theta.json").read_text())["theta"] == \
        json.loads((runs["float64", 2] / "theta.json").read_text())["theta"]
